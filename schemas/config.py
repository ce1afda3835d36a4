"""What every concern shares about settings: the error a bad value raises, and URLs made safe to print."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable and says why."""


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***`, for logs and terminals."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
