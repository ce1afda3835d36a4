"""One HTTP call to a running Outpost, standard library only: (status, body) whatever the status."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request(
    method: str, url: str, headers: dict[str, str] | None = None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """(status, body): JSON decoded when the answer says it is JSON, else the bytes; (0, the error) when
    nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, _decoded(resp.headers.get_content_type(), resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decoded(exc.headers.get_content_type(), exc.read())
    except OSError as exc:
        return 0, str(exc)


def call(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """`request` with a bearer token."""
    return request(method, url, {"Authorization": f"Bearer {token}"}, body)


def _decoded(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    return json.loads(raw) if content_type.endswith("json") else raw
