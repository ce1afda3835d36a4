"""Reading settings: environment variables `OUTPOST_<NAME>`, optionally a TOML file named by `OUTPOST_CONFIG`.

Each concern declares its own frozen dataclass of settings (tipg's habit: one settings class per concern);
the composition root calls `load` once per class at start, and hands each part only its slice. Nothing here
runs at import time. Precedence: environment variable, then the TOML file, then the field's default.
The TOML file is flat (`database_url = "..."`) or uses the same names under an `[outpost]` table.

Every field declares, once and next to itself, its type and what it allows (`Annotated[int, Meta(ge=1,
le=65535)]`, see schemas.config), with its meaning in the comment above it. `load` refuses any value outside
that declaration with a ConfigError naming the variable, the value and what is allowed, and the README's
configuration reference is generated from the same three things.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import os
import textwrap
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

import msgspec

from dispatch.incidents.policy import policy_from
from dispatch.settings import ApiSettings, DispatchSettings, FieldSettings
from dispatch.zones import station_zone
from ingest.settings import IngestSettings
from outpost.logs import FORMATS
from schemas.config import ConfigError, one_of, redact_setting
from store.settings import StoreSettings

T = TypeVar("T")

PREFIX = "OUTPOST_"


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """How every `outpost` command logs (see outpost.logs)."""

    # Log lines on stderr: `console` (time, level, logger, message, key=value fields) for people, `json`
    # (one object a line) for log shippers.
    log_format: Annotated[str, one_of(*FORMATS)] = "console"


class Setting(NamedTuple):
    """One field of a settings class, with everything its declaration says about it."""

    name: str  # the field
    variable: str  # OUTPOST_<NAME>
    default: Any
    hint: Any  # the declared type, with its msgspec.Meta constraints
    base: type  # the type without them: bool, int, float, str or tuple
    meta: msgspec.Meta  # the declared constraints, merged (an empty Meta for none)
    allowed: str  # what the constraints allow, in words


def read_sources(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge the TOML file (if `OUTPOST_CONFIG` names one) under the environment; keys are lower-case."""
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    config_path = env.get(PREFIX + "CONFIG")
    if config_path:
        try:
            data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"OUTPOST_CONFIG={config_path}: cannot read it: {exc}") from exc
        table = data.get("outpost", data)
        merged.update({str(k).lower(): v for k, v in table.items()})
    for key, value in env.items():
        if key.startswith(PREFIX) and key != PREFIX + "CONFIG":
            merged[key[len(PREFIX) :].lower()] = value
    return merged


def settings_of(cls: type[Any]) -> list[Setting]:
    """Every field of the settings dataclass `cls` with its declared type and constraints."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls, include_extras=True)
    rows = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        base = hint
        metas: tuple[msgspec.Meta, ...] = ()
        if typing.get_origin(hint) is Annotated:
            base, *rest = typing.get_args(hint)
            metas = tuple(m for m in rest if isinstance(m, msgspec.Meta))
        base = typing.get_origin(base) or base
        if base not in (bool, int, float, str, tuple):
            raise TypeError(f"{cls.__name__}.{field.name}: unsupported setting type {hint!r}")
        meta = _merged(metas)
        rows.append(
            Setting(
                name=field.name,
                variable=PREFIX + field.name.upper(),
                default=field.default,
                hint=hint,
                base=base,
                meta=meta,
                allowed=_allowed(base, meta),
            )
        )
    return rows


def load(cls: type[T], sources: Mapping[str, Any]) -> T:
    """Build the frozen settings dataclass `cls` from `sources` (see `read_sources`), checking every value."""
    values = {s.name: _coerce(s, sources[s.name]) for s in settings_of(cls) if s.name in sources}
    return cls(**values)


def describe(cls: type[Any]) -> list[tuple[str, str, str]]:
    """(variable, default as written in the environment, type) for every field."""
    return [(s.variable, env_text(s.default), s.base.__name__) for s in settings_of(cls)]


def env_text(value: Any) -> str:
    """`value` as one would write it in an OUTPOST_* variable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def reference_markdown(classes: tuple[type[Any], ...]) -> str:
    """The configuration reference as a Markdown table, from the settings classes and their field comments.

    The README embeds this table; a test checks the two agree, so the documentation cannot drift.
    """
    lines = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for cls in classes:
        comments = field_comments(cls)
        for s in settings_of(cls):
            default = env_text(s.default)
            shown = f"`{default}`" if default != "" else "(empty)"
            allowed = s.allowed.replace("|", "\\|")
            lines.append(f"| `{s.variable}` | {shown} | {allowed} | {comments.get(s.name, '')} |")
    return "\n".join(lines)


