"""Readiness of every revision, from its InferenceServices and their pods (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, RevisionStatus, StageStatus
from pipeline_operator.core.naming import service_name
from pipeline_operator.core.objects import condition
from pipeline_operator.core.observe.pods import Pods


@dataclass(frozen=True)
class Readiness:
    """Per-revision readiness of the children, with reasons for what is not ready, and the
    ready pods of each stage (the fewest over its components)."""

    ready: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    revisions: list[RevisionStatus] = field(default_factory=list)
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)


def readiness(
    pipeline: str,
    specs: Mapping[str, InferencePipelineSpec],
    services: Iterable[dict[str, Any]],
    pods: Mapping[tuple[str, str], Pods],
    refused: Mapping[str, str] | None = None,
) -> Readiness:
    """Readiness of every revision in ``specs`` from the InferenceServices that exist and
    their pods (``pods.by_component``); ``refused`` says why a missing one could not be
    created. A stage is Ready when KServe reports its InferenceService Ready and each of its
    components has at least its minReplicas pods ready."""
    by_name = {s["metadata"]["name"]: s for s in services}
    out = Readiness()
    for revision, spec in specs.items():
        stages = []
        out.replicas[revision] = {}
        for stage in spec.stages:
            status, ready_pods = _stage_status(
                pipeline, revision, stage.name, by_name, refused or {}, pods
            )
            stages.append(status)
            out.replicas[revision][stage.name] = ready_pods
        ready = all(s.ready for s in stages)
        out.ready[revision] = ready
        if not ready:
            out.reasons[revision] = "; ".join(
                f"stage {s.name}: {s.message}" for s in stages if not s.ready
            )
        out.revisions.append(RevisionStatus(name=revision, stages=stages, ready=ready))
    return out


def _stage_status(
    pipeline: str,
    revision: str,
    stage: str,
    by_name: Mapping[str, dict[str, Any]],
    refused: Mapping[str, str],
    pods: Mapping[tuple[str, str], Pods],
) -> tuple[StageStatus, int]:
    """The stage's status, and its ready pods (the fewest over its components)."""
    name = service_name(pipeline, stage, revision)
    service = by_name.get(name)
    if service is None:
        why = f"refused: {refused[name]}" if name in refused else "InferenceService missing"
        return StageStatus(name=stage, service=name, ready=False, message=why), 0
    wanted = {
        component: int(body.get("minReplicas", 1))
        for component, body in service["spec"].items()
        if component in ("predictor", "transformer")
    }
    seen = {component: pods.get((name, component), Pods()) for component in wanted}
    short = [c for c, n in wanted.items() if seen[c].ready < n]
    counts = StageStatus(
        name=stage,
        service=name,
        replicas=sum(wanted.values()),
        ready_replicas=sum(p.ready for p in seen.values()),
        pending=sum(p.pending for p in seen.values()),
        unschedulable=next((p.unschedulable for p in seen.values() if p.unschedulable), ""),
        container_error=next((p.failing for p in seen.values() if p.failing), ""),
    )
    ready_pods = min((p.ready for p in seen.values()), default=0)
    condition_ready = condition(service, "Ready")
    if condition_ready is None:
        return counts.model_copy(update={"message": "not reported Ready yet"}), ready_pods
    ok = condition_ready.get("status") == "True"
    message = "" if ok else condition_ready.get("message") or _failed(service) or ""
    if not ok and not message:
        message = condition_ready.get("reason") or ""
    if short:
        message = "; ".join(m for m in (_pod_message(counts), message) if m)
    return counts.model_copy(
        update={"ready": ok and not short, "message": message or ("" if ok else "not Ready")}
    ), ready_pods


def _failed(service: Mapping[str, Any]) -> str | None:
    """What a component's False condition says (``TransformerReady: fails to create ...``):
    KServe may leave Ready Unknown, without a message, while one of them has failed."""
    for c in (service.get("status") or {}).get("conditions") or []:
        if c.get("type") != "Ready" and c.get("status") == "False" and c.get("message"):
            return f"{c['type']}: {c['message']}"
    return None


def _pod_message(stage: StageStatus) -> str:
    """e.g. ``1/2 pods ready, 1 Pending: 0/6 nodes are available: 2 Insufficient ...``."""
    line = f"{stage.ready_replicas}/{stage.replicas} pods ready"
    if stage.pending:
        line += f", {stage.pending} Pending"
    whys = [why for why in (stage.unschedulable, stage.container_error) if why]
    return ": ".join([line, *whys])


def ready_summary(revisions: Iterable[RevisionStatus], serving: Iterable[str]) -> str:
    """``ready/total`` stages over the revisions that serve traffic, e.g. ``3/3``."""
    wanted = set(serving)
    stages = [s for r in revisions if r.name in wanted for s in r.stages]
    return f"{sum(s.ready for s in stages)}/{len(stages)}"
