"""Webhook gates of a canary rollout (``spec.rollout.webhooks``): where the engine waits on
them, what their answers do, and which of them are to be called now.

The engine records a gate in ``status.gates`` as Waiting when the rollout reaches it; the
operator calls the gate's webhooks due then (:func:`due_webhooks`) and passes the answers in
``Observations.webhook_calls``; the engine judges them at its next step. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from pipeline_operator.api.v1alpha1 import (
    GateStatus,
    InferencePipelineSpec,
    InferencePipelineStatus,
    Webhook,
    WebhookCall,
    WebhookType,
)
from pipeline_operator.core.revisions import canary_active
from pipeline_operator.core.rollout import transitions
from pipeline_operator.core.rollout.clock import parse
from pipeline_operator.core.rollout.context import Run
from pipeline_operator.core.rollout.model import GateKey
from pipeline_operator.core.rollout.steps import position

GATE_POLL = timedelta(seconds=10)
"""How often a ConfirmPromotion or Rollback webhook is asked again."""
CALL_SOON = timedelta(seconds=1)
"""When to run again for a gate just reached (the operator calls its webhooks then)."""

ROLLOUT_ENDED = ("RolloutCompleted", "Aborted", "RolloutReverted")
"""The Event reasons after which PostRollout webhooks are told."""

LABELS: Mapping[WebhookType, str] = {
    "PreRollout": "pre-rollout",
    "Step": "step",
    "ConfirmPromotion": "confirm-promotion",
    "PostRollout": "post-rollout",
    "Rollback": "rollback",
}


def key_of(gate: GateStatus) -> GateKey:
    return (gate.type, gate.step_index, gate.revision)


def webhooks_of(spec: InferencePipelineSpec, kind: WebhookType) -> list[Webhook]:
    return [w for w in spec.rollout.webhooks if w.type == kind]


def passed(run: Run, kind: WebhookType, step_index: int | None = None) -> bool:
    """Whether the ``kind`` gate (at ``step_index``) of the canary has passed; records it and
    this reconcile's answers to it, and aborts the rollout on a failed PreRollout or Step
    webhook. True at once when the spec has no webhook of that type."""
    hooks = webhooks_of(run.spec, kind)
    if not hooks:
        return True
    gate = _gate(run, kind, step_index)
    if gate.phase == "Passed":
        return True
    where = _where(run, kind, step_index)
    answered = {c.name: c for c in gate.calls}
    waiting = [w.name for w in hooks if not (w.name in answered and answered[w.name].success)]
    if not waiting:
        gate.phase, gate.message = "Passed", ""
        run.normal("GatePassed", f"{where}: {', '.join(w.name for w in hooks)} answered 2xx")
        return True
    failed = [answered[n] for n in waiting if n in answered]
    if failed and kind in ("PreRollout", "Step"):
        gate.phase = "Failed"
        gate.message = f"webhook {failed[0].name}: {failed[0].message}"
        run.warning("GateFailed", f"{where}: {gate.message}")
        transitions.abort(run, f"{where} {gate.message}")
        return False
    gate.message = "; ".join(
        f"{n}: {answered[n].message}" if n in answered else f"{n}: not answered yet"
        for n in waiting
    )
    _wake(run, gate)
    return False


def rolled_back(run: Run) -> bool:
    """Whether a Rollback webhook asked for the canary to be rolled back (2xx); it then is
    aborted. Records the latest answers."""
    if not webhooks_of(run.spec, "Rollback"):
        return False
    gate = _gate(run, "Rollback", None)
    asked = next((c for c in gate.calls if c.success), None)
    if asked is None:
        _wake(run, gate)
        return False
    gate.phase, gate.message = "Passed", f"webhook {asked.name}: {asked.message}"
    run.warning("GateRollback", f"rollback requested by webhook {asked.name}: {asked.message}")
    transitions.abort(run, f"rollback requested by webhook {asked.name}: {asked.message}")
    return True


def waiting_for(status: InferencePipelineStatus, step_index: int | None) -> GateStatus | None:
    """The gate the canary waits on now, if any (for status.message)."""
    canary = status.canary_revision or ""
    for gate in status.gates:
        if gate.phase != "Waiting" or gate.type == "Rollback" or gate.revision != canary:
            continue
        if gate.type != "Step" or gate.step_index == step_index:
            return gate
    return None


def describe(gate: GateStatus) -> str:
    return f"waiting for {LABELS[gate.type]} webhooks ({gate.message})"


def due_webhooks(
    spec: InferencePipelineSpec, status: InferencePipelineStatus, now: datetime
) -> dict[GateKey, list[Webhook]]:
    """The webhooks to call now, by gate: those of each Waiting gate of the canary in
    progress not yet answered 2xx, first at once, then every ``GATE_POLL``."""
    if spec.rollout.strategy != "Canary" or spec.paused or not canary_active(status):
        return {}
    out: dict[GateKey, list[Webhook]] = {}
    for gate in status.gates:
        if gate.phase != "Waiting" or gate.revision != status.canary_revision:
            continue
        calls = {c.name: c for c in gate.calls}
        due = [
            w
            for w in webhooks_of(spec, gate.type)
            if w.name not in calls
            or (not calls[w.name].success and parse(calls[w.name].at) + GATE_POLL <= now)
            or (gate.type == "Rollback" and parse(calls[w.name].at) + GATE_POLL <= now)
        ]
        if due:
            out[key_of(gate)] = due
    return out


def _gate(run: Run, kind: WebhookType, step_index: int | None) -> GateStatus:
    """The gate's entry in status (added, Waiting, when the rollout first reaches it), with
    the answers this reconcile brought."""
    s = run.status
    key: GateKey = (kind, step_index, s.canary_revision or "")
    gate = next((g for g in s.gates if key_of(g) == key), None)
    if gate is None:
        gate = GateStatus(type=kind, step_index=step_index, revision=key[2])
        s.gates.append(gate)
        if kind != "Rollback":
            run.normal("GateWaiting", f"{_where(run, kind, step_index)}: calling its webhooks")
    new: Sequence[WebhookCall] = run.obs.webhook_calls.get(key, ())
    if new and gate.phase == "Waiting":
        fresh = {c.name for c in new}
        gate.calls = [*(c for c in gate.calls if c.name not in fresh), *new]
    return gate


def _wake(run: Run, gate: GateStatus) -> None:
    """Run again when the gate's next call is due (at once for one not called yet)."""
    hooks = {w.name for w in webhooks_of(run.spec, gate.type)}
    called = {c.name: parse(c.at) for c in gate.calls if c.name in hooks}
    if len(called) < len(hooks):
        run.wake_at(run.now + CALL_SOON)
        return
    run.wake_at(max(run.now + CALL_SOON, min(called.values()) + GATE_POLL))


def _where(run: Run, kind: WebhookType, step_index: int | None) -> str:
    label = f"{LABELS[kind]} gate"
    return f"{label}, {position(step_index, run.spec)}" if step_index is not None else label
