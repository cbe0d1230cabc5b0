"""Turn live children into what the rollout engine observes (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, RevisionStatus, StageStatus
from pipeline_operator.core.naming import service_name
from pipeline_operator.core.objects import condition
from pipeline_operator.core.observe.pods import Pods, draining_routers
from pipeline_operator.core.planner.graph import TRAFFIC_ANNOTATION, parse_traffic


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
    )
    ready_pods = min((p.ready for p in seen.values()), default=0)
    condition_ready = condition(service, "Ready")
    if condition_ready is None:
        return counts.model_copy(update={"message": "not reported Ready yet"}), ready_pods
    ok = condition_ready.get("status") == "True"
    message = "" if ok else condition_ready.get("message") or condition_ready.get("reason") or ""
    if short:
        message = "; ".join(m for m in (_pod_message(counts), message) if m)
    return counts.model_copy(
        update={"ready": ok and not short, "message": message or ("" if ok else "not Ready")}
    ), ready_pods


def _pod_message(stage: StageStatus) -> str:
    """e.g. ``1/2 pods ready, 1 Pending: 0/6 nodes are available: 2 Insufficient ...``."""
    line = f"{stage.ready_replicas}/{stage.replicas} pods ready"
    if stage.pending:
        line += f", {stage.pending} Pending"
    return f"{line}: {stage.unschedulable}" if stage.unschedulable else line


def ready_summary(revisions: Iterable[RevisionStatus], serving: Iterable[str]) -> str:
    """``ready/total`` stages over the revisions that serve traffic, e.g. ``3/3``."""
    wanted = set(serving)
    stages = [s for r in revisions if r.name in wanted for s in r.stages]
    return f"{sum(s.ready for s in stages)}/{len(stages)}"


@dataclass(frozen=True)
class RouterRollout:
    """Whether a graph's router serves the graph's current routes on every replica."""

    rolled_out: bool
    message: str


_STEP_KEYS = ("name", "nodeName", "serviceName", "weight", "condition", "dependency", "data")


def routes(nodes: Mapping[str, Any]) -> dict[str, Any]:
    """What decides where a request goes: per node, its router type and its steps."""
    return {
        name: (
            node.get("routerType"),
            [tuple(step.get(k) for k in _STEP_KEYS) for step in node.get("steps") or []],
        )
        for name, node in nodes.items()
    }


def _graph_json(deployment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The graph a router Deployment's pods are started with (KServe's ``--graph-json``)."""
    for container in deployment["spec"]["template"]["spec"].get("containers") or []:
        args = list(container.get("args") or [])
        if "--graph-json" in args[:-1]:
            try:
                value = json.loads(args[args.index("--graph-json") + 1])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def served_traffic(
    graph: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
    pods: Iterable[dict[str, Any]] = (),
) -> tuple[dict[str, int] | None, RouterRollout | None]:
    """The split a graph's router serves on every replica (None while it rolls out), and the
    state of its rollout (None without a graph); ``pods`` are the pipeline's pods."""
    if graph is None:
        return None, None
    rollout = router_rollout(graph, deployment, pods)
    annotation = (graph["metadata"].get("annotations") or {}).get(TRAFFIC_ANNOTATION, "")
    return (parse_traffic(annotation) if rollout.rolled_out else None), rollout


def router_rollout(
    graph: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    pods: Iterable[dict[str, Any]] = (),
) -> RouterRollout:
    """Has KServe rolled the graph's current routes out to all of its router's replicas?

    KServe marks an InferenceGraph Ready as soon as its router Deployment has an Available
    condition of any status, and rolls the router out anew on every graph change; so this
    looks at the Deployment itself: the routes in its pod template, the generation its
    controller observed, and updated and available replicas with no old ones left. The
    Deployment no longer counts an old pod once it is being deleted, but that pod still
    serves its open connections with the old routes: rolled out means none is left.
    """
    if deployment is None:
        return RouterRollout(False, "router Deployment not created yet")
    served = _graph_json(deployment)
    if served is None or routes(served.get("nodes") or {}) != routes(graph["spec"]["nodes"]):
        return RouterRollout(False, "router not yet updated to the graph's routes")
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return RouterRollout(False, "router rollout not yet observed")
    want = int(deployment["spec"].get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    if updated < want:
        return RouterRollout(False, f"router rolling out: {updated} of {want} replicas updated")
    if total > updated:
        return RouterRollout(False, f"router rolling out: {total - updated} old replicas left")
    if available < want:
        return RouterRollout(False, f"router rolling out: {available} of {want} available")
    draining = draining_routers(pods, graph["metadata"]["name"])
    if draining:
        return RouterRollout(
            False, f"router rolling out: {draining} old pods still serving their connections"
        )
    return RouterRollout(True, f"router serves the current routes ({available}/{want} ready)")
