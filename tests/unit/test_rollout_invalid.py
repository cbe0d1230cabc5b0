"""A spec the schema could not reject: reported, nothing else changes."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import Phase
from tests.unit.world import World, reasons, sample_spec


def test_invalid_spec_is_reported_once_and_changes_nothing_else() -> None:
    world = World(spec=sample_spec())
    world.ready["r1"] = True
    world.tick()
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    traffic = list(world.status.traffic)
    world.desired = "r3"
    decision = world.tick(invalid="graph has a cycle: a -> b -> a")
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "InvalidSpec")]
    assert decision.requeue_after is None
    assert world.status.phase == Phase.DEGRADED
    assert world.status.traffic == traffic
    assert world.status.canary_revision == "r2"
    ready = next(c for c in world.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason, ready.message) == (
        "False",
        "InvalidSpec",
        "graph has a cycle: a -> b -> a",
    )
    assert reasons(world.tick(invalid="graph has a cycle: a -> b -> a")) == []
    assert reasons(world.tick(invalid="graph has a cycle: b -> c -> b")) == ["InvalidSpec"]

    world.desired = "r2"
    assert reasons(world.tick()) == []
    assert world.status.phase == Phase.PAUSED
    ready = next(c for c in world.status.conditions if c.type == "Ready")
    assert ready.reason == "RolloutPaused"


def test_invalid_first_spec_deploys_nothing() -> None:
    world = World(spec=sample_spec())
    world.tick(invalid="stage model needs 8 GPUs; pool gpu has 4 per node")
    assert world.status.stable_revision is None
    assert world.status.traffic == []
    assert world.status.phase == Phase.DEGRADED


def test_an_aborted_rollout_stays_aborted_under_an_invalid_spec() -> None:
    world = World(spec=sample_spec())
    world.ready["r1"] = True
    world.tick()
    world.desired = "r2"
    world.tick()
    world.tick(command="abort")
    world.tick(invalid="bad")
    assert world.status.phase == Phase.ABORTED
    world.tick()
    assert world.status.phase == Phase.ABORTED
