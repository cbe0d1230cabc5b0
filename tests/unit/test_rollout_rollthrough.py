"""A canary on a pool with room for one more replica only: with dynamicStableScale the engine
rolls through (traffic moves as far as the canary's ready pods carry, the stable frees a
replica, the canary grows into it) instead of waiting out the progress deadline."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_operator.api.v1alpha1 import (
    Canary,
    CanaryStep,
    ContainerSpec,
    InferencePipelineSpec,
    Phase,
    PredictorSpec,
    Rollout,
    Scaling,
    Stage,
)
from pipeline_operator.core.planner import Owner, plan
from tests.unit.world import World

NO_ROOM = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu"


def spec(count: int, weights: list[int], dynamic: bool = True) -> InferencePipelineSpec:
    stage = Stage(
        name="model",
        predictor=PredictorSpec(container=ContainerSpec(image="model:1")),
        scaling=Scaling(min_replicas=count, max_replicas=count),
    )
    steps = [CanaryStep(set_weight=w) for w in weights]
    canary = Canary(steps=steps, dynamic_stable_scale=dynamic)
    return InferencePipelineSpec(
        stages=[stage], rollout=Rollout(canary=canary, progress_deadline_seconds=60)
    )


class Pool:
    """A node pool with room for ``room`` replicas: pods keep their place, a revision that
    wants fewer frees its places at once, pending pods take free places (stable first)."""

    def __init__(self, world: World, room: int) -> None:
        self.world, self.room = world, room
        self.running: dict[str, int] = {}
        self.peak = 0

    def wanted(self) -> dict[str, int]:
        owner = Owner("p", "ns", "u")
        specs = {"r1": self.world.spec, "r2": self.world.spec}
        return {
            o["metadata"]["labels"]["pipelines.inference.dev/revision"]: int(
                o["spec"]["predictor"]["minReplicas"]
            )
            for o in plan(owner, specs, self.world.status)
            if o["kind"] == "InferenceService"
        }

    def schedule(self) -> None:
        wanted = self.wanted()
        self.running = {r: min(self.running.get(r, 0), n) for r, n in wanted.items()}
        for revision in sorted(wanted):
            free = self.room - sum(self.running.values())
            self.running[revision] += max(0, min(free, wanted[revision] - self.running[revision]))
        self.peak = max(self.peak, sum(self.running.values()))
        w = self.world
        w.replicas = {r: {"model": n} for r, n in self.running.items()}
        w.ready = {r: self.running[r] >= n for r, n in wanted.items()}
        w.unschedulable = {r: ["model"] for r, n in wanted.items() if self.running[r] < n}
        w.reasons = {r: f"stage model: {NO_ROOM}" for r in w.unschedulable}


def roll_out(count: int, weights: list[int], room: int, dynamic: bool = True) -> tuple[World, Pool]:
    """r1 stable on ``count`` replicas, then r2 rolled out over it, one reconcile a second."""
    world = World(spec=spec(count, weights, dynamic))
    pool = Pool(world, room)
    pool.schedule()
    world.tick()
    pool.schedule()
    world.tick()
    assert world.status.phase == Phase.HEALTHY
    world.desired = "r2"
    for _ in range(200):
        world.tick()
        s = world.status
        if s.phase in (Phase.HEALTHY, Phase.ABORTED):
            break
        if s.canary_revision is not None and s.canary_weight:
            ready = pool.running.get("r2", 0)
            assert s.canary_weight <= -(-100 * ready // count), "traffic the pods cannot carry"
        pool.schedule()
        world.advance(1)
    return world, pool


def test_a_full_pool_is_rolled_through_to_promotion() -> None:
    """3 replicas of 4 GPUs on 16 GPUs, steps 20% then 50%: the canary's second replica finds
    room once the stable serves 66% on two."""
    world, pool = roll_out(3, [20, 50], room=4)
    assert world.status.phase == Phase.HEALTHY and world.status.stable_revision == "r2"
    assert pool.peak == 4
    moves = [e.message for e in world.events if e.reason == "WeightChanged"]
    assert moves[0] == "canary r2: 0% -> 20% (step 1/2)"
    assert "20% -> 34% on its ready pods, toward 50%" in moves[1]
    assert "no room on the pool for more of model" in moves[1]
    assert moves[2] == "canary r2: 34% -> 50% (step 2/2)"
    assert "50% -> 67% on its ready pods, toward 100%" in moves[3]


def test_the_message_says_the_pool_is_rolled_through() -> None:
    world = World(spec=spec(3, [20, 50]))
    pool = Pool(world, room=4)
    for _ in range(2):
        pool.schedule()
        world.tick()
    world.desired = "r2"
    while world.status.current_step_index != 1 or "r2" not in world.unschedulable:
        world.tick()
        pool.schedule()
    world.tick()
    assert "rolling through a full pool toward 50%" in world.status.message
    assert NO_ROOM in world.status.message


def test_without_dynamic_stable_scale_a_full_pool_runs_out_the_deadline() -> None:
    world, _ = roll_out(3, [20, 50], room=4, dynamic=False)
    assert world.status.phase == Phase.ABORTED
    assert NO_ROOM in (world.status.abort_reason or "")


def test_no_room_for_one_canary_replica_aborts_at_the_deadline_naming_it() -> None:
    world, pool = roll_out(3, [20, 50], room=3)
    assert world.status.phase == Phase.ABORTED
    assert NO_ROOM in (world.status.abort_reason or "")
    assert pool.peak == 3


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=8),
    weights=st.lists(st.integers(min_value=1, max_value=99), min_size=1, max_size=5, unique=True),
)
def test_any_set_weight_plan_completes_with_one_replica_of_headroom(
    count: int, weights: list[int]
) -> None:
    world, pool = roll_out(count, sorted(weights), room=count + 1)
    assert world.status.phase == Phase.HEALTHY, world.status.message
    assert world.status.stable_revision == "r2"
    assert pool.peak <= count + 1
