"""Reading rollout state out of status (pure): which revisions exist, what each is to the
pipeline, who serves, and how many replicas each runs."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import InferencePipelineStatus, Phase


def canary_active(status: InferencePipelineStatus) -> bool:
    """A canary (or blue-green preview) revision is deployed: set and not aborted."""
    return status.canary_revision is not None and status.phase != Phase.ABORTED


def canary_role(strategy: str | None) -> str:
    """What a rollout's new revision is called: the canary, or blue-green's preview."""
    return "preview" if strategy == "BlueGreen" else "canary"


def roles(status: InferencePipelineStatus, revision: str) -> list[str]:
    """What ``revision`` is to the pipeline now: stable, canary (or preview), aborted,
    previous; none of them for any other revision."""
    out = []
    if revision == status.stable_revision:
        out.append("stable")
    if revision == status.canary_revision:
        out.append("aborted" if status.phase == Phase.ABORTED else canary_role(status.strategy))
    if revision == status.previous_revision:
        out.append("previous")
    return out


def weight_of(status: InferencePipelineStatus) -> str:
    """The canary (or preview) weight while a rollout is in progress, ``30%``; else ``-``."""
    return f"{status.canary_weight}%" if canary_active(status) else "-"


def active_revisions(status: InferencePipelineStatus) -> list[str]:
    """Revisions whose children must exist, stable first, without duplicates.

    The stable revision; the canary / preview unless the rollout was aborted; blue-green's
    previous revision until its scale-down time; and any revision still carrying traffic.
    """
    candidates = [status.stable_revision]
    if canary_active(status):
        candidates.append(status.canary_revision)
    candidates.append(status.previous_revision)
    candidates += [t.revision for t in status.traffic if t.weight > 0]
    out: list[str] = []
    for revision in candidates:
        if revision and revision not in out:
            out.append(revision)
    return out


def replicas(count: int, percent: int) -> int:
    """``percent`` of ``count`` replicas, rounded up and at least 1 (0 stays 0: scale to zero)."""
    return 0 if count == 0 else max(1, -(-count * percent // 100))


def scale_of(status: InferencePipelineStatus, revision: str) -> int:
    """Percent of each stage's replicas that ``revision`` runs: the canary its scale, the stable
    its dynamic scale, any other revision all of them."""
    if revision == status.canary_revision and status.canary_scale is not None:
        return status.canary_scale
    if revision == status.stable_revision and status.stable_scale is not None:
        return status.stable_scale
    return 100
