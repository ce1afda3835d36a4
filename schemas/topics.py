"""The MQTT topics devices and Outpost speak on: their names, how to build them, and how to read them.

    outpost/v1/devices/{device_id}/fix       a device's fixes, Outpost's own format (ingest decodes them)
    outpost/v1/devices/{device_id}/reply     a device's answer to an offer (handed to dispatch)
    outpost/v1/devices/{device_id}/alarm     a device's SOS (handed to dispatch)
    outpost/v1/devices/{device_id}/status    a device reports its unit's duty status (handed to dispatch)
    outpost/v1/devices/{device_id}/checkin   a device checks its unit in on its grid (handed to dispatch)
    outpost/v1/devices/{device_id}/answer    a device answers a roll call (handed to dispatch)
    outpost/v1/devices/{device_id}/offers    what Outpost sends a device: offers, their end, outcomes
    outpost/v1/devices/{device_id}/rollcall  what Outpost sends a device: a roll call to answer
    outpost/v1/devices/{device_id}/cmd       what Outpost sends a device: commands (request_fix, set_interval)
    owntracks/{user}/{device}[/{subtopic}]   OwnTracks; the device id is "{user}/{device}"
    owntracks/{user}/{device}/cmd            what Outpost sends an OwnTracks phone (reportLocation)
    outpost/v1/events/{kind}                 what Outpost tells everyone listening: grid, fence,
                                             out-of-grid and coverage events, incident tier notices
                                             (`kind` = the event's type)
    outpost/internal/v1/fixes/{worker}       Outpost to itself: each batch of fixes an ingest worker
                                             committed, for the `api` replicas (schemas.feed). Under
                                             INTERNAL_PREFIX, which the broker's ACL must deny to devices
                                             (read and write): only Outpost's service accounts use it.

Pure string work, no I/O. The parsers run once per message on the ingest's hot path: they slice and
compare, and allocate no more than the device id they return.
"""

from __future__ import annotations

DEVICES_PREFIX = "outpost/v1/devices/"
EVENTS_PREFIX = "outpost/v1/events/"
OWNTRACKS_ROOT = "owntracks"
OWNTRACKS_PREFIX = OWNTRACKS_ROOT + "/"
# Outpost talking to itself (the live change feed): no device may publish or subscribe below this prefix.
INTERNAL_PREFIX = "outpost/internal/"
FIXES_FEED_PREFIX = INTERNAL_PREFIX + "v1/fixes/"
FIXES_FEED_FILTER = FIXES_FEED_PREFIX + "+"
# Events only the replica that acted sees (incidents, alarms), for the other replicas' live streams: one
# topic per replica run (`{prefix}{tag}`), so each knows its own.
EVENTS_FEED_PREFIX = INTERNAL_PREFIX + "v1/events/"
EVENTS_FEED_FILTER = EVENTS_FEED_PREFIX + "+"

FIX = "fix"
REPLY = "reply"
ALARM = "alarm"
STATUS = "status"
CHECKIN = "checkin"
ANSWER = "answer"
OFFERS = "offers"
ROLLCALL = "rollcall"
CMD = "cmd"
# What a device may send besides fixes. What Outpost sends (offers, rollcall, cmd) is never one of them, so
# ingest never hears its own messages as a device's.
DEVICE_MESSAGE_KINDS = (REPLY, ALARM, STATUS, CHECKIN, ANSWER)

_FIX_SUFFIX = "/" + FIX


def device_topic(device_id: str, kind: str) -> str:
    """`outpost/v1/devices/{device_id}/{kind}` (`device_id` "+" makes the subscription filter)."""
    return f"{DEVICES_PREFIX}{device_id}/{kind}"


def event_topic(kind: str) -> str:
    """`outpost/v1/events/{kind}`, where Outpost publishes its events of that type (`+` for all)."""
    return f"{EVENTS_PREFIX}{kind}"


def fixes_feed_topic(worker: str) -> str:
    """`outpost/internal/v1/fixes/{worker}`, where one ingest worker publishes the batches it committed."""
    return f"{FIXES_FEED_PREFIX}{worker}"


def owntracks_topic(user: str, device: str) -> str:
    """`owntracks/{user}/{device}`, where the OwnTracks app publishes its locations."""
    return f"{OWNTRACKS_PREFIX}{user}/{device}"


def owntracks_command_topic(device_id: str) -> str | None:
    """`owntracks/{user}/{device}/cmd` for an OwnTracks device id ("user/device"); None for another id."""
    user, sep, device = device_id.partition("/")
    if not sep or not user or not device or "/" in device:
        return None
    return f"{owntracks_topic(user, device)}/{CMD}"


def owntracks_device_id(user: str, device: str) -> str:
    """Outpost's device id for an OwnTracks user and device: the topic without its `owntracks/` prefix."""
    return f"{user}/{device}"


# What the ingest subscribes to: fixes (both formats), and the device messages dispatch handles.
FIX_FILTERS = (device_topic("+", FIX), owntracks_topic("+", "+"))
DEVICE_MESSAGE_FILTERS = tuple(device_topic("+", kind) for kind in DEVICE_MESSAGE_KINDS)
REPLY_FILTER = device_topic("+", REPLY)


def fix_device_id(topic: str) -> str | None:
    """The device id of `outpost/v1/devices/{device_id}/fix`; None for another topic, or an id that is
    empty or spans levels."""
    if topic.startswith(DEVICES_PREFIX) and topic.endswith(_FIX_SUFFIX):
        device_id = topic[len(DEVICES_PREFIX) : -len(_FIX_SUFFIX)]
        if device_id and "/" not in device_id:
            return device_id
    return None


def is_device_message_topic(topic: str) -> bool:
    """Under `outpost/v1/devices/` but not a fix: never decoded as a position (see `device_message_of`)."""
    return topic.startswith(DEVICES_PREFIX) and not topic.endswith(_FIX_SUFFIX)


def device_message_of(topic: str) -> tuple[str, str] | None:
    """(device id, kind) of `outpost/v1/devices/{device_id}/reply|alarm`; None for any other topic. The id
    is everything up to the last level (a `+` subscription delivers one level only)."""
    if not topic.startswith(DEVICES_PREFIX):
        return None
    device_id, _, kind = topic[len(DEVICES_PREFIX) :].rpartition("/")
    if not device_id or kind not in DEVICE_MESSAGE_KINDS:
        return None
    return device_id, kind


def owntracks_levels(topic: str) -> list[str] | None:
    """The levels of `owntracks/{user}/{device}[/{subtopic}…]` (user and device not empty); None for any
    other topic. Index 1 is the user, 2 the device, 3 on the subtopics."""
    if not topic.startswith(OWNTRACKS_PREFIX):
        return None
    levels = topic.split("/")
    if len(levels) < 3 or not levels[1] or not levels[2]:
        return None
    return levels


def matches(levels: list[str], pattern: list[str]) -> bool:
    """MQTT topic matching of a topic's levels against a filter's (`+` one level, `#` the rest)."""
    for i, want in enumerate(pattern):
        if want == "#":
            return True
        if i >= len(levels) or (want != "+" and want != levels[i]):
            return False
    return len(levels) == len(pattern)
