"""Drive the rollout engine through a simulated world: a clock, revision readiness and user
commands, fed to :func:`~pipeline_operator.rollout.engine.step` one reconcile at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline_operator.api.v1alpha1 import (
    ContainerSpec,
    InferencePipelineSpec,
    InferencePipelineStatus,
    Measurement,
    PredictorSpec,
    Rollout,
    Stage,
)
from pipeline_operator.rollout.engine import Command, Decision, Event, Observations, step
from pipeline_operator.rollout.model import Verb

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def sample_spec(rollout: Rollout | None = None, *, paused: bool = False) -> InferencePipelineSpec:
    """A one-stage pipeline with the given rollout settings."""
    stage = Stage(name="model", predictor=PredictorSpec(container=ContainerSpec(image="model:1")))
    return InferencePipelineSpec(stages=[stage], rollout=rollout or Rollout(), paused=paused)


@dataclass
class World:
    """A pipeline resource and what the engine would observe about it."""

    spec: InferencePipelineSpec
    desired: str = "r1"
    now: datetime = EPOCH
    ready: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    status: InferencePipelineStatus = field(default_factory=InferencePipelineStatus)
    events: list[Event] = field(default_factory=list)
    issued: int = 0

    def observe(
        self,
        command: Verb | None = None,
        measurements: Sequence[Measurement] = (),
        invalid: str | None = None,
    ) -> Observations:
        """Observations of the world now; each command gets a distinct raw value."""
        issued = None
        if command is not None:
            self.issued += 1
            issued = Command(command, f"{command}/{self.issued}")
        return Observations(
            now=self.now,
            desired_revision=self.desired,
            ready=dict(self.ready),
            reasons=dict(self.reasons),
            command=issued,
            measurements=tuple(measurements),
            invalid=invalid,
        )

    def tick(
        self,
        command: Verb | None = None,
        measurements: Sequence[Measurement] = (),
        invalid: str | None = None,
    ) -> Decision:
        """One reconcile: the engine's decision becomes the resource's status."""
        decision = step(self.spec, self.status, self.observe(command, measurements, invalid))
        self.status = decision.status
        self.events.extend(decision.events)
        return decision

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def reasons(decision: Decision) -> list[str]:
    """The reasons of a decision's events, in order."""
    return [e.reason for e in decision.events]
