"""Pods of a pipeline's InferenceServices: ready and Pending counts, the scheduler's reason,
and how they make a stage Ready or not."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, RevisionStatus, StageStatus
from pipeline_operator.core.observe import pods
from pipeline_operator.core.observe.readiness import readiness
from pipeline_operator.k8s.cache import cached, trim_child, trim_pod

WHY = "0/6 nodes are available: 2 Insufficient nvidia.com/gpu, 4 node(s) didn't match selector"


def pod(service: str, component: str = "predictor", phase: str = "Running") -> dict[str, Any]:
    ready = phase == "Running"
    scheduled = {"type": "PodScheduled", "status": "True"}
    if not ready:
        scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
        scheduled["message"] = WHY
    labels = {"serving.kserve.io/inferenceservice": service, "component": component}
    conditions = [scheduled, {"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": {"labels": labels}, "status": {"phase": phase, "conditions": conditions}}


def service(name: str, replicas: int, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"predictor": {"minReplicas": replicas}},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


SPEC = InferencePipelineSpec.model_validate(
    {"stages": [{"name": "m", "predictor": {"container": {"image": "m:1"}}}]}
)


def test_pods_are_counted_per_component_and_deleted_ones_left_out() -> None:
    gone = pod("p-m-r1")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    counted = pods.by_component(
        [pod("p-m-r1"), pod("p-m-r1", phase="Pending"), pod("p-m-r1", "transformer"), gone]
    )
    assert counted == {
        ("p-m-r1", "predictor"): pods.Pods(ready=1, pending=1, unschedulable=WHY),
        ("p-m-r1", "transformer"): pods.Pods(ready=1),
    }


def test_a_stage_short_of_pods_is_not_ready_and_says_why() -> None:
    running = pods.by_component([pod("p-m-r1"), pod("p-m-r1", phase="Pending")])
    seen = readiness("p", {"r1": SPEC}, [service("p-m-r1", 2)], running)
    [stage] = seen.revisions[0].stages
    assert not stage.ready and not seen.ready["r1"]
    assert (stage.replicas, stage.ready_replicas, stage.pending) == (2, 1, 1)
    assert stage.unschedulable == WHY
    assert stage.message == f"1/2 pods ready, 1 Pending: {WHY}"
    assert "Insufficient nvidia.com/gpu" in seen.reasons["r1"]
    assert seen.replicas == {"r1": {"m": 1}}

    running = pods.by_component([pod("p-m-r1"), pod("p-m-r1")])
    assert readiness("p", {"r1": SPEC}, [service("p-m-r1", 2)], running).ready["r1"]


def test_a_component_kserve_failed_to_reconcile_is_named_while_ready_is_unknown() -> None:
    failed = service("p-m-r1", 1)
    failed["spec"]["transformer"] = {"minReplicas": 1}
    why = 'failed creating host name: invalid domain name "p-m-r1-transformer-ml.example.com"'
    failed["status"]["conditions"] = [
        {"type": "PredictorReady", "status": "True"},
        {"type": "Ready", "status": "Unknown"},
        {"type": "TransformerReady", "status": "False", "reason": "Failed", "message": why},
        {"type": "IngressReady", "status": "Unknown"},
    ]
    cached = trim_child(failed)  # as the cache keeps it: Ready and what is False
    assert [c["type"] for c in cached["status"]["conditions"]] == ["Ready", "TransformerReady"]
    running = pods.by_component([pod("p-m-r1")])
    [stage] = readiness("p", {"r1": SPEC}, [cached], running).revisions[0].stages
    assert stage.message == f"1/2 pods ready; TransformerReady: {why}"


def revision(why: str = "", pending: int = 0) -> list[RevisionStatus]:
    stage = StageStatus(name="m", service="p-m-r1", pending=pending, unschedulable=why)
    return [RevisionStatus(name="r1", stages=[stage])]


def test_unschedulable_pods_are_reported_once_per_change() -> None:
    assert pods.report(revision(), revision()) is None
    message = pods.report(revision(), revision(WHY, 1))
    assert message == f"revision r1 stage m: 1 pod(s) Pending: {WHY}"
    assert pods.report(revision(WHY, 1), revision(WHY, 2)) is None
    assert pods.report(revision(WHY, 1), revision()) is None


def stuck_pod(service_name: str, reason: str, message: str) -> dict[str, Any]:
    body = pod(service_name)
    body["status"]["conditions"][1]["status"] = "False"
    waiting = {"reason": reason, "message": message}
    body["status"]["containerStatuses"] = [
        {"name": "kserve-container", "state": {"waiting": waiting}}
    ]
    return body


def test_a_container_stuck_in_an_error_is_named_in_the_stage_and_reported_once() -> None:
    why = "container has runAsNonRoot and image will run as root"
    # As the store keeps them (packed) and a reconcile opens them.
    listed = [
        cached(stuck_pod("p-m-r1", reason, message), trim_pod, "Pod").body
        for reason, message in (("CreateContainerConfigError", why), ("ContainerCreating", ""))
    ]  # the second only slow
    seen = readiness("p", {"r1": SPEC}, [service("p-m-r1", 1)], pods.by_component(listed))
    [stage] = seen.revisions[0].stages
    error = f"kserve-container: CreateContainerConfigError: {why}"
    assert stage.container_error == error
    assert not stage.ready and stage.message == f"0/1 pods ready: {error}"
    assert error in seen.reasons["r1"]

    assert pods.report_failing([], seen.revisions) == f"revision r1 stage m: {error}"
    assert pods.report_failing(seen.revisions, seen.revisions) is None
    assert pods.report(revision(), seen.revisions) is None  # nothing unschedulable
