"""HTTP handlers of the incident API: parse, call `IncidentService`, encode. Documented in OpenAPI.

Reads need the viewer role; every change needs dispatcher (a unit's answer to an offer comes from its
device over MQTT, or from a dispatcher on its behalf here). Mutating calls accept `Idempotency-Key`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

from dispatch.auth import principal
from dispatch.incidents import models as m
from dispatch.incidents.core import Stepped
from dispatch.incidents.idempotency import IdempotencyHeader, idempotent
from dispatch.incidents.service import IncidentService
from dispatch.incidents.states import Event
from dispatch.keys import AUDIT_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.routes.instants import Instant
from dispatch.routes.params import Integer, PathId, Words, encode, read_body
from schemas.tables.incidents import INCIDENT_STATES
from store.incidents import IncidentStore

T = TypeVar("T")
INCIDENTS_KEY = web.AppKey("outpost.incidents", IncidentService)


INCIDENT_ID = PathId("id", "the incident's id")
OFFER_ID = PathId("offer_id", "the offer's id")
api = DocumentedRoutes("incidents", path_params=[INCIDENT_ID, OFFER_ID])
STATE = Words("state", "only incidents in these states", INCIDENT_STATES)
LIMIT = Integer("limit", "most incidents to return, newest first", default=100, minimum=1, maximum=1000)
IDEMPOTENCY = IdempotencyHeader()
# Bodies these routes take but do not require (an empty POST is fine).
_OPTIONAL_BODIES: list[tuple[str, str]] = []


def _epoch_s(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


SINCE = Instant("since", "only incidents reported at or after this instant", required=False)


def service_of(request: web.Request) -> IncidentService:
    return request.app[INCIDENTS_KEY]


def _store_and_now(request: web.Request) -> tuple[IncidentStore, float]:
    deps = service_of(request).deps
    return deps.store, deps.clock.now()


once = idempotent(_store_and_now)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def actor_of(request: web.Request) -> str:
    return principal(request).actor


async def _optional(request: web.Request, tp: type[T]) -> T:
    # Not `can_read_body`: Idempotency-Key handling has read the body already, and a read body looks absent.
    if not await request.read():
        return tp()
    return await read_body(request, tp)


def stepped_out(s: Stepped) -> web.Response:
    return encode(
        m.StepOut(
            id=s.before.id,
            state=s.after.state.value,
            tier=s.after.tier_name,
            event=s.transition.event.value,
            from_state=s.transition.from_state.value,
            at=datetime.fromtimestamp(s.at, UTC),
            unit_id=s.unit_id,
        )
    )


def mutation(
    path: str,
    *,
    body: Any = None,
    response: Any = m.StepOut,
    status: int = 200,
    optional_body: Any = None,
    errors: tuple[int, ...] = (404, 409),
) -> Callable[[Handler], Handler]:
    """A dispatcher's POST, made once per Idempotency-Key; `optional_body`: a body type that may be absent."""

    def register(handler: Handler) -> Handler:
        if optional_body is not None:
            _OPTIONAL_BODIES.append((path, "post"))
        return api.route(
            "POST",
            path,
            role="dispatcher",
            params=[IDEMPOTENCY],
            body=body if optional_body is None else optional_body,
            response=response,
            status=status,
            errors=errors,
        )(once(handler))

    return register


@mutation("/v1/incidents", body=m.IncidentIn, response=m.Created, status=201, errors=())
async def create_incident(request: web.Request) -> web.Response:
    """Report an incident

    Record an incident (lon, lat, category, priority P1–P4, source). Priorities in
    `OUTPOST_AUTO_DISPATCH_PRIORITIES` are offered at once to the nearest suitable available units."""
    report = await read_body(request, m.IncidentIn)
    return encode(await service_of(request).create(report, actor=actor_of(request)), status=201)


