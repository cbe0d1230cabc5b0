"""spec.paused: hold the rollout in progress, with its clocks stopped, until released."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import Phase
from pipeline_operator.core.revisions import canary_active
from pipeline_operator.core.rollout.clock import parse, stamp
from pipeline_operator.core.rollout.context import Run


def hold(run: Run) -> bool:
    """Apply spec.paused; True while it holds the rollout in progress.

    On release the pause and progress-deadline timers are moved forward by the time held,
    so nothing fires for time spent on hold.
    """
    s = run.status
    if not canary_active(s):
        s.spec_paused_at = None
        return False
    if run.spec.paused:
        if s.spec_paused_at is None:
            s.spec_paused_at = run.stamp
            run.normal("Paused", f"rollout of {s.canary_revision} paused by spec.paused")
        s.phase = Phase.PAUSED
        return True
    if s.spec_paused_at is not None:
        held = run.now - parse(s.spec_paused_at)
        if s.paused_at is not None:
            s.paused_at = stamp(parse(s.paused_at) + held)
        if s.waiting_since is not None:
            s.waiting_since = stamp(parse(s.waiting_since) + held)
        s.spec_paused_at = None
        run.normal("Resumed", f"rollout of {s.canary_revision} resumed (spec.paused is false)")
    return False
