"""Lint warnings of a spec: a Warnings condition, and a Warning Event when they change."""

from __future__ import annotations

import dataclasses

from pipeline_operator.core.rollout.engine import step
from tests.unit.world import World, sample_spec


def tick(world: World, *warnings: str) -> list[str]:
    obs = dataclasses.replace(world.observe(), warnings=warnings)
    decision = step(world.spec, world.status, obs)
    world.status = decision.status
    return [e.reason for e in decision.events]


def warnings_condition(world: World) -> tuple[str, str] | None:
    found = next((c for c in world.status.conditions if c.type == "Warnings"), None)
    return (found.status, found.message) if found else None


def test_warnings_are_a_condition_and_an_event_when_they_change() -> None:
    world = World(spec=sample_spec())
    world.ready["r1"] = True
    assert "SpecWarnings" not in tick(world)
    assert warnings_condition(world) is None
    assert tick(world, "stage x is used by no step") == ["SpecWarnings"]
    assert warnings_condition(world) == ("True", "stage x is used by no step")
    assert tick(world, "stage x is used by no step") == []  # unchanged: no second Event
    assert tick(world, "a", "b") == ["SpecWarnings"]
    assert warnings_condition(world) == ("True", "a; b")
    assert tick(world) == []
    assert warnings_condition(world) == ("False", "")