@api.route("GET", "/v1/incidents", role="viewer", params=[STATE, SINCE, LIMIT], response=m.IncidentList)
async def list_incidents(request: web.Request) -> web.Response:
    """List incidents

    Incidents newest first, by state and report time."""
    found = await service_of(request).list_incidents(
        states=STATE.get(request) or (), since=_epoch_s(SINCE.get(request)), limit=LIMIT.get(request)
    )
    return encode(found)


@api.route("GET", "/v1/incidents/{id}", role="viewer", response=m.IncidentOut)
async def get_incident(request: web.Request) -> web.Response:
    """One incident and its whole record

    State, offers, units, the audit trail (who, when, why), response intervals and decision snapshots.
    Snapshots hold units' positions, so the read is written to the audit log."""
    found = await service_of(request).get(INCIDENT_ID.get(request))
    units = sorted({c["unit_id"] for s in found.snapshots for c in s.candidates if "unit_id" in c})
    request.app[AUDIT_KEY].record(
        actor_of(request), "read_incident", f"incident:{found.id}", {"units": units}
    )
    return encode(found)


@api.route("GET", "/v1/incidents/{id}/recommendations", role="viewer", response=m.Recommendations)
async def recommendations(request: web.Request) -> web.Response:
    """Nearest suitable available units

    For each unit slot still open (P1: a police officer and an auxiliary), the nearest available units of
    that kind with distance, fix age, an ETA estimate and why; units already offered it are left out.
    The read (units' positions) is written to the audit log."""
    found = await service_of(request).recommendations(INCIDENT_ID.get(request))
    units = [c.unit_id for slot in found.slots for c in slot.candidates]
    request.app[AUDIT_KEY].record(
        actor_of(request), "incident_recommendations", f"incident:{found.incident_id}", {"units": units}
    )
    return encode(found)


@mutation("/v1/incidents/{id}/offers", optional_body=m.OfferIn, response=m.OfferOut, status=201)
async def make_offer(request: web.Request) -> web.Response:
    """Offer the incident to a unit

    Offer to `unit_id`, or without it to the recommended unit. 409 when the unit is not available (another
    dispatcher won it) or the incident cannot take offers in its state. Unanswered within
    `OUTPOST_OFFER_TIMEOUT_S`, the offer goes to the next nearest available unit."""
    body = await _optional(request, m.OfferIn)
    found = await service_of(request).offer(
        INCIDENT_ID.get(request), unit_id=body.unit_id, actor=actor_of(request)
    )
    return encode(found, status=201)


@mutation("/v1/incidents/{id}/offers/{offer_id}/accept")
async def accept_offer(request: web.Request) -> web.Response:
    """The unit accepts the offer

    The unit takes the incident (a dispatcher on its behalf; devices answer over MQTT)."""
    svc = service_of(request)
    return stepped_out(
        await svc.accept(INCIDENT_ID.get(request), OFFER_ID.get(request), actor=actor_of(request))
    )


@mutation("/v1/incidents/{id}/offers/{offer_id}/decline", optional_body=m.ReasonIn)
async def decline_offer(request: web.Request) -> web.Response:
    """The unit declines the offer

    The unit declines; it is available again and the next nearest eligible unit is offered."""
    return await _answer_offer(request, service_of(request).decline)


@mutation("/v1/incidents/{id}/offers/{offer_id}/withdraw", optional_body=m.ReasonIn)
async def withdraw_offer(request: web.Request) -> web.Response:
    """Take a pending offer back

    The unit is available again; nothing is offered automatically in its place."""
    return await _answer_offer(request, service_of(request).withdraw)


async def _answer_offer(request: web.Request, answer: Callable[..., Awaitable[Stepped]]) -> web.Response:
    """Decline or withdraw the offer of the path, with the body's optional reason."""
    body = await _optional(request, m.ReasonIn)
    stepped = await answer(
        INCIDENT_ID.get(request), OFFER_ID.get(request), actor=actor_of(request), reason=body.reason
    )
    return stepped_out(stepped)


async def _unit_step(request: web.Request, event: Event) -> web.Response:
    body = await _optional(request, m.UnitStepIn)
    stepped = await service_of(request).unit_step(
        INCIDENT_ID.get(request), event, unit_id=body.unit_id, actor=actor_of(request), reason=body.reason
    )
    return stepped_out(stepped)


