"""Canary strategy: walk the steps (setWeight, setCanaryScale, pause, analysis) as far as they
go now."""

from __future__ import annotations

from datetime import timedelta

from pipeline_operator.api.v1alpha1 import Analysis, AnalysisStatus, Pause, Phase, parse_duration
from pipeline_operator.core.rollout import gates, scale, transitions
from pipeline_operator.core.rollout.analysis import metric_verdict, next_due, record
from pipeline_operator.core.rollout.clock import parse
from pipeline_operator.core.rollout.context import Run
from pipeline_operator.core.rollout.steps import canary_steps, describe, position, scale_at

_MIN_INTERVAL = timedelta(seconds=1)


def progress(run: Run, promote_once: bool = False) -> None:
    """Advance the canary from its current step; promote it after the last one.

    Steps are only walked while the canary is Ready, past its pre-rollout webhooks; each
    step waits on its step webhooks once the router serves its weight, and promotion on the
    confirm-promotion ones. ``promote_once`` (a promote command) skips the next pause or
    analysis step, never a webhook gate.
    """
    s = run.status
    if gates.rolled_back(run):
        return
    if not run.ready(s.canary_revision):
        if not scale.roll_through(run):
            transitions.wait_for_ready(run, "canary")
        return
    s.waiting_since = None
    s.phase = Phase.PROGRESSING
    if not gates.passed(run, "PreRollout"):
        return
    steps = canary_steps(run.spec)
    index = min(s.current_step_index or 0, len(steps))
    while index < len(steps):
        s.current_step_index = index
        step = steps[index]
        if step.set_weight is not None:
            if not scale.grow(run, scale_at(run.spec, index, step.set_weight)):
                scale.roll_through(run)
                return  # the canary grows before traffic moves onto it
            _set_weight(run, index, step.set_weight)
        elif step.set_canary_scale is not None:
            if not scale.grow(run, scale_at(run.spec, index, s.canary_weight)):
                return
        elif step.set_mirror is not None:
            _set_mirror(run, index, step.set_mirror.percent)
        elif promote_once:
            promote_once = False
            if s.analysis is not None and s.analysis.step_index == index:
                s.analysis = None
            where = position(index, run.spec)
            run.normal("Promoted", f"{where} skipped by promote: {describe(step)}")
        elif not _routed(run):
            return
        elif step.pause is not None:
            if not _pause(run, index, step.pause):
                return
        elif step.analysis is not None and not _analyze(run, index, step.analysis):
            return
        if gates.webhooks_of(run.spec, "Step") and not (
            _routed(run) and gates.passed(run, "Step", index)
        ):
            return
        index += 1
        s.current_step_index = index
        s.step_started_at = run.stamp
        s.paused_at = None
        s.phase = Phase.PROGRESSING
    if not gates.passed(run, "ConfirmPromotion"):
        return
    if scale.grow(run, 100):
        transitions.promote(run)
    else:
        scale.roll_through(run)


def _set_weight(run: Run, index: int, weight: int) -> None:
    s = run.status
    if s.canary_weight != weight:
        run.normal(
            "WeightChanged",
            f"canary {s.canary_revision}: {s.canary_weight}% -> {weight}% "
            f"({position(index, run.spec)})",
        )
        s.canary_weight = weight


def _set_mirror(run: Run, index: int, percent: int) -> None:
    s = run.status
    if s.mirror_percent != percent:
        run.normal(
            "MirrorChanged",
            f"canary {s.canary_revision}: mirrored {s.mirror_percent}% -> {percent}% of the "
            f"requests ({position(index, run.spec)})",
        )
        s.mirror_percent = percent


def _routed(run: Run) -> bool:
    """Whether the router serves the current weight, so that a pause or an analysis can run.

    KServe restarts the router on every graph change: until every replica serves the canary's
    weight, the step's clock stands still.
    """
    s = run.status
    served = run.obs.served
    weight_served = served is not None and served.get(s.canary_revision or "", 0) == s.canary_weight
    if weight_served and run.obs.mirror_served == s.mirror_percent:
        return True
    if s.paused_at is None and s.analysis is None:
        s.step_started_at = run.stamp
    # A pause already under way stays one (its clock runs on) while the router rolls out
    # again, e.g. after a hand edit of the graph was reverted: phase and message agree.
    s.phase = Phase.PAUSED if s.paused_at is not None else Phase.PROGRESSING
    run.wake_at(run.now + transitions.ROUTER_POLL)
    return False


def _pause(run: Run, index: int, pause: Pause) -> bool:
    """Hold at a pause step; True once a timed pause has elapsed."""
    s = run.status
    where = position(index, run.spec)
    until = f"for {pause.duration}" if pause.duration else "until promote"
    if s.paused_at is None:
        s.paused_at = run.stamp
        run.normal(
            "Paused", f"canary {s.canary_revision} at {s.canary_weight}%, {where}: paused {until}"
        )
    s.phase = Phase.PAUSED
    if pause.duration is None:
        return False
    end = parse(s.paused_at) + parse_duration(pause.duration)
    if run.now < end:
        run.wake_at(end)
        return False
    run.normal("Resumed", f"{where}: pause of {pause.duration} elapsed")
    return True


def _analyze(run: Run, index: int, analysis: Analysis) -> bool:
    """Record this reconcile's measurements; True once every metric succeeded.

    A failed metric aborts the rollout.
    """
    s = run.status
    canary = s.canary_revision or ""
    current = s.analysis
    if current is None or (current.step_index, current.revision) != (index, canary):
        current = AnalysisStatus(step_index=index, revision=canary)
        names = ", ".join(m.name for m in analysis.metrics)
        run.normal(
            "AnalysisStarted", f"{position(index, run.spec)}: analysing canary {canary} ({names})"
        )
    s.analysis = current = record(current, analysis.metrics, run.obs.measurements)
    if current.phase == "Successful":
        run.normal("AnalysisSucceeded", f"{position(index, run.spec)}: {current.message}")
        return True
    if current.phase == "Failed":
        run.warning("AnalysisFailed", current.message)
        transitions.abort(run, f"analysis failed: {current.message}")
        return False
    started = parse(s.step_started_at) if s.step_started_at else run.now
    for metric in analysis.metrics:
        if metric_verdict(metric, current.measurements) == "Running":
            due = next_due(metric, current, started)
            interval = max(parse_duration(metric.interval), _MIN_INTERVAL)
            run.wake_at(due if due > run.now else run.now + interval)
    return False
