"""A track's three answers, written piece by piece so a long one streams: GeoJSON, GPX 1.1 and CSV.

Each writer turns a header, pages of points and a footer into bytes; concatenated they are one valid
document. GeoJSON is a FeatureCollection of Point features in time order (QGIS opens it; the members
`subject`, `from` and `to` say whose and when); GPX is one `trk` with one `trkseg` (any GPX viewer); CSV has
a header row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from xml.sax.saxutils import escape

import msgspec

from geo.track import TrackPoint

FORMATS = ("geojson", "gpx", "csv")
MEDIA_TYPES = {
    "geojson": "application/geo+json",
    "gpx": "application/gpx+xml",
    "csv": "text/csv; charset=utf-8",
}


@dataclass(frozen=True)
class TrackMeta:
    """Whose track and which range: `subject` is "unit:<id>" or "device:<id>"."""

    subject: str
    start: datetime
    end: datetime
    simplify_m: float | None = None


class TrackWriter(Protocol):
    """Bytes of one format: `head()`, then `points(page)` for every page, then `tail()`."""

    def head(self) -> bytes: ...

    def points(self, page: Sequence[TrackPoint]) -> bytes: ...

    def tail(self) -> bytes: ...


def rfc3339(ts_s: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds (`2024-05-30T17:00:00.000Z`)."""
    return datetime.fromtimestamp(ts_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class GeoJsonWriter:
    """A FeatureCollection, one Point feature a fix."""

    def __init__(self, meta: TrackMeta) -> None:
        self.meta = meta
        self._first = True

    def head(self) -> bytes:
        """The collection's opening, with whose track and which range."""
        members = {
            "type": "FeatureCollection",
            "subject": self.meta.subject,
            "from": self.meta.start.isoformat().replace("+00:00", "Z"),
            "to": self.meta.end.isoformat().replace("+00:00", "Z"),
            "simplify_m": self.meta.simplify_m,
        }
        opening = msgspec.json.encode(members)[:-1]  # drop the closing brace: features follow
        return opening + b',"features":['

    def points(self, page: Sequence[TrackPoint]) -> bytes:
        """The page's features, comma-separated from the previous page's."""
        if not page:
            return b""
        parts = [msgspec.json.encode(_feature(p)) for p in page]
        body = b",".join(parts)
        if self._first:
            self._first = False
            return body
        return b"," + body

    def tail(self) -> bytes:
        """The collection's closing."""
        return b"]}"


def _feature(p: TrackPoint) -> dict[str, object]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
        "properties": {
            "time": rfc3339(p.ts_s),
            "device_id": p.device_id,
            "accuracy_m": p.accuracy_m,
            "speed_mps": p.speed_mps,
            "heading_deg": p.heading_deg,
            "flags": p.flags,
        },
    }


class GpxWriter:
    """GPX 1.1: one track, one segment, a `trkpt` with its time a fix."""

    def __init__(self, meta: TrackMeta) -> None:
        self.meta = meta

    def head(self) -> bytes:
        """The document's opening, the track named for its subject."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<gpx version="1.1" creator="Outpost" xmlns="http://www.topografix.com/GPX/1/1">\n'
            f"<trk><name>{escape(self.meta.subject)}</name><trkseg>\n"
        ).encode()

    def points(self, page: Sequence[TrackPoint]) -> bytes:
        """The page's track points."""
        return "".join(
            f'<trkpt lat="{p.lat!r}" lon="{p.lon!r}"><time>{rfc3339(p.ts_s)}</time>'
            f"<src>{escape(p.device_id)}</src></trkpt>\n"
            for p in page
        ).encode()

    def tail(self) -> bytes:
        """The document's closing."""
        return b"</trkseg></trk>\n</gpx>\n"


class CsvWriter:
    """RFC 4180 CSV with a header row."""

    COLUMNS = ("time", "device_id", "lon", "lat", "accuracy_m", "speed_mps", "heading_deg", "flags")

    def __init__(self, meta: TrackMeta) -> None:
        self.meta = meta

    def head(self) -> bytes:
        """The header row."""
        return self._rows([self.COLUMNS])

    def points(self, page: Sequence[TrackPoint]) -> bytes:
        """One row a fix."""
        return self._rows(
            (
                rfc3339(p.ts_s),
                _cell(p.device_id),
                repr(p.lon),
                repr(p.lat),
                _number(p.accuracy_m),
                _number(p.speed_mps),
                _number(p.heading_deg),
                str(p.flags),
            )
            for p in page
        )

    def tail(self) -> bytes:
        """Nothing: CSV has no footer."""
        return b""

    @staticmethod
    def _rows(rows: object) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(rows)  # type: ignore[arg-type]
        return out.getvalue().encode()


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _cell(text: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: such an id is kept as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def writer_for(fmt: str, meta: TrackMeta) -> TrackWriter:
    """The writer of `fmt` (one of FORMATS)."""
    writers: dict[str, type[GeoJsonWriter] | type[GpxWriter] | type[CsvWriter]] = {
        "geojson": GeoJsonWriter,
        "gpx": GpxWriter,
        "csv": CsvWriter,
    }
    return writers[fmt](meta)
