"""Replicas across revisions during a canary (Argo Rollouts' setCanaryScale and
dynamicStableScale).

The canary runs the share of each stage's replicas that its traffic weight gives it (or a
setCanaryScale step), at least one, and grows before traffic moves onto it: a setWeight step
(and the final promotion, at 100%) waits until the canary's new replicas are ready. With
``dynamicStableScale`` the stable shrinks to the share of traffic it still serves, once the
router serves it, so that a pool with room for one copy of the pipeline plus headroom can
roll out; the stable never runs fewer replicas than the traffic its router still sends it.

On a pool with room for one more replica only, a canary that must grow before traffic moves
and a stable that shrinks only after it does would wait on each other. There,
:func:`roll_through` moves traffic in the steps the pool allows: as much as the canary's ready
pods carry, so that the stable frees a replica, into which the canary grows.
"""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import Canary, Phase
from pipeline_operator.core.revisions import canary_active, replicas
from pipeline_operator.core.rollout.context import Run
from pipeline_operator.core.rollout.steps import canary_steps
from pipeline_operator.core.rollout.transitions import ROUTER_POLL


def short(run: Run, percent: int) -> list[str]:
    """Stages of the canary with fewer ready pods than ``percent`` of their replicas, e.g.
    ``classify 1/2``; none when its pods are not observed."""
    observed = run.obs.replicas.get(run.status.canary_revision or "")
    if observed is None:
        return []
    out = []
    for stage in run.spec.stages:
        wanted = replicas(stage.scaling.min_replicas, percent)
        if observed.get(stage.name, 0) < wanted:
            out.append(f"{stage.name} {observed.get(stage.name, 0)}/{wanted}")
    return out


def grow(run: Run, percent: int) -> bool:
    """Run the canary at ``percent`` of each stage's replicas; True once it runs them all, so
    that traffic can move onto it."""
    s = run.status
    before = 100 if s.canary_scale is None else s.canary_scale
    if before != percent:
        s.canary_scale = percent
        counts = [
            (replicas(st.scaling.min_replicas, before), replicas(st.scaling.min_replicas, percent))
            for st in run.spec.stages
        ]
        if any(old != new for old, new in counts):
            run.normal(
                "CanaryScaled",
                f"canary {s.canary_revision} runs {percent}% of each stage's replicas "
                f"(was {before}%)",
            )
    if short(run, percent):
        s.phase = Phase.PROGRESSING
        run.wake_at(run.now + ROUTER_POLL)
        return False
    return True


def stable(run: Run) -> int | None:
    """The stable's share of its replicas once traffic is settled: None (all of them) unless
    dynamicStableScale shrinks it to the larger of the share it is given and the share the
    router still serves it (kept from the last reconcile while the router rolls out)."""
    s = run.status
    settings = run.spec.rollout.canary or Canary()
    if run.spec.rollout.strategy != "Canary" or not settings.dynamic_stable_scale:
        return None
    if not canary_active(s):
        return None
    revision = s.stable_revision or ""
    given = next((t.weight for t in s.traffic if t.revision == revision), 0)
    if run.obs.served is None:
        served = 100 if run.before.stable_scale is None else run.before.stable_scale
    else:
        served = run.obs.served.get(revision, 0)
    share = max(given, served)
    return None if share >= 100 else share


def carried(run: Run) -> int:
    """The traffic share the canary's ready pods carry: the least, over the stages, of its
    ready pods over the stage's replicas, rounded up, so that the stable's remaining share
    needs one replica fewer of the stage that limits it (0 when not observed)."""
    ready = run.obs.replicas.get(run.status.canary_revision or "")
    if ready is None:
        return 0
    shares = [
        -(-100 * ready.get(stage.name, 0) // stage.scaling.min_replicas)
        for stage in run.spec.stages
        if stage.scaling.min_replicas > 0
    ]
    return min(shares, default=0)


def growing_for(run: Run) -> int:
    """The weight the canary grows for: its step's setWeight, 100 after the last step, its
    current weight on any other step."""
    s = run.status
    steps = canary_steps(run.spec)
    index = s.current_step_index or 0
    if index >= len(steps):
        return 100
    weight = steps[index].set_weight
    return s.canary_weight if weight is None else weight


def rolling_through(run: Run) -> bool:
    """dynamicStableScale, and the canary cannot grow for want of room on its pool."""
    settings = run.spec.rollout.canary or Canary()
    if run.spec.rollout.strategy != "Canary" or not settings.dynamic_stable_scale:
        return False
    return bool(run.obs.unschedulable.get(run.status.canary_revision or ""))


def roll_through(run: Run) -> bool:
    """On a full pool (:func:`rolling_through`), move the canary's weight to what its ready
    pods carry, toward the weight it grows for; True when traffic moved. The progress
    deadline runs again from each move; where nothing can move (the canary has no ready pod
    of a stage), it runs out as it would without."""
    s = run.status
    if not rolling_through(run):
        return False
    target = growing_for(run)
    weight = min(target, carried(run))
    if weight <= s.canary_weight:
        return False
    stages = ", ".join(run.obs.unschedulable.get(s.canary_revision or "", ()))
    run.normal(
        "WeightChanged",
        f"canary {s.canary_revision}: {s.canary_weight}% -> {weight}% on its ready pods, toward "
        f"{target}%: no room on the pool for more of {stages}; the stable frees replicas as "
        "it serves less",
    )
    s.canary_weight = weight
    s.waiting_since = None
    s.phase = Phase.PROGRESSING
    return True
