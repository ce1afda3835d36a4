"""Turning fleet and registry records into API bodies, including the words of a recommendation."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

import geo
from dispatch.bodies import body_of
from dispatch.fleet import Fleet
from dispatch.routes import models
from dispatch.settings import ApiSettings
from geo.grids import Grid, Location
from schemas.fix import Fix, FixFlag
from store import registry


def utc_of(ts_s: float) -> datetime:
    """An epoch time as an aware UTC datetime."""
    return datetime.fromtimestamp(ts_s, UTC)


# Records become bodies field by field, by name (`from_attributes`); tuples become lists. Byte-identical to
# copying each field by hand, which is what this replaced.


def unit_out(u: registry.Unit) -> models.UnitOut:
    """A unit's registry record."""
    return msgspec.convert(u, models.UnitOut, from_attributes=True)


def device_out(d: registry.Device) -> models.DeviceOut:
    """A device's registry record."""
    return msgspec.convert(d, models.DeviceOut, from_attributes=True)


def binding_out(b: registry.Binding) -> models.BindingOut:
    """A binding."""
    return msgspec.convert(b, models.BindingOut, from_attributes=True)


def grid_ref(grid: Grid | None) -> models.GridRef | None:
    """A grid's id and name (None: no grid)."""
    return None if grid is None else models.GridRef(id=grid.id, name=grid.name)


def live_position(fleet: Fleet, unit_id: str, now_s: float) -> models.Position | None:
    """The unit's live position with its age and grids, or None."""
    p = fleet.position(unit_id)
    if p is None:
        return None
    where = fleet.location(p)
    return models.Position(
        lon=p.lon,
        lat=p.lat,
        ts=utc_of(p.ts_s),
        fix_age_s=round(max(0.0, now_s - p.ts_s), 3),
        accuracy_m=p.accuracy_m,
        device_id=p.device_id,
        in_index=fleet.indexed(unit_id),
        community_grid=grid_ref(where.community),
        police_grid=grid_ref(where.police),
    )


def fix_out(f: Fix | None) -> models.FixOut | None:
    """A device fix, flags spelled out."""
    if f is None:
        return None
    flags = [flag.name.lower() for flag in FixFlag if flag and flag.name and f.flags & flag]
    return body_of(models.FixOut, f, flags=flags)


def eta_speed_mps(kind: str, settings: ApiSettings) -> float:
    """The typical straight-line speed assumed for a kind of unit."""
    return {
        "police": settings.eta_police_mps,
        "auxiliary": settings.eta_auxiliary_mps,
        "vehicle": settings.eta_vehicle_mps,
    }.get(kind, settings.eta_auxiliary_mps)


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def distance_words(distance_m: float) -> str:
    """412 m, 3.4 km."""
    return f"{distance_m:.0f} m" if distance_m < 1000 else f"{distance_m / 1000:.1f} km"


def nearest_unit(
    n: geo.Neighbor,
    rank: int,
    now_s: float,
    settings: ApiSettings,
    skills_asked: tuple[str, ...],
    where: Location,
) -> models.NearestUnit:
    """One recommended unit and why: 'nearest available police unit, 412 m, fix 8 s old'."""
    e = n.entry
    speed = eta_speed_mps(e.kind, settings)
    age_s = max(0.0, now_s - e.ts_s)
    which = "nearest" if rank == 1 else f"{ordinal(rank)} nearest"
    with_skills = f" with {', '.join(skills_asked)}" if skills_asked else ""
    accuracy = f", ±{e.accuracy_m:.0f} m" if e.accuracy_m is not None else ""
    reason = (
        f"{which} {e.status.replace('_', ' ')} {e.kind} unit{with_skills}, {distance_words(n.distance_m)}, "
        f"fix {age_s:.0f} s old{accuracy}"
    )
    # Built field by field, not by body_of: this runs k times a nearest request, and msgspec.convert's
    # validation of values the index already checked was a fifth of the handler (py-spy, 16 in flight).
    return models.NearestUnit(
        id=e.unit_id,
        distance_m=n.distance_m,
        eta_s=round(n.distance_m / speed, 1),
        eta_basis=f"straight line at {speed:g} m/s for {e.kind} (estimate)",
        fix_age_s=round(age_s, 3),
        accuracy_m=e.accuracy_m,
        status=e.status,
        kind=e.kind,
        skills=sorted(e.skills),
        lon=e.lon,
        lat=e.lat,
        reason=reason,
        community_grid=grid_ref(where.community),
        police_grid=grid_ref(where.police),
    )
