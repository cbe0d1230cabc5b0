"""Turn live children into what the rollout engine observes (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, RevisionStatus, StageStatus
from pipeline_operator.naming import service_name
from pipeline_operator.objects import condition


@dataclass(frozen=True)
class Readiness:
    """Per-revision readiness of the children, with reasons for what is not ready."""

    ready: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    revisions: list[RevisionStatus] = field(default_factory=list)


def readiness(
    pipeline: str, specs: Mapping[str, InferencePipelineSpec], services: Iterable[dict[str, Any]]
) -> Readiness:
    """Readiness of every revision in ``specs`` from the InferenceServices that exist."""
    by_name = {s["metadata"]["name"]: s for s in services}
    out = Readiness()
    for revision, spec in specs.items():
        stages = [_stage_status(pipeline, revision, s.name, by_name) for s in spec.stages]
        ready = all(s.ready for s in stages)
        out.ready[revision] = ready
        if not ready:
            out.reasons[revision] = "; ".join(
                f"stage {s.name}: {s.message}" for s in stages if not s.ready
            )
        out.revisions.append(RevisionStatus(name=revision, stages=stages, ready=ready))
    return out


def _stage_status(
    pipeline: str, revision: str, stage: str, by_name: Mapping[str, dict[str, Any]]
) -> StageStatus:
    name = service_name(pipeline, stage, revision)
    service = by_name.get(name)
    if service is None:
        return StageStatus(
            name=stage, service=name, ready=False, message="InferenceService missing"
        )
    ready = condition(service, "Ready")
    if ready is None:
        return StageStatus(name=stage, service=name, ready=False, message="not reported Ready yet")
    message = ready.get("message") or ready.get("reason") or ""
    return StageStatus(
        name=stage,
        service=name,
        ready=ready.get("status") == "True",
        message="" if ready.get("status") == "True" else message or "not Ready",
    )


def ready_summary(revisions: Iterable[RevisionStatus], serving: Iterable[str]) -> str:
    """``ready/total`` stages over the revisions that serve traffic, e.g. ``3/3``."""
    wanted = set(serving)
    stages = [s for r in revisions if r.name in wanted for s in r.stages]
    return f"{sum(s.ready for s in stages)}/{len(stages)}"
