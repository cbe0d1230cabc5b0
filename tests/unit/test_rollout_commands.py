"""User commands: accepted, rejected, acknowledged once."""

from __future__ import annotations

import pytest

from pipeline_operator.api.command_annotation import Verb
from pipeline_operator.api.v1alpha1 import (
    Analysis,
    AnalysisMetric,
    Canary,
    CanaryStep,
    Pause,
    Phase,
    Rollout,
)
from pipeline_operator.core.rollout.engine import Command, step
from tests.unit.world import World, reasons, sample_spec


def rolling(*steps: CanaryStep, ready: bool = True) -> World:
    world = World(spec=sample_spec(Rollout(canary=Canary(steps=list(steps)))))
    world.ready["r1"] = True
    world.tick()
    world.desired = "r2"
    world.ready["r2"] = ready
    world.tick()
    return world


def ack(world: World) -> tuple[str, str]:
    assert world.status.last_command is not None
    return world.status.last_command.result, world.status.last_command.message


@pytest.mark.parametrize(
    ("verb", "message"),
    [
        ("promote", "nothing to promote: no rollout in progress"),
        ("promote-full", "nothing to promote: no rollout in progress"),
        ("abort", "nothing to abort: no rollout in progress"),
        ("retry", "nothing to retry: no aborted rollout"),
    ],
)
def test_commands_without_a_rollout_are_rejected(verb: Verb, message: str) -> None:
    world = World(spec=sample_spec())
    world.ready["r1"] = True
    world.tick()
    decision = world.tick(command=verb)
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "CommandRejected")]
    assert ack(world) == ("Rejected", message)
    assert world.status.last_command is not None
    assert world.status.last_command.command == f"{verb}/1"
    assert world.status.last_command.at == "2026-01-01T00:00:00Z"
    assert world.status.phase == Phase.HEALTHY


def test_promote_of_a_canary_that_is_not_ready_is_rejected() -> None:
    world = rolling(CanaryStep(set_weight=10), CanaryStep(pause=Pause()), ready=False)
    verbs: tuple[Verb, ...] = ("promote", "promote-full")
    for verb in verbs:
        world.tick(command=verb)
        assert ack(world) == ("Rejected", "canary revision r2 is not ready")
    assert world.status.canary_weight == 0


def test_promote_full_skips_all_remaining_steps() -> None:
    world = rolling(CanaryStep(set_weight=10), CanaryStep(pause=Pause()), CanaryStep(set_weight=50))
    decision = world.tick(command="promote-full")
    assert reasons(decision) == ["Promoted", "RolloutCompleted"]
    assert ack(world) == ("Accepted", "revision r2 promoted to stable")
    assert world.status.stable_revision == "r2"


def test_promote_skips_an_analysis_step() -> None:
    metric = AnalysisMetric(name="errors", query="q", success_condition="result < 1")
    world = rolling(
        CanaryStep(analysis=Analysis(metrics=[metric])),
        CanaryStep(set_weight=40),
        CanaryStep(pause=Pause()),
    )
    assert world.status.analysis is not None
    decision = world.tick(command="promote")
    assert reasons(decision) == ["Promoted", "WeightChanged", "Paused"]
    assert world.status.analysis is None
    assert world.status.current_step_index == 2


def test_promote_while_held_by_spec_paused_is_rejected() -> None:
    world = rolling(CanaryStep(set_weight=10), CanaryStep(pause=Pause()))
    world.spec = world.spec.model_copy(update={"paused": True})
    world.tick(command="promote")
    assert ack(world) == ("Rejected", "the rollout is held by spec.paused; set it to false first")


def test_commands_on_an_aborted_rollout() -> None:
    world = rolling(CanaryStep(set_weight=10), CanaryStep(pause=Pause()))
    world.tick(command="abort")
    world.tick(command="abort")
    assert ack(world) == ("Rejected", "nothing to abort: the rollout of r2 was aborted")
    world.tick(command="promote")
    assert ack(world) == ("Rejected", "nothing to promote: the rollout of r2 was aborted")
    world.tick(command="retry")
    assert ack(world) == ("Accepted", "rollout of r2 restarted from the first step")


def test_an_acknowledged_command_is_not_carried_out_again() -> None:
    world = rolling(CanaryStep(set_weight=10), CanaryStep(pause=Pause()), CanaryStep(pause=Pause()))
    obs = world.observe(command="promote")
    first = step(world.spec, world.status, obs)
    assert first.status.current_step_index == 2
    again = step(world.spec, first.status, obs)
    assert again.events == ()
    assert again.status == first.status


def test_a_command_on_an_invalid_spec_is_rejected() -> None:
    world = rolling(CanaryStep(set_weight=10), CanaryStep(pause=Pause()))
    decision = world.tick(command="promote", invalid="graph has a cycle: a -> b -> a")
    assert reasons(decision) == ["InvalidSpec", "CommandRejected"]
    assert ack(world) == ("Rejected", "the spec is invalid: graph has a cycle: a -> b -> a")


def test_commands_are_frozen_values() -> None:
    command = Command("abort", "abort/1")
    with pytest.raises(AttributeError):
        command.verb = "retry"  # type: ignore[misc]