def field_comments(cls: type[Any]) -> dict[str, str]:
    """The `#` comment block right above each field in the class body: what the setting means."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    comments: dict[str, str] = {}
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            block: list[str] = []
            above = node.lineno - 2
            while above >= 0 and lines[above].strip().startswith("#"):
                block.insert(0, lines[above].strip().lstrip("#").strip())
                above -= 1
            comments[node.target.id] = " ".join(block).replace("|", "\\|")
    return comments


_CONSTRAINTS = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern", "examples", "extra")


def _merged(metas: tuple[msgspec.Meta, ...]) -> msgspec.Meta:
    found: dict[str, Any] = {}
    for meta in metas:
        found.update({k: getattr(meta, k) for k in _CONSTRAINTS if getattr(meta, k) is not None})
    return msgspec.Meta(**found)


def _allowed(base: type, meta: msgspec.Meta) -> str:
    """What `meta` allows, in words (an `allowed` text declared with it wins)."""
    if meta.extra and "allowed" in meta.extra:
        return str(meta.extra["allowed"])
    if base is bool:
        return "true or false"
    if base in (int, float):
        noun = "an integer" if base is int else "a number"
        if meta.ge is not None and meta.le is not None:
            return f"{noun} from {_number(meta.ge)} to {_number(meta.le)}"
        bounds = [
            f"{word} {_number(bound)}"
            for word, bound in (("from", meta.ge), ("above", meta.gt), ("up to", meta.le), ("below", meta.lt))
            if bound is not None
        ]
        return f"{noun} {', '.join(bounds)}"
    if base is str and meta.max_length is not None:
        return f"{meta.min_length or 0} to {meta.max_length} characters"
    if base is str and meta.min_length is not None:
        return f"at least {meta.min_length} characters"
    return "any text"


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else repr(value)


def _coerce(setting: Setting, raw: Any) -> Any:
    try:
        if setting.base is bool:
            return _to_bool(raw)
        if setting.base is tuple:
            items = raw if isinstance(raw, list) else [s.strip() for s in str(raw).split(",") if s.strip()]
            return tuple(str(i) for i in items)  # its consumer parses the entries (see load_settings)
        if setting.base is str and isinstance(raw, int | float) and not isinstance(raw, bool):
            raw = str(raw)  # TOML `mqtt_protocol = 5`
        value = msgspec.convert(raw.strip() if isinstance(raw, str) else raw, setting.hint, strict=False)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(value)
    except (ValueError, msgspec.ValidationError) as exc:
        shown = redact_setting(setting.name, str(raw)) if isinstance(raw, str) else raw
        raise ConfigError(f"{setting.variable}={shown!r}: expected {setting.allowed}") from exc
    return value


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every concern's settings, read once at start; each part is handed only its own slice."""

    store: StoreSettings
    ingest: IngestSettings
    api: ApiSettings
    dispatch: DispatchSettings
    field: FieldSettings
    log: LogSettings


SETTINGS_CLASSES = (
    StoreSettings,
    IngestSettings,
    ApiSettings,
    DispatchSettings,
    FieldSettings,
    LogSettings,
)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read OUTPOST_* variables (and the OUTPOST_CONFIG TOML file) into frozen, checked settings."""
    sources = read_sources(environ)
    settings = Settings(
        store=load(StoreSettings, sources),
        ingest=load(IngestSettings, sources),
        api=load(ApiSettings, sources),
        dispatch=load(DispatchSettings, sources),
        field=load(FieldSettings, sources),
        log=load(LogSettings, sources),
    )
    # The list settings' entries are parsed where they are used; parsing them now stops a bad entry at
    # start, in every command, instead of deep inside a running service.
    policy_from(settings.dispatch)
    station_zone(settings.api.station_timezone)
    return settings
