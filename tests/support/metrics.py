"""A process's /metrics text (Prometheus exposition), read with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def matching(text: str, name: str, **labels: str) -> list[Sample]:
    """The samples named `name` (with its suffix: `_total`, `_bucket`, ...) that carry `labels`."""
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The one sample named `name` with `labels`: its value (NaN when there is none)."""
    found = matching(text, name, **labels)
    if len(found) > 1:
        raise ValueError(f"{len(found)} samples of {name} with {labels}: name more labels")
    return found[0].value if found else float("nan")


def scrape(url: str, name: str, **labels: str) -> float:
    """`value` of a live `/metrics` page (`url`); NaN when it cannot be read (the process is down)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return float("nan")
    return value(text, name, **labels)
