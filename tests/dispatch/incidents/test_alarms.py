"""A device alarm becomes a P1 report only with valid coordinates (msgspec's constraints apply)."""

from __future__ import annotations

import math

import pytest

from dispatch.incidents.alarms import alarm_report
from dispatch.problems import InvalidParameter


def test_an_alarm_is_a_p1_officer_alarm_from_the_device() -> None:
    report = alarm_report("phone-7", -122.4075, 37.788, None)
    assert (report.lon, report.lat, report.priority, report.category, report.source) == (
        -122.4075,
        37.788,
        "P1",
        "officer_alarm",
        "device_alarm",
    )
    assert report.description == "SOS" and report.reporter == "device:phone-7"
    assert alarm_report("phone-7", 0.0, 0.0, "x" * 5000).description == "x" * 4000  # cut, never refused


@pytest.mark.parametrize(
    ("lon", "lat", "field"),
    [(-122.4, 500.0, "lat"), (-122.4, -90.5, "lat"), (181.0, 37.8, "lon"), (math.nan, 37.8, "lon")],
)
def test_bad_coordinates_are_refused_naming_the_field(lon: float, lat: float, field: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        alarm_report("phone-7", lon, lat, "help")
    assert caught.value.name == field