async def _reason_step(request: web.Request, step: Callable[..., Awaitable[Stepped]]) -> web.Response:
    """Resolve, cancel, escalate or close the incident of the path, with the body's optional reason."""
    body = await _optional(request, m.ReasonIn)
    return stepped_out(await step(INCIDENT_ID.get(request), actor=actor_of(request), reason=body.reason))


async def _review(request: web.Request, tp: type[m.FeedbackIn] | type[m.EvaluationIn]) -> web.Response:
    """Record the body (feedback or evaluation) on the incident of the path."""
    body = await read_body(request, tp)
    return stepped_out(
        await service_of(request).review(INCIDENT_ID.get(request), body, actor=actor_of(request))
    )


@mutation("/v1/incidents/{id}/en_route", optional_body=m.UnitStepIn)
async def en_route(request: web.Request) -> web.Response:
    """A unit is on its way

    The unit (named, or the only one that can) left for the incident. Telemetry also detects it."""
    return await _unit_step(request, Event.EN_ROUTE)


@mutation("/v1/incidents/{id}/on_scene", optional_body=m.UnitStepIn)
async def on_scene(request: web.Request) -> web.Response:
    """A unit is on scene

    The unit arrived (telemetry detects it within `OUTPOST_ARRIVAL_RADIUS_M`; this is the manual way)."""
    return await _unit_step(request, Event.ARRIVE)


@mutation("/v1/incidents/{id}/resolve", optional_body=m.ReasonIn)
async def resolve(request: web.Request) -> web.Response:
    """Resolved on scene

    Handled: every engaged unit is available again."""
    return await _reason_step(request, service_of(request).resolve)


@mutation("/v1/incidents/{id}/cancel", optional_body=m.ReasonIn)
async def cancel(request: web.Request) -> web.Response:
    """Call the incident off

    Pending offers are withdrawn and engaged units released."""
    return await _reason_step(request, service_of(request).cancel)


@mutation("/v1/incidents/{id}/escalate", optional_body=m.ReasonIn)
async def escalate(request: web.Request) -> web.Response:
    """Escalate one tier

    community_grid → police_grid → station → command_centre; the new tier's SLA timer starts."""
    return await _reason_step(request, service_of(request).escalate)


@mutation("/v1/incidents/{id}/transfer", body=m.TransferIn)
async def transfer(request: web.Request) -> web.Response:
    """Transfer up the tiers, or to another agency

    `to` a tier above the incident's (`police_grid`, `station`, `command_centre`): it moves up there, one
    recorded escalation per tier passed, the new tier's SLA starts and its owners are told (409 for a tier
    at or below its own). Any other `to`: handed over to another agency or jurisdiction, offers withdrawn,
    units released."""
    body = await read_body(request, m.TransferIn)
    return stepped_out(
        await service_of(request).transfer(
            INCIDENT_ID.get(request), to=body.to, actor=actor_of(request), reason=body.reason
        )
    )


@mutation("/v1/incidents/{id}/feedback", body=m.FeedbackIn)
async def feedback(request: web.Request) -> web.Response:
    """Record the handling officer's feedback

    Outcome, notes and the handling officer, after resolution."""
    return await _review(request, m.FeedbackIn)


@mutation("/v1/incidents/{id}/evaluation", body=m.EvaluationIn)
async def evaluation(request: web.Request) -> web.Response:
    """Record the evaluation of the handling

    Score 1–5, evaluator and comments, after feedback."""
    return await _review(request, m.EvaluationIn)


@mutation("/v1/incidents/{id}/close", optional_body=m.ReasonIn)
async def close(request: web.Request) -> web.Response:
    """Close an evaluated incident

    The loop is closed: nothing more can happen to the incident."""
    return await _reason_step(request, service_of(request).close)


for _path, _method in _OPTIONAL_BODIES:
    api.openapi_paths[_path][_method]["requestBody"]["required"] = False
