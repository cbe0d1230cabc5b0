"""Traffic split between the stable revision and a canary."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import TrafficTarget


def split(stable: str, canary: str | None = None, weight: int = 0) -> list[TrafficTarget]:
    """Targets summing to 100, without zero-weight entries (never empty)."""
    weight = max(0, min(100, weight)) if canary is not None else 0
    targets = [(stable, 100 - weight), (canary, weight)]
    return [TrafficTarget(revision=rev, weight=w) for rev, w in targets if rev and w > 0]
