"""Replicas across revisions: the canary follows its weight and grows before traffic moves;
dynamicStableScale shrinks the stable once the router serves the canary's weight."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import (
    Canary,
    CanaryStep,
    ContainerSpec,
    InferencePipelineSpec,
    Pause,
    Phase,
    PredictorSpec,
    Rollout,
    Scaling,
    SetCanaryScale,
    Stage,
)
from pipeline_operator.core.planner import Owner, plan
from pipeline_operator.core.revisions import replicas
from pipeline_operator.core.rollout.steps import describe
from tests.unit.world import World, reasons


def spec(*steps: CanaryStep, dynamic: bool = False, count: int = 6) -> InferencePipelineSpec:
    stage = Stage(
        name="model",
        predictor=PredictorSpec(container=ContainerSpec(image="model:1")),
        scaling=Scaling(min_replicas=count, max_replicas=count),
    )
    canary = Canary(steps=list(steps), dynamic_stable_scale=dynamic)
    return InferencePipelineSpec(stages=[stage], rollout=Rollout(canary=canary))


def rolling(*steps: CanaryStep, dynamic: bool = False) -> World:
    """r1 stable on all 6 replicas, r2 rolled out as canary on the one it starts with."""
    world = World(spec=spec(*steps, dynamic=dynamic))
    world.ready["r1"] = True
    world.replicas["r1"] = {"model": 6}
    world.tick()
    world.desired = "r2"
    world.ready["r2"] = True
    world.replicas["r2"] = {"model": 1}
    return world


def canary_replicas(world: World) -> int:
    [service] = [
        o
        for o in plan(Owner("p", "ns", "u"), {"r1": world.spec, "r2": world.spec}, world.status)
        if o["metadata"]["name"] == "p-model-r2"
    ]
    return int(service["spec"]["predictor"]["minReplicas"])


def test_replicas_follow_a_percentage_rounded_up_with_a_floor_of_one() -> None:
    assert [replicas(6, p) for p in (0, 10, 30, 50, 100)] == [1, 1, 2, 3, 6]
    assert replicas(0, 50) == 0  # scaled to zero stays there


def test_the_canary_grows_before_traffic_moves_onto_it() -> None:
    world = rolling(CanaryStep(set_weight=30), CanaryStep(pause=Pause()))
    started = world.tick()
    assert reasons(started) == ["RolloutStarted", "CanaryScaled"]
    assert world.status.canary_scale == 30
    assert world.status.canary_weight == 0, "no traffic before its second replica is up"
    assert canary_replicas(world) == 2
    assert "scaling up to 30% of its replicas (model 1/2)" in world.status.message
    assert reasons(world.tick()) == []  # the same observations: nothing moves

    world.replicas["r2"] = {"model": 2}
    assert reasons(world.tick()) == ["WeightChanged", "Paused"]
    assert world.status.canary_weight == 30


def test_promotion_waits_for_the_canary_to_run_all_of_its_replicas() -> None:
    world = rolling(CanaryStep(set_weight=50))
    world.tick()
    world.replicas["r2"] = {"model": 3}
    world.tick()
    assert (world.status.canary_weight, world.status.canary_scale) == (50, 100)
    assert world.status.stable_revision == "r1"
    world.replicas["r2"] = {"model": 6}
    assert "RolloutCompleted" in reasons(world.tick())
    assert world.status.stable_revision == "r2"
    assert world.status.canary_scale is None


def test_promote_full_also_waits_for_all_replicas() -> None:
    world = rolling(CanaryStep(set_weight=10), CanaryStep(pause=Pause()))
    world.tick()
    assert world.status.phase == Phase.PAUSED
    world.tick(command="promote-full")
    assert world.status.last_command is not None
    assert world.status.last_command.result == "Accepted"
    assert world.status.stable_revision == "r1" and world.status.canary_scale == 100
    world.replicas["r2"] = {"model": 6}
    world.tick()
    assert world.status.stable_revision == "r2"


def test_set_canary_scale_sets_the_share_whatever_the_weight() -> None:
    steps = (
        CanaryStep(set_canary_scale=SetCanaryScale(weight=50)),
        CanaryStep(set_weight=10),
        CanaryStep(pause=Pause()),
        CanaryStep(set_canary_scale=SetCanaryScale(match_traffic_weight=True)),
        CanaryStep(pause=Pause()),
    )
    assert [describe(s) for s in steps[::3]] == [
        "setCanaryScale 50",
        "setCanaryScale matchTrafficWeight",
    ]
    world = rolling(*steps)
    world.tick()
    assert world.status.canary_scale == 50, "from the first step, before any traffic"
    world.replicas["r2"] = {"model": 3}
    world.tick()
    assert (world.status.canary_weight, world.status.canary_scale) == (10, 50)
    world.tick(command="promote")
    assert (world.status.canary_weight, world.status.canary_scale) == (10, 10)
    assert world.status.current_step_index == 4


def test_dynamic_stable_scale_shrinks_the_stable_once_the_router_serves_the_canary() -> None:
    world = rolling(CanaryStep(set_weight=50), CanaryStep(pause=Pause()), dynamic=True)
    world.replicas["r2"] = {"model": 3}
    world.router_follows = False
    world.served = {"r1": 100}
    world.tick()
    assert world.status.canary_weight == 50
    assert world.status.stable_scale is None, "the router still sends the stable everything"
    world.served = {"r1": 50, "r2": 50}
    world.tick()
    assert world.status.stable_scale == 50
    world.served = None  # rolling out again: keep what the stable last served
    world.tick()
    assert world.status.stable_scale == 50

    world.tick(command="abort")
    assert world.status.phase == Phase.ABORTED
    assert world.status.stable_scale is None, "all traffic back: all of the stable's replicas"


def test_without_dynamic_stable_scale_the_stable_keeps_all_replicas() -> None:
    world = rolling(CanaryStep(set_weight=50), CanaryStep(pause=Pause()))
    world.replicas["r2"] = {"model": 3}
    world.tick()
    world.tick()
    assert world.status.canary_weight == 50 and world.status.stable_scale is None
