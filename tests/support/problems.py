"""Checking a problem answer (RFC 9457): its status, its media type, and the one parameter it names."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse


async def assert_problem(response: ClientResponse, status: int, name: str) -> dict[str, Any]:
    """`response` is a problem+json of `status` naming exactly the parameter `name`; its body."""
    body: dict[str, Any] = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == "application/problem+json"
    assert [p["name"] for p in body["invalid_params"]] == [name], body
    return body
