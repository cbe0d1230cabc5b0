"""Spec snapshots in the reconcile: stored only for a revision that plans, rebuilt when lost."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.settings import OperatorSettings
from tests.unit.fake_kube import FakeKube, reconcile


def pipeline(name: str = "p", image: str = "model:1") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": "ml", "uid": "u1", "generation": 1},
        "spec": {"stages": [{"name": "m", "predictor": {"container": {"image": image}}}]},
    }


def test_a_pipeline_refused_at_planning_leaves_nothing_behind() -> None:
    kube = FakeKube(pipeline(name="1st-classifier"))
    reconciler = Reconciler(kube, OperatorSettings())  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert status["phase"] == "Degraded"
    assert "not accepted by KServe" in status["message"]
    assert kube.revisions == {}
    assert kube.children == {}
    assert [reason for _, reason, _ in kube.events] == ["PlanFailed"]


def rolling_out() -> tuple[FakeKube, Reconciler, str]:
    """A pipeline whose stable revision serves while a canary rolls out; and that stable."""
    kube = FakeKube(pipeline())
    reconciler = Reconciler(kube, OperatorSettings())  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    kube.mark_ready()
    reconcile(reconciler, kube)
    stable = kube.pipeline["status"]["stableRevision"]
    kube.pipeline["spec"]["stages"][0]["predictor"]["container"]["image"] = "model:2"
    reconcile(reconciler, kube)
    assert kube.pipeline["status"]["canaryRevision"] not in (None, stable)
    return kube, reconciler, stable


def snapshot_of(kube: FakeKube, revision: str) -> str:
    return next(
        name
        for name, body in kube.revisions.items()
        if body["metadata"]["labels"]["pipelines.inference.dev/revision"] == revision
    )


def test_a_deleted_snapshot_of_the_stable_revision_is_rebuilt_from_its_children() -> None:
    kube, reconciler, stable = rolling_out()
    stored = kube.revisions.pop(snapshot_of(kube, stable))
    reconcile(reconciler, kube)
    rebuilt = kube.revisions[snapshot_of(kube, stable)]
    assert rebuilt["data"]["spec"]["stages"] == stored["data"]["spec"]["stages"]
    assert "SnapshotRebuilt" in [reason for _, reason, _ in kube.events]
    status = kube.pipeline["status"]
    assert (status["stableRevision"], status["phase"]) == (stable, "Progressing")


def test_a_snapshot_no_child_can_rebuild_degrades_and_commands_are_still_answered() -> None:
    kube, reconciler, stable = rolling_out()
    kube.revisions.pop(snapshot_of(kube, stable))
    kube.children.pop(("InferenceService", f"p-m-{stable}"))
    kube.pipeline["metadata"]["annotations"] = {"pipelines.inference.dev/command": "abort:1"}
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert status["phase"] == "Degraded"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SnapshotMissing")
    assert stable in ready["message"]
    assert status["lastCommand"]["command"] == "abort:1"
    assert status["lastCommand"]["result"] == "Rejected"
    assert stable in status["lastCommand"]["message"]
    reasons = [reason for _, reason, _ in kube.events]
    assert reasons.count("SnapshotMissing") == 1 and "CommandRejected" in reasons

    reconcile(reconciler, kube)  # reported once, not again
    assert [reason for _, reason, _ in kube.events].count("SnapshotMissing") == 1
