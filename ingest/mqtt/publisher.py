"""The device side of MQTT: a fast QoS 1 publisher for the simulator, the load test and notifications.

paho-mqtt 2.x runs on the caller's asyncio loop (paho's "external loop" mode: the socket is registered with
`add_reader` / `add_writer`), not in a thread of its own. One thread means no GIL ping-pong between the
producer and the network loop, and the counters need no locks. `publish` only queues; the loop writes.
Only the TCP (and TLS) connect runs in a worker thread: it blocks on DNS and the handshake, up to paho's
connect timeout against an unreachable broker, and the dispatch API shares this loop.

Delivery: QoS 1 messages stay in paho's store until PUBACKed and are resent (DUP) after a reconnect, so a
broker restart loses nothing the publisher still holds. `flush` waits until every QoS 1 message is acked.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from ingest.mqtt.client import call_in_loop, new_client, parse_mqtt_url
from schemas.backoff import Backoff

log = logging.getLogger(__name__)

_MISC_INTERVAL_S = 1.0  # keepalive / reconnect check period
_RECONNECT_MIN_S = 0.2
_RECONNECT_MAX_S = 10.0


class Publisher:
    """Publish to an MQTT broker at a high rate; QoS 1 delivery is confirmed by `flush`.

    Counters: `sent` (messages accepted by `publish`), `acked` (QoS 1 PUBACKed, or QoS 0 written),
    `dropped` (QoS 0 messages published while disconnected). `pending` = sent - acked - dropped.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        protocol: Literal["3.1.1", "5"] = "3.1.1",
        keepalive_s: int = 60,
        max_inflight: int = 0,
        ca_file: str = "",
    ) -> None:
        """`max_inflight` caps unacknowledged QoS 1 messages on the wire (0: no cap, except an MQTT 5
        broker's Receive Maximum); the rest wait in an in-process queue. `ca_file`: the certificates an
        mqtts:// `url` trusts (empty: the system's trust store)."""
        self.address = parse_mqtt_url(url, ca_file)
        self.client_id = client_id
        self.sent = 0
        self.acked = 0
        self.dropped = 0
        self._keepalive_s = keepalive_s
        self._window = max_inflight
        self._v5 = protocol == "5"
        self._held: collections.deque[tuple[str, bytes, int]] = collections.deque()
        self._on_wire = 0  # QoS 1 messages handed to paho and not yet acked
        self._qos0_mids: set[int] = set()  # paho reports QoS 0 writes through the same callback
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._connected: asyncio.Future[None] | None = None
        self._drained = asyncio.Event()
        self._drained.set()
        self._room = asyncio.Event()  # set when pending falls below _room_limit
        self._room_limit = 0
        self._misc_task: asyncio.Task[None] | None = None
        self._closing = False
        self._socket_closed = asyncio.Event()
        self._client = self._make_client(protocol)

    # ----------------------------------------------------------------------------------------------- set-up
    def _make_client(self, protocol: str) -> paho.Client:
        client = new_client(
            paho.Client,
            self.address,
            self.client_id,
            v5=protocol == "5",
            on_socket_open=self._on_socket_open,
            on_socket_close=self._on_socket_close,
            on_register_write=self._on_register_write,
            on_unregister_write=self._on_unregister_write,
        )
        # paho's own window re-scans its whole message store on every ack once it is full (O(window));
        # the window is enforced here instead, in O(1), so paho's is off.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        return client

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Connect and wait for the broker's CONNACK; raises ConnectionError if refused."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._connected = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.to_thread(
                    self._client.connect, self.address.host, self.address.port, keepalive=self._keepalive_s
                )
                self._misc_task = self._loop.create_task(self._misc_loop())
                await self._connected
        except BaseException:
            await self.close()
            raise

    async def __aenter__(self) -> Publisher:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------ publishing
    @property
    def pending(self) -> int:
        """Messages accepted by `publish` and not yet acknowledged (nor dropped)."""
        return self.sent - self.acked - self.dropped

    @property
    def is_connected(self) -> bool:
        """True while the broker session is up."""
        return bool(self._client.is_connected())

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Queue one message; never blocks. QoS 1 messages survive reconnects until PUBACKed."""
        self.sent += 1
        self._drained.clear()
        if qos == 0:
            info = self._client.publish(topic, payload, 0)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._count_done(dropped=True)
            else:
                self._qos0_mids.add(info.mid)
            return
        if self._window and (self._held or self._on_wire >= self._window):
            self._held.append((topic, payload, qos))
            return
        self._hand_to_paho(topic, payload, qos)

    def _hand_to_paho(self, topic: str, payload: bytes, qos: int) -> None:
        self._on_wire += 1
        # While disconnected paho keeps QoS>0 messages (rc NO_CONN) and sends them after CONNACK.
        self._client.publish(topic, payload, qos)

    async def wait_pending_below(self, limit: int) -> None:
        """Backpressure for producers: wait while `pending` >= limit."""
        while self.pending >= limit:
            self._room_limit = limit
            self._room.clear()
            await self._room.wait()

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every message published so far is acknowledged; TimeoutError after timeout_s."""
        async with asyncio.timeout(timeout_s):
            while self.pending > 0:
                await self._drained.wait()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly (does not flush: call `flush` first to be sure of delivery)."""
        self._closing = True
        if self._client.is_connected():
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._socket_closed.wait(), timeout_s)
        else:
            self._client.disconnect()
        if self._misc_task is not None:
            self._misc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._misc_task
            self._misc_task = None
        self._drop_socket_handlers()

    # ------------------------------------------------------------------------------------- paho callbacks
    def _count_done(self, *, dropped: bool = False) -> None:
        if dropped:
            self.dropped += 1
        else:
            self.acked += 1
        pending = self.pending
        if pending <= 0:
            self._drained.set()
        if pending < self._room_limit:
            self._room.set()

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        self._count_done()
        if mid in self._qos0_mids:
            self._qos0_mids.discard(mid)
            return
        self._on_wire -= 1
        while self._held and self._on_wire < self._window:
            self._hand_to_paho(*self._held.popleft())

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if self._v5 and props is not None and hasattr(props, "ReceiveMaximum"):
            limit = int(props.ReceiveMaximum)
            self._window = min(self._window, limit) if self._window else limit
        if self._connected is None or self._connected.done():
            if rc.is_failure:
                log.warning("MQTT reconnect refused by %s: %s", self.address.host, rc)
            return
        if rc.is_failure:
            self._connected.set_exception(ConnectionError(f"MQTT broker refused the connection: {rc}"))
        else:
            self._connected.set_result(None)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if not self._closing:
            log.warning(
                "MQTT connection to %s:%s lost (%s); reconnecting", self.address.host, self.address.port, rc
            )

    # paho calls the socket callbacks from the connecting worker thread as well as from the loop: they
    # act on the loop, in order.
    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._watch, sock)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._unwatch, sock)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._watch_writes, sock)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._unwatch_writes, sock)

    def _in_loop(self, fn: Callable[[Any], None], sock: Any) -> None:
        assert self._loop is not None
        call_in_loop(self._loop, self._loop_thread, fn, sock)

    def _watch(self, sock: Any) -> None:
        assert self._loop is not None
        if self._closing:  # a connect that finished in its thread after close(): nobody wants it
            with contextlib.suppress(OSError):
                sock.close()
            return
        self._socket_closed.clear()
        self._loop.add_reader(sock, self._client.loop_read)

    def _unwatch(self, sock: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(ValueError, OSError):  # already closed: nothing is watched any more
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        self._socket_closed.set()

    def _watch_writes(self, sock: Any) -> None:
        assert self._loop is not None
        current = self._client.socket()
        if current is not None and current is sock:  # not a socket closed since the thread asked
            self._loop.add_writer(current, self._client.loop_write)

    def _unwatch_writes(self, sock: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)

    def _drop_socket_handlers(self) -> None:
        sock = self._client.socket()
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)

    # ---------------------------------------------------------------------------- keepalive and reconnect
    async def _misc_loop(self) -> None:
        backoff = Backoff(_RECONNECT_MIN_S, _RECONNECT_MAX_S)
        while not self._closing:
            rc = self._client.loop_misc()
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                backoff.succeeded()
                await asyncio.sleep(_MISC_INTERVAL_S)
                continue
            await asyncio.sleep(backoff.next_s)
            if self._closing:
                return
            try:
                await asyncio.to_thread(self._client.reconnect)
            except OSError as exc:  # includes timeouts and refusals
                log.info("MQTT reconnect to %s:%s failed: %s", self.address.host, self.address.port, exc)
                backoff.failed()  # the next attempt waits longer
