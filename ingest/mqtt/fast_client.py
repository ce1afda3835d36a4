"""paho's client with three measured shortcuts for the subscriber (see ingest.mqtt.subscriber's docstring):
buffered reads, a lean QoS 0/1 PUBLISH handler, and batched PUBACKs. They reach into paho's internals,
hence paho < 3 in pyproject.toml."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket

_READ_BYTES = 256 * 1024
_MID = struct.Struct("!H")
_PUBACK_HEADER = 0x4002 << 16  # PUBACK, remaining length 2 (success, MQTT 3.1.1 and 5), then the packet id


class FastClient(paho.Client):
    """paho's client with buffered reads and a lean QoS 0/1 PUBLISH path (see the module docstring)."""

    def __init__(self, sink: Callable[[bytes, bytes, int], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sink = sink
        self._rbuf = b""
        self._rpos = 0
        self.would_block = False  # set when a read found the socket empty

    def ack_many(self, mids: Sequence[int]) -> None:
        """PUBACK every packet id in `mids` with one buffer and one write; paho's `ack` queues and sends each
        4-byte packet on its own (a syscall per message)."""
        if mids:
            packets = struct.pack(f"!{len(mids)}I", *[_PUBACK_HEADER | mid for mid in mids])
            self._packet_queue(paho.PUBACK, packets, 0, 0)

    def reset_read_buffer(self) -> None:
        """Forget buffered bytes (a new connection starts a new stream)."""
        self._rbuf, self._rpos = b"", 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            try:
                data = super()._sock_recv(_READ_BYTES)
            except BlockingIOError:
                self.would_block = True
                raise
            if not data:
                return data  # end of stream: paho reports the connection lost
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        chunk = self._rbuf[start : start + bufsize]
        self._rpos = start + len(chunk)
        return chunk

    def _handle_publish(self) -> MQTTErrorCode:
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if qos == 2:  # never at our QoS 1 subscriptions; paho's full path if a broker did it anyway
            return super()._handle_publish()
        packet = bytes(self._in_packet["packet"])
        try:
            (topic_len,) = _MID.unpack_from(packet, 0)
            pos = 2 + topic_len
            topic = packet[2:pos]
            mid = -1
            if qos == 1:
                (mid,) = _MID.unpack_from(packet, pos)
                pos += 2
            if self._protocol == MQTTProtocolVersion.MQTTv5:
                props_len, pos = _varint(packet, pos)
                pos += props_len
        except struct.error as exc:
            raise MalformedPacket(f"PUBLISH too short: {exc}") from exc
        if pos > len(packet) or not topic:
            raise MalformedPacket("PUBLISH with a bad topic or properties length")
        self._sink(topic, packet[pos:], mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """An MQTT variable byte integer at `pos`: (value, position after it)."""
    value, shift = 0, 0
    for _ in range(4):
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise MalformedPacket("variable byte integer longer than 4 bytes")
