"""HTTP answers of the ingest endpoints: RFC 9457 problem documents."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def problem(
    status: int,
    title: str,
    reasons: list[str],
    headers: dict[str, str] | None = None,
    *,
    detail: str | None = None,
) -> web.Response:
    """An `application/problem+json` answer, with the rejection reasons when there are any."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if reasons:
        body["reasons"] = reasons
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status, content_type="application/problem+json", headers=headers)
