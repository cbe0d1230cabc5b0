"""Spec snapshots in the reconcile: stored only for a revision that plans, rebuilt when lost."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND
from pipeline_operator.reconcile import Reconciler
from pipeline_operator.settings import OperatorSettings
from tests.unit.fake_kube import FakeKube


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
    reconciler.reconcile("ml", "1st-classifier")
    status = kube.pipeline["status"]
    assert status["phase"] == "Degraded"
    assert "not accepted by KServe" in status["message"]
    assert kube.revisions == {}
    assert kube.children == {}
    assert [reason for _, reason, _ in kube.events] == ["PlanFailed"]
