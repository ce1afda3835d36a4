"""Reading settings: environment variables `OUTPOST_<NAME>`, optionally a TOML file named by `OUTPOST_CONFIG`.

Each concern declares its own frozen dataclass of settings (tipg's habit: one settings class per concern);
the composition root calls `load` once per class at start, and hands each part only its slice. Nothing here
runs at import time. Precedence: environment variable, then the TOML file, then the field's default.
The TOML file is flat (`database_url = "..."`) or uses the same names under an `[outpost]` table.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from dispatch.settings import ApiSettings, DispatchSettings
from ingest.settings import IngestSettings
from schemas.config import ConfigError
from store.settings import StoreSettings

T = TypeVar("T")

PREFIX = "OUTPOST_"


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


def load(cls: type[T], sources: Mapping[str, Any]) -> T:
    """Build the frozen settings dataclass `cls` from `sources` (see `read_sources`)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in sources:
            values[field.name] = _coerce(field.name, hints[field.name], sources[field.name])
    return cls(**values)


def describe(cls: type[Any]) -> list[tuple[str, str, str]]:
    """(variable, default, type) for every field: the README's configuration reference comes from it."""
    hints = typing.get_type_hints(cls)
    rows = []
    for field in dataclasses.fields(cls):
        default = field.default if field.default is not dataclasses.MISSING else "(required)"
        rows.append((PREFIX + field.name.upper(), str(default), _type_name(hints[field.name])))
    return rows


def reference_markdown(classes: tuple[type[Any], ...]) -> str:
    """The configuration reference as a Markdown table, from the settings classes and their field comments.

    The README embeds this table; a test checks the two agree, so the documentation cannot drift.
    """
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for cls in classes:
        comments = _field_comments(cls)
        for name, default, _type in describe(cls):
            field_name = name[len(PREFIX) :].lower()
            shown = f"`{default}`" if default != "" else "(empty)"
            lines.append(f"| `{name}` | {shown} | {comments.get(field_name, '')} |")
    return "\n".join(lines)


def _field_comments(cls: type[Any]) -> dict[str, str]:
    """The `#` comment block right above each field in the class body."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for raw in inspect.getsource(cls).splitlines():
        line = raw.strip()
        if line.startswith("#"):
            pending.append(line.lstrip("# ").strip())
        elif ":" in line and not line.startswith(("class ", '"""', "def ", "@")):
            name = line.split(":", 1)[0].strip()
            if name.isidentifier():
                comments[name] = " ".join(pending).replace("|", "\\|")
            pending = []
        else:
            pending = []
    return comments


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(name: str, tp: Any, raw: Any) -> Any:
    var = PREFIX + name.upper()
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        if raw in ("", None) and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
    try:
        if tp is bool:
            return _to_bool(raw)
        if tp is int and not isinstance(raw, bool):
            return int(raw)
        if tp is float and not isinstance(raw, bool):
            return float(raw)
        if tp is str:
            return str(raw)
        if tp is Path:
            return Path(str(raw))
        if typing.get_origin(tp) is tuple:
            items = raw if isinstance(raw, list) else [s.strip() for s in str(raw).split(",") if s.strip()]
            return tuple(str(i) for i in items)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{var}={raw!r}: expected {_type_name(tp)}") from exc
    raise ConfigError(f"{var}: unsupported setting type {tp!r}")


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


SETTINGS_CLASSES = (StoreSettings, IngestSettings, ApiSettings, DispatchSettings)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read OUTPOST_* variables (and the OUTPOST_CONFIG TOML file) into frozen settings."""
    sources = read_sources(environ)
    return Settings(
        store=load(StoreSettings, sources),
        ingest=load(IngestSettings, sources),
        api=load(ApiSettings, sources),
        dispatch=load(DispatchSettings, sources),
    )
