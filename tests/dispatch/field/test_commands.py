"""Commands to devices: request_fix and set_interval on the device's cmd topic, OwnTracks phones also get
their own reportLocation; dispatchers only, audited, problems for anything else. Both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from store import registry
from tests.dispatch.field.world import Field, field_api, utc


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[Field]:
    async with field_api(store_url) as w:
        w.unit("p1")
        w.device("cam-1", "p1")
        w.device("alice/phone", "p1")
        registry.insert_device(w.engine, id="retired", kind="radio", enabled=False, now=utc(0))
        yield w


async def test_request_fix_and_set_interval_reach_the_devices_cmd_topic(world: Field) -> None:
    sent = await world.api.json(
        "POST", "/v1/devices/cam-1/commands", "dispatcher", status=202, json={"command": "request_fix"}
    )
    assert sent["topics"] == ["outpost/v1/devices/cam-1/cmd"]
    [cmd] = world.to("cam-1", "cmd")
    assert (cmd["type"], cmd["command"], cmd["command_id"]) == ("command", "request_fix", sent["command_id"])
    await world.api.json(
        "POST", "/v1/devices/cam-1/commands", json={"command": "set_interval", "interval_s": 5}, status=202
    )
    assert world.to("cam-1", "cmd")[-1]["interval_s"] == 5
    await world.api.flush_audit()
    audit = await world.api.json("GET", "/v1/audit?action=device_command", "admin")
    assert [e["subject"] for e in audit["entries"]] == ["device:cam-1", "device:cam-1"]


async def test_an_owntracks_phone_is_asked_to_report_its_location(world: Field) -> None:
    sent = await world.api.json(
        "POST",
        "/v1/devices/alice%2Fphone/commands",
        "dispatcher",
        status=202,
        json={"command": "request_fix"},
    )
    assert sent["topics"] == ["outpost/v1/devices/alice/phone/cmd", "owntracks/alice/phone/cmd"]
    payloads = dict(world.sent)
    assert msgspec.json.decode(payloads["owntracks/alice/phone/cmd"]) == {
        "_type": "cmd",
        "action": "reportLocation",
    }
    interval = await world.api.json(
        "POST",
        "/v1/devices/alice%2Fphone/commands",
        json={"command": "set_interval", "interval_s": 30},
        status=202,
    )
    assert interval["topics"] == ["outpost/v1/devices/alice/phone/cmd"]


@pytest.mark.parametrize(
    ("path", "role", "body", "status"),
    [
        ("/v1/devices/cam-1/commands", "viewer", {"command": "request_fix"}, 403),
        ("/v1/devices/cam-1/commands", None, {"command": "request_fix"}, 401),
        ("/v1/devices/nobody/commands", "dispatcher", {"command": "request_fix"}, 404),
        ("/v1/devices/retired/commands", "dispatcher", {"command": "request_fix"}, 409),
        ("/v1/devices/cam-1/commands", "dispatcher", {"command": "self_destruct"}, 400),
        ("/v1/devices/cam-1/commands", "dispatcher", {"command": "set_interval"}, 400),
        ("/v1/devices/cam-1/commands", "dispatcher", {"command": "set_interval", "interval_s": 0}, 400),
        ("/v1/devices/cam-1/commands", "dispatcher", {"command": "request_fix", "interval_s": 3}, 400),
        ("/v1/devices/%00/commands", "dispatcher", {"command": "request_fix"}, 400),
    ],
)
async def test_bad_commands_get_problems_and_send_nothing(
    world: Field, path: str, role: str | None, body: dict[str, object], status: int
) -> None:
    response = await world.api.call("POST", path, role, json=body)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert world.sent == []
