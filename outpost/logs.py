"""Log output of every `outpost` command: the `extra` fields the code attaches (device id, reason, counts)
are part of each line, as `key=value` on the console or as one JSON object a line for log shippers
(`OUTPOST_LOG_FORMAT=json`)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from schemas.config import ConfigError

FORMATS = ("console", "json")
# Libraries whose INFO is noise at ours (the embedded broker's state machine logs every connection).
_CHATTY = ("transitions", "amqtt")
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call attached with `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class ConsoleFormatter(logging.Formatter):
    """`time level logger message key=value …`: readable and greppable."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={v!r}" for k, v in extras(record).items())
        return f"{line} {fields}" if fields else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the extras, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# What amqtt logs (with a traceback) when its listener cannot bind; Outpost reports it in one line.
_BROKER_STARTUP_FAILED = "Broker startup failed"


class LibraryTracebacks(logging.Filter):
    """Drops the tracebacks libraries log for failures that Outpost itself reports in one line, and the
    embedded broker's "startup failed" record itself (our "cannot listen on …" says it, with the fix); both
    come back at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in _CHATTY or logging.getLogger().level <= logging.DEBUG:
            return True
        if record.name == "amqtt.broker" and record.msg == _BROKER_STARTUP_FAILED:
            return False
        record.exc_info, record.exc_text = None, None
        return True


def configure_logging(level: str, fmt: str | None = None) -> None:
    """Log to stderr at `level` in `fmt` (default: OUTPOST_LOG_FORMAT, else console)."""
    fmt = fmt or os.environ.get("OUTPOST_LOG_FORMAT", "console").strip().lower() or "console"
    if fmt not in FORMATS:
        raise ConfigError(f"OUTPOST_LOG_FORMAT={fmt!r}: expected one of {', '.join(FORMATS)}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"--log-level {level!r}: expected DEBUG, INFO, WARNING or ERROR")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(LibraryTracebacks())
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, numeric))
