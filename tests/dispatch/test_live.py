"""The pure live picture, with no database: every move of a unit's index entry is one change record."""

from __future__ import annotations

from dataclasses import dataclass

import geo
from dispatch.live import Picture
from dispatch.settings import ApiSettings
from tests.dispatch.conftest import START_S, fix


@dataclass(frozen=True)
class Unit:
    id: str
    name: str = "u"
    kind: str = "police"
    skills: tuple[str, ...] = ()
    status: str = "available"
    enabled: bool = True


@dataclass(frozen=True)
class Device:
    id: str
    kind: str = "phone"
    priority: int = 0
    enabled: bool = True


@dataclass(frozen=True)
class Binding:
    device_id: str
    unit_id: str


def _picture() -> tuple[Picture, list[geo.Change]]:
    picture = Picture(ApiSettings())
    picture.load([Unit("u1")], [Device("d1"), Device("cam", "body_cam")], [Binding("d1", "u1")], [])
    changes: list[geo.Change] = []
    picture.subscribe_changes(changes.append)
    return picture, changes


def _where(change: geo.Change) -> tuple[tuple[float, float, str] | None, ...]:
    return tuple(None if p is None else (p.lon, p.lat, p.status) for p in change)


def test_every_move_of_a_units_entry_is_returned_and_published_as_old_and_new() -> None:
    picture, changes = _picture()
    first = picture.apply([fix("d1", "u1", 4.35, 50.85, START_S)])
    picture.apply([fix("d1", "u1", 4.36, 50.86, START_S + 1)])
    assert picture.apply([fix("d1", "u1", 4.30, 50.80, START_S - 10)]) == []  # older: nothing moved
    picture.change_status("u1", "off_duty", actor="test", at_s=START_S + 2)
    picture.change_status("u1", "busy", actor="test", at_s=START_S + 3)
    assert first == changes[:1]
    assert [_where(c) for c in changes] == [
        (None, (4.35, 50.85, "available")),
        ((4.35, 50.85, "available"), (4.36, 50.86, "available")),
        ((4.36, 50.86, "available"), None),  # off duty leaves the index
        (None, (4.36, 50.86, "busy")),  # and comes back where it was, with its new status
    ]
    assert changes[-1].new == picture.index.get("u1")


def test_a_binding_that_moves_the_entry_out_and_back_is_one_record_and_unsubscribe_stops_them() -> None:
    picture, changes = _picture()
    picture.apply([fix("d1", "u1", 4.35, 50.85, START_S), fix("cam", None, 4.3501, 50.85, START_S - 3)])
    # The worn camera outranks the phone, so fusion switches to its slightly older fix: the entry leaves
    # the tree and comes back, and that is one record, from the phone's fix to the camera's.
    [moved] = picture.bind(Binding("cam", "u1"))
    assert changes[-1] is moved and len(changes) == 2
    assert (moved.old and moved.old.device_id, moved.new and moved.new.device_id) == ("d1", "cam")
    assert picture.bind(Binding("cam", "u1")) == []  # out and back to an equal entry: no record
    unsubscribe = picture.subscribe_changes(lambda _: None)
    unsubscribe()
    stop = picture.subscribe_changes(lambda _: 1 / 0)  # a broken listener does not stop the picture
    picture.apply([fix("cam", "u1", 4.37, 50.87, START_S + 1)])
    stop()
    assert [c.new.lon for c in changes if c.new is not None][-1] == 4.37
    assert picture.unbind("u1", "cam") is not None and picture.unbind("u1", "cam") is None
