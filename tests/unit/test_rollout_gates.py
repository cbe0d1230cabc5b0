"""Webhook gates of a canary: the engine waits on them, the operator calls what is due."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from pipeline_operator.api.v1alpha1 import (
    Canary,
    CanaryStep,
    Phase,
    Rollout,
    Webhook,
    WebhookCall,
)
from pipeline_operator.core.rollout.clock import stamp
from pipeline_operator.core.rollout.engine import Decision
from pipeline_operator.core.rollout.gates import GATE_POLL, due_webhooks
from tests.unit.world import World, reasons, sample_spec

Answer = Callable[[Webhook], tuple[bool, str]]


def hooks(*specs: tuple[str, str]) -> list[Webhook]:
    return [Webhook(name=name, type=kind, url=f"http://gate/{name}") for name, kind in specs]  # type: ignore[arg-type]


def world(*webhooks: Webhook, steps: tuple[CanaryStep, ...] = ()) -> World:
    plan = list(steps) or [CanaryStep(set_weight=20), CanaryStep(set_weight=60)]
    rollout = Rollout(canary=Canary(steps=plan), webhooks=list(webhooks))
    w = World(spec=sample_spec(rollout), desired="r1", ready={"r1": True})
    w.tick()
    w.desired, w.ready["r2"] = "r2", True
    return w


def reconcile(w: World, answer: Answer) -> tuple[Decision, list[str]]:
    """One operator reconcile: call the webhooks due (``answer`` plays them), then step."""
    due = due_webhooks(w.spec, w.status, w.now)
    calls = {
        key: [
            WebhookCall(name=h.name, success=ok, message=m, at=stamp(w.now))
            for h in hs
            for ok, m in [answer(h)]
        ]
        for key, hs in due.items()
    }
    called = [h.name for hs in due.values() for h in hs]
    return w.tick(webhook_calls=calls), called


def settle(w: World, answer: Answer, rounds: int = 10) -> list[str]:
    """Reconcile until nothing is due; every webhook called, in order."""
    called: list[str] = []
    for _ in range(rounds):
        _, now = reconcile(w, answer)
        called += now
        if not due_webhooks(w.spec, w.status, w.now):
            break
    return called


def ok(hook: Webhook) -> tuple[bool, str]:
    return True, "HTTP 200"


def test_without_webhooks_nothing_is_due_and_the_canary_walks_as_before() -> None:
    w = world()
    w.tick()
    w.tick()
    assert w.status.stable_revision == "r2" and w.status.gates == []


def test_pre_rollout_holds_the_canary_at_zero_until_it_answers() -> None:
    w = world(*hooks(("smoke", "PreRollout")))
    decision = w.tick()
    assert "GateWaiting" in reasons(decision)
    assert w.status.canary_weight == 0 and w.status.phase == Phase.PROGRESSING
    assert "waiting for pre-rollout webhooks (smoke: not answered yet)" in w.status.message
    assert decision.requeue_after is not None and decision.requeue_after <= 1
    assert settle(w, ok) == ["smoke"]
    assert w.status.stable_revision == "r2" and w.status.phase == Phase.HEALTHY


@pytest.mark.parametrize("kind", ["PreRollout", "Step"])
def test_a_failed_pre_rollout_or_step_webhook_aborts_naming_it(kind: str) -> None:
    w = world(*hooks(("check", kind)))
    w.tick()
    reconcile(w, lambda h: (False, "HTTP 500 after 3 tries"))
    assert w.status.phase == Phase.ABORTED
    assert "webhook check: HTTP 500 after 3 tries" in (w.status.abort_reason or "")
    assert [g.phase for g in w.status.gates] == ["Failed"]
    assert [t.weight for t in w.status.traffic] == [100]


def test_step_webhooks_are_called_once_per_step_after_its_weight_serves() -> None:
    w = world(*hooks(("load", "Step")))
    w.tick()
    assert w.status.canary_weight == 20  # set, then waits for the step gate
    assert settle(w, ok) == ["load", "load"]
    assert w.status.stable_revision == "r2"
    w.router_follows = False  # a router that has not served the new weight yet
    w2 = world(*hooks(("load", "Step")))
    w2.router_follows = False
    w2.served = {"r1": 100}
    w2.tick()
    assert due_webhooks(w2.spec, w2.status, w2.now) == {}


def test_confirm_promotion_waits_asking_again_until_it_answers_2xx() -> None:
    w = world(*hooks(("approve", "ConfirmPromotion")))
    w.tick()
    assert w.status.canary_weight == 60
    answers = iter([(False, "HTTP 403"), (False, "HTTP 403"), (True, "HTTP 200")])
    reconcile(w, lambda h: next(answers))
    assert w.status.phase == Phase.PROGRESSING and w.status.canary_revision == "r2"
    assert "waiting for confirm-promotion webhooks (approve: HTTP 403)" in w.status.message
    assert due_webhooks(w.spec, w.status, w.now) == {}  # not again before the poll interval
    w.advance(GATE_POLL.total_seconds())
    reconcile(w, lambda h: next(answers))
    assert w.status.canary_revision == "r2"
    w.advance(GATE_POLL.total_seconds())
    decision, called = reconcile(w, lambda h: next(answers))
    assert called == ["approve"] and "GatePassed" in reasons(decision)
    assert w.status.stable_revision == "r2" and w.status.gates == []


def test_every_webhook_of_a_gate_must_pass() -> None:
    w = world(*hooks(("a", "ConfirmPromotion"), ("b", "ConfirmPromotion")))
    w.tick()
    reconcile(w, lambda h: (h.name == "a", "HTTP 200" if h.name == "a" else "HTTP 409"))
    assert "(b: HTTP 409)" in w.status.message
    w.advance(GATE_POLL.total_seconds())
    _, called = reconcile(w, ok)
    assert called == ["b"]  # a passed: not asked again
    assert w.status.stable_revision == "r2"


def test_a_rollback_webhook_answering_2xx_aborts_the_canary() -> None:
    w = world(*hooks(("stop", "Rollback"), ("approve", "ConfirmPromotion")))
    w.tick()
    reconcile(w, lambda h: (False, "HTTP 404") if h.name == "stop" else (False, "HTTP 403"))
    assert w.status.canary_revision == "r2" and w.status.phase != Phase.ABORTED
    w.advance(GATE_POLL.total_seconds())
    decision, _ = reconcile(w, lambda h: (True, "HTTP 200") if h.name == "stop" else (False, ""))
    assert "GateRollback" in reasons(decision)
    assert w.status.phase == Phase.ABORTED
    assert w.status.abort_reason == "rollback requested by webhook stop: HTTP 200"


def test_gates_are_per_canary_revision_and_reset_by_a_new_rollout() -> None:
    w = world(*hooks(("smoke", "PreRollout")))
    w.tick()
    w.desired, w.ready["r3"] = "r3", True
    w.tick()
    assert [(g.revision, g.phase) for g in w.status.gates] == [("r3", "Waiting")]
    assert list(due_webhooks(w.spec, w.status, w.now)) == [("PreRollout", None, "r3")]


def test_nothing_is_called_under_spec_paused_or_once_aborted() -> None:
    w = world(*hooks(("approve", "ConfirmPromotion")))
    w.tick()
    w.spec = w.spec.model_copy(update={"paused": True})
    assert due_webhooks(w.spec, w.status, w.now) == {}
    w.spec = w.spec.model_copy(update={"paused": False})
    w.tick("abort")
    assert due_webhooks(w.spec, w.status, w.now) == {}


def test_a_rerun_with_the_same_answers_changes_nothing() -> None:
    w = world(*hooks(("approve", "ConfirmPromotion")))
    w.tick()
    reconcile(w, lambda h: (False, "HTTP 403"))
    before = w.status.model_copy(deep=True)
    decision = w.tick()
    assert decision.status.gates == before.gates and reasons(decision) == []


def test_webhooks_need_the_canary_strategy_and_unique_names() -> None:
    with pytest.raises(ValidationError, match="only valid with strategy Canary"):
        Rollout(strategy="BlueGreen", webhooks=hooks(("a", "PreRollout")))
    with pytest.raises(ValidationError, match="webhook names must be unique"):
        Rollout(webhooks=hooks(("a", "PreRollout"), ("a", "Step")))
