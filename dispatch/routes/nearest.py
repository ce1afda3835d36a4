"""The nearest query: the k nearest matching units, why each one, and what was left out (audited).

Registered before `units` (see `dispatch.routes.CORE_ROUTES`): /v1/units/{id} would otherwise match it.
"""

from __future__ import annotations

from aiohttp import web

import geo
from dispatch.auth import principal
from dispatch.keys import AUDIT_KEY, CLOCK_KEY, FLEET_KEY, SETTINGS_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import InvalidParameter
from dispatch.routes import models, present
from dispatch.routes.params import Integer, Number, Words, encode
from geo.grids import Location
from schemas.vocabulary import UNIT_KINDS, UNIT_STATUSES

api = DocumentedRoutes("units")
_NOWHERE = Location(community=None, police=None)

LON = Number("lon", "longitude of the incident (degrees)", minimum=-180, maximum=180, required=True)
LAT = Number("lat", "latitude of the incident (degrees)", minimum=-90, maximum=90, required=True)
K = Integer("k", "how many units to return", default=5, minimum=1, maximum=1000)
STATUS = Words(
    "status",
    "allowed statuses (default: available; `any`: every status)",
    UNIT_STATUSES,
    extra_choices=("any",),
)
KIND = Words("kind", "allowed kinds (default: any kind)", UNIT_KINDS)
SKILL = Words("skill", "skills the unit must all have")
MAX_AGE = Number(
    "max_age_s", "units whose fix is older are excluded as stale (s; default from settings)", minimum=0
)
RADIUS = Number("radius_m", "only units within this distance (m)", positive=True)
MAX_ACCURACY = Number("max_accuracy_m", "only units whose fix is at least this accurate (m)", positive=True)


@api.route(
    "GET",
    "/v1/units/nearest",
    role="viewer",
    params=[LON, LAT, K, STATUS, KIND, SKILL, MAX_AGE, RADIUS, MAX_ACCURACY],
    response=models.NearestOut,
)
async def nearest(request: web.Request) -> web.Response:
    """The nearest matching units, with why and what was left out

    The k nearest units by great-circle distance (exact), nearest first, filtered by status (default
    available), kind, skills, fix age, radius and accuracy. `excluded` counts the nearer units left out, by
    reason (`status:<s>`, `kind`, `skills`, `stale`, `accuracy`; `out_of_radius` counts the matching units
    beyond the radius that would have filled the places left). ETAs are straight-line estimates. The read
    is written to the audit log."""
    app = request.app
    settings = app[SETTINGS_KEY]
    lon, lat, k = LON.need(request), LAT.need(request), K.get(request)
    if k > settings.nearest_max_k:
        raise InvalidParameter("k", f"must be at most {settings.nearest_max_k}, got {k}")
    asked = STATUS.get(request) or ("available",)
    skills = SKILL.get(request) or ()
    filters = geo.Filters(
        statuses=None if "any" in asked else asked,
        kinds=KIND.get(request),
        skills=skills,
        max_age_s=MAX_AGE.get(request, settings.max_fix_age_s),
        radius_m=RADIUS.get(request),
        max_accuracy_m=MAX_ACCURACY.get(request),
    )
    result = app[FLEET_KEY].nearest(lon, lat, k, **filters)
    now_s, fleet = app[CLOCK_KEY].now(), app[FLEET_KEY]
    # Without grids no point is in one: skip the k lookups (each a shapely Point and two empty STRtree
    # queries, a third of the handler's time in bench_http_designs' profile).
    locate = fleet.location if len(fleet.zones.grids) else _nowhere
    units = [
        present.nearest_unit(n, rank, now_s, settings, skills, locate(n.entry))
        for rank, n in enumerate(result.neighbors, start=1)
    ]
    app[AUDIT_KEY].record(
        principal(request).actor,
        "nearest",
        f"point:{lon:.6f},{lat:.6f}",
        {"k": k, "units": [u.id for u in units]},
    )
    statuses, kinds = filters["statuses"], filters["kinds"]
    query = models.NearestQuery(
        lon=lon,
        lat=lat,
        k=k,
        status=list(statuses) if statuses else None,
        kind=list(kinds) if kinds else None,
        skill=list(skills),
        max_age_s=filters["max_age_s"],
        radius_m=filters["radius_m"],
        max_accuracy_m=filters["max_accuracy_m"],
    )
    return encode(models.NearestOut(units=units, excluded=dict(result.excluded), query=query))


def _nowhere(p: geo.UnitPosition) -> Location:
    return _NOWHERE
