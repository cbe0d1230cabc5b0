"""Rollout lifecycle shared by both strategies: start, revert, wait for readiness, abort,
promote."""

from __future__ import annotations

from datetime import timedelta

from pipeline_operator.api.v1alpha1 import BlueGreen, Phase
from pipeline_operator.core.revisions import canary_role
from pipeline_operator.core.rollout.clock import parse, stamp
from pipeline_operator.core.rollout.context import Run
from pipeline_operator.core.rollout.steps import scale_at

ROUTER_POLL = timedelta(seconds=5)
"""How often to look again while a router rolls out, should its watch events be missed."""


def _reset(run: Run) -> None:
    """Forget the progress of the rollout in flight."""
    s = run.status
    s.current_step_index = None
    s.step_started_at = None
    s.paused_at = None
    s.waiting_since = None
    s.canary_weight = 0
    s.mirror_percent = 0
    s.canary_scale = None


def start(run: Run, why: str = "") -> None:
    """Roll the desired revision out over the stable one, from the first step."""
    s = run.status
    desired = run.obs.desired_revision
    _reset(run)
    s.canary_revision = desired
    canary = run.spec.rollout.strategy == "Canary"
    s.current_step_index = 0 if canary else None
    s.canary_scale = scale_at(run.spec, 0, 0) if canary else None
    s.step_started_at = run.stamp
    s.abort_reason = None
    s.analysis = None
    s.gates = []
    s.phase = Phase.PROGRESSING
    role = canary_role(run.spec.rollout.strategy)
    suffix = f" ({why})" if why else ""
    run.normal(
        "RolloutStarted",
        f"rolling out revision {desired} as {role} over stable {s.stable_revision}{suffix}",
    )


def replace_stable(run: Run) -> None:
    """The stable revision never came up: the desired one takes its place at once (its
    objects are removed with it; nothing of it served)."""
    s = run.status
    old, desired = s.stable_revision, run.obs.desired_revision
    _reset(run)
    s.stable_revision = desired
    s.abort_reason = None
    s.phase = Phase.PROGRESSING
    run.normal(
        "Deploying", f"deploying revision {desired} in place of {old}, which never became Ready"
    )


def revert(run: Run) -> None:
    """The spec is back at the stable revision: drop the canary (in flight or aborted)."""
    s = run.status
    dropped = s.canary_revision
    _reset(run)
    s.canary_revision = None
    s.abort_reason = None
    s.analysis = None
    s.gates = []
    s.phase = None
    run.outcome = "NoRollout"
    run.normal(
        "RolloutReverted",
        f"spec is back at stable revision {s.stable_revision}; revision {dropped} removed",
    )


def abort(run: Run, reason: str) -> None:
    """Send all traffic back to stable at once and stop deploying the canary.

    ``canary_revision`` stays set so that status shows what was aborted.
    """
    s = run.status
    _reset(run)
    s.phase = Phase.ABORTED
    s.abort_reason = reason
    run.warning(
        "Aborted",
        f"rollout of {s.canary_revision} aborted: {reason}; stable {s.stable_revision} serves 100%",
    )


def deadline_passed(run: Run) -> bool:
    """Run the progress-deadline clock of a revision that is not Ready; True once it ran out."""
    s = run.status
    if s.waiting_since is None:
        s.waiting_since = run.stamp
    limit = timedelta(seconds=run.spec.rollout.progress_deadline_seconds)
    deadline = parse(s.waiting_since) + limit
    if run.now < deadline:
        run.wake_at(deadline)
        return False
    return True


def wait_for_ready(run: Run, role: str) -> None:
    """The canary / preview is not Ready: wait, or abort once the progress deadline passed."""
    s = run.status
    s.phase = Phase.PROGRESSING
    if not deadline_passed(run):
        return
    revision = s.canary_revision or ""
    limit = run.spec.rollout.progress_deadline_seconds
    reason = f"{role} revision {revision} not Ready within {limit}s: {run.why_not_ready(revision)}"
    run.warning("ProgressDeadlineExceeded", reason)
    abort(run, reason)


def promote(run: Run) -> None:
    """Make the canary / preview the stable revision, serving 100%.

    Blue-green keeps the old stable as ``previous_revision`` until its scale-down time;
    a canary's old stable is removed at once.
    """
    s = run.status
    old, new = s.stable_revision, s.canary_revision
    _reset(run)
    s.stable_revision = new
    s.stable_ready_at = run.stamp if run.ready(new) else None
    s.canary_revision = None
    s.abort_reason = None
    s.gates = []
    s.phase = Phase.HEALTHY
    if run.spec.rollout.strategy == "BlueGreen":
        delay = (run.spec.rollout.blue_green or BlueGreen()).scale_down_delay_seconds
        s.previous_revision = old
        s.scale_down_at = stamp(run.now + timedelta(seconds=delay))
    run.outcome = "RolloutCompleted"
    run.normal("RolloutCompleted", f"revision {new} is stable and serves 100% (was {old})")
