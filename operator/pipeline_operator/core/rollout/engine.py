"""The rollout engine: (spec, status, observations) -> decision. Pure: no I/O, no clock.

One call settles the resource as far as the observations allow: it starts, walks, promotes
or aborts rollouts, acknowledges a user command, and says when it needs to run again. Run on
its own output with the same observations, it changes nothing and emits no event.
"""

from __future__ import annotations

from pipeline_operator.api.command_annotation import Command
from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, InferencePipelineStatus, Phase
from pipeline_operator.core.revisions import canary_active, weight_of
from pipeline_operator.core.rollout import (
    bluegreen,
    canary,
    commands,
    conditions,
    scale,
    transitions,
)
from pipeline_operator.core.rollout.analysis import due_measurements
from pipeline_operator.core.rollout.context import Run
from pipeline_operator.core.rollout.hold import hold
from pipeline_operator.core.rollout.model import Decision, Event, Observations
from pipeline_operator.core.rollout.steps import current_step
from pipeline_operator.core.rollout.summary import summarize
from pipeline_operator.core.rollout.traffic import split

__all__ = ["Command", "Decision", "Event", "Observations", "due_measurements", "step"]


def step(
    spec: InferencePipelineSpec,
    status: InferencePipelineStatus,
    obs: Observations,
    generation: int | None = None,
) -> Decision:
    """Decide the next status of a pipeline; ``status`` is not modified.

    With ``obs.invalid`` set, only the phase (Degraded; an aborted rollout stays Aborted),
    the Ready condition, the message and the rejection of a pending command change.
    """
    if obs.now.tzinfo is None:
        raise ValueError("Observations.now must be timezone-aware")
    run = Run.of(spec, status, obs)
    if generation is not None:
        run.status.observed_generation = generation
    if obs.invalid is not None:
        _invalid(run, obs.invalid)
    else:
        run.status.strategy = spec.rollout.strategy
        _reconcile(run)
    return Decision(status=run.status, events=tuple(run.events), requeue_after=run.requeue_after())


def _invalid(run: Run, message: str) -> None:
    """Report an invalid spec and change nothing else (an aborted rollout stays aborted)."""
    s = run.status
    if s.phase != Phase.ABORTED:
        s.phase = Phase.DEGRADED
    reported = conditions.find(run.before, conditions.READY)
    if reported is None or (reported.reason, reported.message) != ("InvalidSpec", message):
        run.warning("InvalidSpec", message)
    command = commands.pending(run)
    if command is not None:
        commands.reject(run, command, f"the spec is invalid: {message}")
    s.message = f"invalid spec: {message}"
    conditions.put(run, conditions.READY, False, "InvalidSpec", message)


def _reconcile(run: Run) -> None:
    """Follow the spec, carry out the command, advance the rollout, then derive traffic,
    message, the step and weight columns and conditions from the settled state."""
    _follow_spec(run)
    promote_once = commands.apply(run)
    if not hold(run) and canary_active(run.status):
        if run.spec.rollout.strategy == "Canary":
            canary.progress(run, promote_once)
        else:
            bluegreen.progress(run)
    bluegreen.scale_down(run)
    _settle(run)
    s = run.status
    if canary_active(s) and run.spec.rollout.strategy == "Canary":
        s.traffic = split(s.stable_revision or "", s.canary_revision, s.canary_weight)
    else:
        s.canary_weight = 0
        s.traffic = split(s.stable_revision or "")
    s.stable_scale = scale.stable(run)
    s.message = summarize(run)
    s.step, s.weight = current_step(run.spec, s), weight_of(s)
    conditions.update(run)
    conditions.report_warnings(run)


def _follow_spec(run: Run) -> None:
    """Match the rollout to the desired revision: first deployment, revert, new rollout,
    or a restart when the strategy changed under a rollout in flight; under spec.paused, only
    record the desired revision as pending."""
    s = run.status
    desired = run.obs.desired_revision
    if s.stable_revision is None:
        s.stable_revision = desired
        s.phase = Phase.PROGRESSING
        run.normal("Deploying", f"deploying first revision {desired}")
        return
    if run.spec.paused and desired != (s.canary_revision or s.stable_revision):
        # Held: no rollout starts, none is replaced or reverted, until paused is released.
        if s.pending_revision != desired:
            run.normal("RolloutHeld", f"revision {desired} waits for spec.paused to be released")
        s.pending_revision = desired
        return
    s.pending_revision = None
    if desired == s.stable_revision:
        if s.canary_revision is not None:
            transitions.revert(run)
        return
    if _never_served(run):
        transitions.replace_stable(run)
        return
    if s.canary_revision != desired:
        replaced = s.canary_revision if canary_active(s) else None
        transitions.start(run, why=f"replaces {replaced}" if replaced else "")
    elif canary_active(s) and run.before.strategy not in (None, run.spec.rollout.strategy):
        transitions.start(run, why=f"strategy changed to {run.spec.rollout.strategy}")


def _never_served(run: Run) -> bool:
    """Whether the stable revision is a first deployment that has never been Ready (and is
    not now), with no rollout under way: nothing of it serves, so a fix replaces it at once
    rather than through a canary that would send most requests to it."""
    s = run.status
    return (
        s.stable_ready_at is None
        and s.canary_revision is None
        and s.phase != Phase.HEALTHY
        and not run.ready(s.stable_revision)
    )


def _settle(run: Run) -> None:
    """Phase when no rollout is in progress: Healthy, still deploying, or Degraded."""
    s = run.status
    if s.canary_revision is not None:
        return
    if run.ready(s.stable_revision):
        s.phase = Phase.HEALTHY if s.pending_revision is None else Phase.PAUSED
        s.waiting_since = None
        s.stable_ready_at = s.stable_ready_at or run.stamp
    elif s.phase == Phase.PROGRESSING:
        _first_deployment_deadline(run)
    else:
        s.phase = Phase.DEGRADED


def _first_deployment_deadline(run: Run) -> None:
    """The first revision is still coming up; Degraded once the progress deadline passed."""
    s = run.status
    if not transitions.deadline_passed(run):
        return
    s.phase = Phase.DEGRADED
    revision = s.stable_revision or ""
    limit = run.spec.rollout.progress_deadline_seconds
    run.warning(
        "ProgressDeadlineExceeded",
        f"revision {revision} not Ready within {limit}s: {run.why_not_ready(revision)}",
    )
