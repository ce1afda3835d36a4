"""What every concern shares about settings: how a string setting declares what it allows, the error a bad
value raises, and URLs made safe to print.

A setting declares its type, its range (or allowed values, or pattern) once, next to its field, as
`Annotated[int, msgspec.Meta(ge=1, le=65535)]`; numbers say it with msgspec's bounds, strings with `one_of`
or `matching` below, which also give people the words for it. `outpost.settings` checks every value against
that declaration and prints it in the configuration reference.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

import msgspec


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable and says why."""


def one_of(*values: str) -> msgspec.Meta:
    """A string setting that takes exactly one of `values` ("" for empty)."""
    shown = ", ".join(f"`{v}`" if v else "(empty)" for v in values)
    return msgspec.Meta(
        pattern="^(?:" + "|".join(re.escape(v) for v in values) + ")$",
        examples=list(values),
        extra={"allowed": f"one of {shown}"},
    )


def matching(pattern: str, allowed: str, *examples: str) -> msgspec.Meta:
    """A setting whose text must match `pattern` (a regex, searched), described to people as `allowed`.

    `examples` are values it accepts; the tests load each of them.
    """
    return msgspec.Meta(pattern=pattern, examples=list(examples), extra={"allowed": allowed})


def listing(allowed: str, *examples: str) -> msgspec.Meta:
    """A comma-separated list whose entries its consumer parses and checks; `allowed` says what they are."""
    return msgspec.Meta(examples=list(examples), extra={"allowed": allowed})


def pem_file(*examples: str) -> msgspec.Meta:
    """A setting naming a PEM file (a certificate or a key), or empty; whoever uses it checks the file."""
    return msgspec.Meta(
        pattern=r"^[^\n]*$",
        max_length=4096,
        examples=["", *examples],
        extra={"allowed": "empty, or the path of a PEM file"},
    )


# Settings whose whole value is a secret (by field name): never printed, in an error or by `outpost config`.
SECRET_SETTINGS = frozenset({"broker_login_token"})


def redact_setting(name: str, value: str) -> str:
    """A setting's value as shown to people (`name`: the field or its OUTPOST_ variable): a URL's password,
    and the whole of a secret setting, as `***`."""
    field = name.lower().removeprefix("outpost_")
    if field in SECRET_SETTINGS:
        return "***" if value else value
    return redact_url(value) if field.endswith("_url") else value


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***`, for logs and terminals."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        port = (
            parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
        )  # as written, valid or not
    except ValueError:
        return "<unparsable url>"
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username or ''}:***@{host}" + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_loopback(host: str | None) -> bool:
    """Whether `host` (an IP address, maybe with a %zone, or `localhost`) is on the loopback interface only;
    any other name may resolve to any interface."""
    if not host:
        return False
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
