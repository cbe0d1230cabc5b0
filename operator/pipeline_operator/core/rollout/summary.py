"""status.message: one line saying what the pipeline is doing."""

from __future__ import annotations

from datetime import timedelta

from pipeline_operator.api.v1alpha1 import Phase
from pipeline_operator.core.revisions import canary_active
from pipeline_operator.core.rollout import gates, scale
from pipeline_operator.core.rollout.bluegreen import settings
from pipeline_operator.core.rollout.clock import parse, stamp
from pipeline_operator.core.rollout.context import Run
from pipeline_operator.core.rollout.steps import canary_steps, position


def summarize(run: Run) -> str:
    """e.g. ``canary 3f2a9c1d at 10%, step 2/4: paused for 30s``."""
    pending = run.status.pending_revision
    line = _state(run)
    return f"{line}; revision {pending} waits for spec.paused" if pending else line


def _state(run: Run) -> str:
    s = run.status
    stable = s.stable_revision
    if stable is None:
        return ""
    if s.phase == Phase.ABORTED:
        aborted = f"rollout of {s.canary_revision} aborted: {s.abort_reason}"
        return f"{aborted}; stable {stable} serves 100%"
    if canary_active(s):
        return _rollout(run)
    if s.phase in (Phase.HEALTHY, Phase.PAUSED):
        line = f"revision {stable} serves 100%"
        if s.previous_revision is not None:
            line += f"; previous revision {s.previous_revision} scales down at {s.scale_down_at}"
        return line
    if s.phase == Phase.PROGRESSING:
        return f"deploying revision {stable}: {run.why_not_ready(stable)}"
    return f"stable revision {stable} is not ready: {run.why_not_ready(stable)}"


def _rollout(run: Run) -> str:
    s = run.status
    revision = s.canary_revision or ""
    steps = canary_steps(run.spec)
    index = s.current_step_index or 0
    if run.spec.rollout.strategy == "BlueGreen":
        head = f"preview {revision}"
    else:
        mirrored = f" (mirrored {s.mirror_percent}%)" if s.mirror_percent else ""
        head = f"canary {revision} at {s.canary_weight}%{mirrored}"
        if index < len(steps):
            head += f", {position(index, run.spec)}"
    if s.spec_paused_at is not None:
        return f"{head}: held by spec.paused"
    if scale.rolling_through(run):
        return (
            f"{head}: rolling through a full pool toward {scale.growing_for(run)}% "
            f"(traffic moves as the canary's pods become ready): {run.why_not_ready(revision)}"
        )
    if not run.ready(revision):
        return f"{head}: waiting for it to become Ready: {run.why_not_ready(revision)}"
    lacking = scale.short(run, 100 if s.canary_scale is None else s.canary_scale)
    if lacking:
        return f"{head}: scaling up to {s.canary_scale}% of its replicas ({', '.join(lacking)})"
    if run.spec.rollout.strategy == "BlueGreen":
        auto = settings(run).auto_promotion_seconds
        if s.paused_at is None and run.obs.preview_served != revision:
            routing = f" ({run.obs.routing})" if run.obs.routing else ""
            return f"{head}: Ready, waiting for the preview router to serve it{routing}"
        if auto is None or s.paused_at is None:
            return f"{head}: Ready, waiting for promote"
        at = stamp(parse(s.paused_at) + timedelta(seconds=auto))
        return f"{head}: Ready, promoting automatically at {at}"
    gate = gates.waiting_for(s, index)
    if gate is not None:
        return f"{head}: {gates.describe(gate)}"
    step = steps[index] if index < len(steps) else None
    started = s.paused_at is not None or s.analysis is not None
    if step is not None and step.set_weight is None and not started:
        routing = f" ({run.obs.routing})" if run.obs.routing else ""
        return f"{head}: waiting for the router to serve {s.canary_weight}%{routing}"
    if step is not None and step.pause is not None:
        until = f"for {step.pause.duration}" if step.pause.duration else "until promote"
        return f"{head}: paused {until}"
    if step is not None and step.analysis is not None and s.analysis is not None:
        return f"{head}: analysis running ({s.analysis.message})"
    return f"{head}: progressing"
