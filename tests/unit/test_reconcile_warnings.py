"""Lint warnings of a pipeline's spec reach its status and an Event while it reconciles."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.settings import OperatorSettings
from tests.unit.fake_kube import FakeKube, reconcile


def pipeline(*, scale_to_zero: bool) -> dict[str, Any]:
    scaling = {"minReplicas": 0, "maxReplicas": 2} if scale_to_zero else {}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "p", "namespace": "ml", "uid": "u1", "generation": 1},
        "spec": {
            "stages": [
                {"name": "m", "predictor": {"container": {"image": "m:1"}}, "scaling": scaling}
            ]
        },
    }


def condition(kube: FakeKube) -> dict[str, Any] | None:
    conditions = kube.pipeline["status"]["conditions"]
    return next((c for c in conditions if c["type"] == "Warnings"), None)


def spec_warnings(kube: FakeKube) -> list[str]:
    return [m for type_, reason, m in kube.events if (type_, reason) == ("Warning", "SpecWarnings")]


def test_a_warning_is_a_condition_and_one_event_until_the_spec_is_fixed() -> None:
    kube = FakeKube(pipeline(scale_to_zero=True))
    reconciler = Reconciler(kube, OperatorSettings())  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    warned = condition(kube)
    assert warned is not None and warned["status"] == "True"
    assert "spec.stages[0] (m).scaling.minReplicas" in warned["message"]
    assert "Knative" in warned["message"]
    reconcile(reconciler, kube)  # unchanged: no second Event
    assert len(spec_warnings(kube)) == 1 and "minReplicas" in spec_warnings(kube)[0]

    kube.pipeline["spec"] = pipeline(scale_to_zero=False)["spec"]
    kube.pipeline["metadata"]["generation"] = 2
    reconcile(reconciler, kube)
    cleared = condition(kube)
    assert cleared is not None and cleared["status"] == "False"
    assert len(spec_warnings(kube)) == 1


def test_a_pipeline_without_warnings_has_no_warnings_condition() -> None:
    kube = FakeKube(pipeline(scale_to_zero=False))
    reconcile(Reconciler(kube, OperatorSettings()), kube)  # type: ignore[arg-type]
    assert condition(kube) is None


def test_a_host_name_kserve_cannot_fit_in_a_dns_label_is_a_warning() -> None:
    body = pipeline(scale_to_zero=False)
    body["metadata"]["namespace"] = "ml-production-team-a"  # 20 characters
    stage = body["spec"]["stages"][0]
    stage["name"] = "classifier"
    stage["transformer"] = {"image": "t:1"}
    body["metadata"]["name"] = "sentiment-experiment"
    kube = FakeKube(body)
    reconcile(Reconciler(kube, OperatorSettings()), kube)  # type: ignore[arg-type]
    warned = condition(kube)
    assert warned is not None and warned["status"] == "True"
    message = warned["message"]
    assert "spec.stages[0] (classifier): KServe names the host of its predictor" in message
    assert "its transformer sentiment-experiment-classifier-" in message
    assert "-transformer-ml-production-team-a (73 characters)" in message
    assert "-predictor-ml-production-team-a (71 characters)" in message

    short = pipeline(scale_to_zero=False)
    kube = FakeKube(short)
    reconcile(Reconciler(kube, OperatorSettings()), kube)  # type: ignore[arg-type]
    assert condition(kube) is None
