"""The pods KServe runs for a pipeline's InferenceServices (pure): how many are ready, how many
are Pending, and why the scheduler cannot place them (their PodScheduled condition, e.g.
``0/6 nodes are available: 2 Insufficient nvidia.com/gpu, ...``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline_operator.api.v1alpha1 import RevisionStatus
from pipeline_operator.core.objects import condition

SERVICE_LABEL = "serving.kserve.io/inferenceservice"  # on every pod of an InferenceService
COMPONENT_LABEL = "component"  # predictor or transformer
GRAPH_LABEL = "serving.kserve.io/inferencegraph"  # on a graph's router Deployment and pods
FINISHED_PHASES = ("Succeeded", "Failed")
REASON = "Unschedulable"
FAILING = "ContainersFailing"
STUCK = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)
"""Waiting reasons of a container that will not run without a change (not a slow start)."""


@dataclass(frozen=True)
class Pods:
    """The live pods of one component (predictor or transformer) of an InferenceService."""

    ready: int = 0
    pending: int = 0
    unschedulable: str = ""
    failing: str = ""


def draining_routers(pods: Iterable[dict[str, Any]], graph: str) -> int:
    """How many of ``graph``'s router pods are being deleted but still run.

    Such a pod has left its Service's endpoints, so no new connection reaches it, but it goes
    on serving the connections it has (KServe's router waits 30 s after SIGTERM before it
    shuts its server down): a client's keep-alive connection still gets its old routes.
    """
    return sum(
        1
        for pod in pods
        if (pod["metadata"].get("labels") or {}).get(GRAPH_LABEL) == graph
        and pod["metadata"].get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in FINISHED_PHASES
    )


def by_component(pods: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Pods]:
    """(InferenceService, component) -> its pods; pods being deleted are left out."""
    out: dict[tuple[str, str], Pods] = {}
    for pod in pods:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        service = labels.get(SERVICE_LABEL)
        if service is None or meta.get("deletionTimestamp"):
            continue
        key = (service, labels.get(COMPONENT_LABEL, "predictor"))
        seen = out.get(key, Pods())
        ready = condition(pod, "Ready") or {}
        scheduled = condition(pod, "PodScheduled") or {}
        pending = (pod.get("status") or {}).get("phase") == "Pending"
        why = scheduled.get("message", "") if scheduled.get("status") == "False" else ""
        stuck = (pod.get("status") or {}).get("stuck") or []
        failing = (
            ": ".join(p for p in (stuck[0].get(k) for k in ("name", "reason", "message")) if p)
            if stuck
            else ""
        )
        out[key] = Pods(
            ready=seen.ready + (ready.get("status") == "True"),
            pending=seen.pending + pending,
            unschedulable=seen.unschedulable or why,
            failing=seen.failing or failing,
        )
    return out


def unschedulable(revisions: Sequence[RevisionStatus]) -> set[tuple[str, str, str]]:
    """(revision, stage, why) of every stage with pods the scheduler cannot place."""
    return {
        (r.name, s.name, s.unschedulable) for r in revisions for s in r.stages if s.unschedulable
    }


def failing(revisions: Sequence[RevisionStatus]) -> set[tuple[str, str, str]]:
    """(revision, stage, why) of every stage with a container stuck in an error."""
    return {
        (r.name, s.name, s.container_error)
        for r in revisions
        for s in r.stages
        if s.container_error
    }


def report(before: Sequence[RevisionStatus], after: Sequence[RevisionStatus]) -> str | None:
    """The Warning Event to post when stages have pods the scheduler cannot place, once per
    change of those stages and reasons."""
    now = unschedulable(after)
    if not now or now == unschedulable(before):
        return None
    pending = {(r.name, s.name): s.pending for r in after for s in r.stages}
    return "; ".join(
        f"revision {rev} stage {stage}: {pending[rev, stage]} pod(s) Pending: {why}"
        for rev, stage, why in sorted(now)
    )


def report_failing(before: Sequence[RevisionStatus], after: Sequence[RevisionStatus]) -> str | None:
    """The Warning Event to post when stages have containers stuck in an error (an image
    that will not pull, a securityContext it cannot start under, a crash loop), once per
    change of those stages and reasons."""
    now = failing(after)
    if not now or now == failing(before):
        return None
    return "; ".join(f"revision {rev} stage {stage}: {why}" for rev, stage, why in sorted(now))
