"""Reading Prometheus text exposition in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def samples(url: str, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples called ``name`` whose labels include ``labels``: {sorted label items: value}."""
    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(url: str, name: str, **labels: str) -> float:
    """Sum of the matching samples (0 when there is none)."""
    return sum(samples(url, name, **labels).values())
