"""Drive the rollout engine through a simulated world: a clock, revision readiness and user
commands, fed to :func:`~pipeline_operator.core.rollout.engine.step` one reconcile at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline_operator.api.command_annotation import Verb
from pipeline_operator.api.v1alpha1 import (
    ContainerSpec,
    InferencePipelineSpec,
    InferencePipelineStatus,
    Measurement,
    PredictorSpec,
    Rollout,
    Stage,
    WebhookCall,
)
from pipeline_operator.core.rollout.engine import Command, Decision, Event, Observations, step
from pipeline_operator.core.rollout.model import GateKey

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
    router_follows: bool = True
    """KServe rolls each graph change out to the routers before the next reconcile; when
    False, the routers keep serving ``served`` / ``preview_served``."""
    served: dict[str, int] | None = None
    mirror_served: int = 0
    preview_served: str | None = None
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)
    """Revision -> stage -> ready pods; a revision left out is not waited on."""
    unschedulable: dict[str, list[str]] = field(default_factory=dict)
    """Revision -> its stages with a pod the scheduler cannot place."""

    def observe(
        self,
        command: Verb | None = None,
        measurements: Sequence[Measurement] = (),
        invalid: str | None = None,
        webhook_calls: Mapping[GateKey, Sequence[WebhookCall]] | None = None,
    ) -> Observations:
        """Observations of the world now; each command gets a distinct raw value."""
        issued = None
        if command is not None:
            self.issued += 1
            issued = Command(command, f"{command}/{self.issued}")
        if self.router_follows:
            self.served = {t.revision: t.weight for t in self.status.traffic if t.weight}
            self.mirror_served = self.status.mirror_percent
            self.preview_served = self.status.canary_revision
        return Observations(
            now=self.now,
            desired_revision=self.desired,
            ready=dict(self.ready),
            reasons=dict(self.reasons),
            command=issued,
            measurements=tuple(measurements),
            webhook_calls=dict(webhook_calls or {}),
            invalid=invalid,
            served=self.served,
            mirror_served=self.mirror_served,
            preview_served=self.preview_served,
            routing="" if self.router_follows else "router rolling out",
            replicas={rev: dict(stages) for rev, stages in self.replicas.items()},
            unschedulable={rev: list(stages) for rev, stages in self.unschedulable.items()},
        )

    def tick(
        self,
        command: Verb | None = None,
        measurements: Sequence[Measurement] = (),
        invalid: str | None = None,
        webhook_calls: Mapping[GateKey, Sequence[WebhookCall]] | None = None,
    ) -> Decision:
        """One reconcile: the engine's decision becomes the resource's status.

        When the decision moved traffic and the router follows, the reconcile that KServe's
        router rollout triggers runs too; the returned decision holds both steps' events.
        """
        obs = self.observe(command, measurements, invalid, webhook_calls)
        decision = step(self.spec, self.status, obs)
        moved = (decision.status.traffic, decision.status.mirror_percent) != (
            self.status.traffic,
            self.status.mirror_percent,
        )
        self.status = decision.status
        self.events.extend(decision.events)
        if moved and self.router_follows:
            follow = step(self.spec, self.status, self.observe(invalid=invalid))
            self.status = follow.status
            self.events.extend(follow.events)
            decision = Decision(
                follow.status, decision.events + follow.events, follow.requeue_after
            )
        return decision

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def reasons(decision: Decision) -> list[str]:
    """The reasons of a decision's events, in order."""
    return [e.reason for e in decision.events]
