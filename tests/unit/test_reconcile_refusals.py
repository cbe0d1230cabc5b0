"""A child the apiserver or an admission webhook refuses is reported, never a silent stall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.settings import OperatorSettings
from tests.unit.fake_kube import FakeKube, reconcile

REFUSAL = 'admission webhook "inferenceservice.kserve-webhook-server.validator" denied it'


def pipeline(model: str = "model:1", deadline: int = 60) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "p", "namespace": "ml", "uid": "u1", "generation": 1},
        "spec": {
            "stages": [{"name": "m", "predictor": {"container": {"image": model}}}],
            "rollout": {"progressDeadlineSeconds": deadline},
        },
    }


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def setup(deadline: int = 60) -> tuple[FakeKube, Clock, Reconciler]:
    kube, clock = FakeKube(pipeline(deadline=deadline)), Clock()
    return kube, clock, Reconciler(kube, OperatorSettings(), clock=clock)  # type: ignore[arg-type]


def refuse_services(obj: dict[str, Any]) -> str | None:
    return REFUSAL if obj["kind"] == "InferenceService" else None


def ready_condition(kube: FakeKube) -> dict[str, Any]:
    return next(c for c in kube.pipeline["status"]["conditions"] if c["type"] == "Ready")


def warnings(kube: FakeKube) -> list[str]:
    return [message for type_, reason, message in kube.events if reason == "ApplyFailed"]


def test_a_refused_service_is_in_status_an_event_and_degrades_the_pipeline() -> None:
    kube, _, reconciler = setup()
    kube.refuse = refuse_services
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert status["phase"] == "Degraded"
    [error] = status["applyErrors"]
    assert error["kind"] == "InferenceService" and error["message"] == REFUSAL
    ready = ready_condition(kube)
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert REFUSAL in ready["message"] and REFUSAL in status["message"]
    assert status["revisions"][0]["stages"][0]["message"] == f"refused: {REFUSAL}"
    assert len(warnings(kube)) == 1 and REFUSAL in warnings(kube)[0]

    reconcile(reconciler, kube)  # refused again: still reported, no second Event
    assert kube.pipeline["status"]["applyErrors"] == status["applyErrors"]
    assert len(warnings(kube)) == 1


def test_the_report_clears_once_the_object_is_accepted() -> None:
    kube, _, reconciler = setup()
    kube.refuse = refuse_services
    reconcile(reconciler, kube)
    kube.refuse = lambda obj: None
    reconcile(reconciler, kube)
    kube.mark_ready()
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert not status.get("applyErrors")
    assert status["phase"] == "Healthy"
    assert ready_condition(kube)["reason"] == "Ready"


def test_a_refused_canary_waits_and_its_progress_deadline_aborts_naming_the_refusal() -> None:
    kube, clock, reconciler = setup(deadline=60)
    reconcile(reconciler, kube)
    kube.mark_ready()
    reconcile(reconciler, kube)
    assert kube.pipeline["status"]["phase"] == "Healthy"
    stable = {name for _, name in kube.children}

    kube.pipeline["spec"] = pipeline(model="model:2", deadline=60)["spec"]
    kube.refuse = lambda obj: None if obj["metadata"]["name"] in stable else refuse_services(obj)
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert status["phase"] == "Progressing"  # mid-rollout the rollout waits...
    assert status["waitingSince"]  # ...and its progress deadline counts
    assert ready_condition(kube)["reason"] == "ApplyFailed"
    clock.now += timedelta(seconds=61)
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert status["phase"] == "Aborted"
    assert REFUSAL in status["abortReason"]


def test_a_spec_the_models_refuse_reads_like_every_other_invalid_spec() -> None:
    """One prefix and one path style (``steps[1]``) for every invalid spec, whichever check
    finds it."""
    body = pipeline()
    metric = {"name": "ok", "query": "up", "successCondition": "result >"}
    steps = [{"setWeight": 20}, {"analysis": {"metrics": [metric]}}]
    body["spec"]["rollout"]["canary"] = {"steps": steps}
    kube = FakeKube(body)
    reconcile(Reconciler(kube, OperatorSettings()), kube)  # type: ignore[arg-type]
    status = kube.pipeline["status"]
    assert status["phase"] == "Degraded"
    assert status["message"].startswith(
        "invalid spec: spec.rollout.canary.steps[1].analysis.metrics[0].successCondition: "
    )
    assert ready_condition(kube)["reason"] == "InvalidSpec"
