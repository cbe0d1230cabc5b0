"""Blue-green strategy: a preview of the new revision beside the stable one, promoted at once
(manually or after a delay), and the old revision scaled down later."""

from __future__ import annotations

from datetime import timedelta

from pipeline_operator.api.v1alpha1 import BlueGreen, Phase
from pipeline_operator.core.rollout import transitions
from pipeline_operator.core.rollout.clock import parse
from pipeline_operator.core.rollout.context import Run


def settings(run: Run) -> BlueGreen:
    return run.spec.rollout.blue_green or BlueGreen()


def progress(run: Run) -> None:
    """Wait for the preview to be Ready, then for promotion (``paused_at`` = ready since)."""
    s = run.status
    preview = s.canary_revision
    if not run.ready(preview):
        s.paused_at = None
        transitions.wait_for_ready(run, "preview")
        return
    s.waiting_since = None
    if s.paused_at is None and run.obs.preview_served != preview:
        s.phase = Phase.PROGRESSING  # the preview serves once its router has rolled out
        run.wake_at(run.now + transitions.ROUTER_POLL)
        return
    s.phase = Phase.PAUSED
    auto = settings(run).auto_promotion_seconds
    if s.paused_at is None:
        s.paused_at = run.stamp
        then = f"promoting in {auto}s" if auto is not None else "waiting for promote"
        run.normal("PreviewReady", f"preview revision {preview} is Ready; {then}")
    if auto is None:
        return
    at = parse(s.paused_at) + timedelta(seconds=auto)
    if run.now < at:
        run.wake_at(at)
        return
    run.normal("Promoted", f"preview revision {preview} promoted automatically after {auto}s")
    transitions.promote(run)


def scale_down(run: Run) -> None:
    """Remove the previous revision once its scale-down time has come."""
    s = run.status
    if s.scale_down_at is None:
        return
    at = parse(s.scale_down_at)
    if run.now < at:
        run.wake_at(at)
        return
    if s.previous_revision is not None:
        run.normal("ScaledDown", f"previous revision {s.previous_revision} scaled down")
    s.previous_revision = None
    s.scale_down_at = None
