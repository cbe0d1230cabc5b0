"""The Available, Progressing and Ready conditions, derived from the settled status."""

from __future__ import annotations

from typing import Literal

from pipeline_operator.api.v1alpha1 import Condition, InferencePipelineStatus, Phase
from pipeline_operator.core.revisions import canary_active
from pipeline_operator.core.rollout.context import Run

AVAILABLE = "Available"
PROGRESSING = "Progressing"
READY = "Ready"
WARNINGS = "Warnings"
_SETTLED = {"RolloutCompleted", "NoRollout"}


def find(status: InferencePipelineStatus, kind: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == kind), None)


def put(run: Run, kind: str, ok: bool, reason: str, message: str) -> None:
    """Set a condition in place; its transition time moves only when its status flips."""
    s = run.status
    flag: Literal["True", "False"] = "True" if ok else "False"
    old = find(s, kind)
    since = old.last_transition_time if old is not None and old.status == flag else run.stamp
    new = Condition(
        type=kind,
        status=flag,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=s.observed_generation,
    )
    s.conditions = [new if c.type == kind else c for c in s.conditions]
    if old is None:
        s.conditions.append(new)


def update(run: Run) -> None:
    """Available: the stable revision is Ready. Progressing: a rollout (or the first
    deployment) is under way. Ready: available and not progressing."""
    s = run.status
    stable = s.stable_revision
    if stable is None:
        return
    if run.ready(stable):
        available = (True, "StableReady", f"stable revision {stable} is Ready")
    else:
        why = run.why_not_ready(stable)
        available = (False, "StableNotReady", f"stable revision {stable} is not ready: {why}")
    if s.phase == Phase.ABORTED:
        progressing = (False, "RolloutAborted", s.abort_reason or "")
    elif canary_active(s) or s.phase == Phase.PROGRESSING or s.pending_revision is not None:
        reason = "RolloutPaused" if s.phase == Phase.PAUSED else "RolloutInProgress"
        progressing = (True, reason, s.message)
    else:
        progressing = (False, *_settled(run))
    if progressing[0]:
        ready = (False, progressing[1], progressing[2])
    elif not available[0]:
        ready = available
    else:
        ready = (True, "Ready", s.message)
    for kind, (ok, reason, message) in (
        (AVAILABLE, available),
        (PROGRESSING, progressing),
        (READY, ready),
    ):
        put(run, kind, ok, reason, message)


def _settled(run: Run) -> tuple[str, str]:
    """Reason and message of a Progressing condition with no rollout under way."""
    before = find(run.before, PROGRESSING)
    reason = run.outcome or (
        before.reason if before is not None and before.reason in _SETTLED else "NoRollout"
    )
    if reason == "RolloutCompleted":
        return reason, f"revision {run.status.stable_revision} rolled out"
    return reason, "no rollout in progress"


def report_warnings(run: Run) -> None:
    """The Warnings condition: True with the lint warnings while there are any (an Event
    when they change), False once they are gone."""
    message = "; ".join(run.obs.warnings)
    before = find(run.before, WARNINGS)
    if message:
        if before is None or (before.status, before.message) != ("True", message):
            run.warning("SpecWarnings", message)
        put(run, WARNINGS, True, "SpecWarnings", message)
    elif before is not None:
        put(run, WARNINGS, False, "NoWarnings", "")
