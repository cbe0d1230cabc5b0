"""What goes into the rollout engine and what comes out of it (plain values, no behaviour)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pipeline_operator.api.command_annotation import Command
from pipeline_operator.api.v1alpha1 import (
    InferencePipelineStatus,
    Measurement,
    WebhookCall,
    WebhookType,
)

GateKey = tuple[WebhookType, int | None, str]
"""A webhook gate: its type, its step (Step gates), the canary revision."""


@dataclass(frozen=True)
class Observations:
    """Everything the engine knows about the world at one reconcile."""

    now: datetime
    desired_revision: str
    ready: Mapping[str, bool]
    reasons: Mapping[str, str] = field(default_factory=dict)
    command: Command | None = None
    measurements: Sequence[Measurement] = ()
    webhook_calls: Mapping[GateKey, Sequence[WebhookCall]] = field(default_factory=dict)
    """The answers of the webhooks called for each gate this reconcile (see gates.py)."""
    invalid: str | None = None
    warnings: Sequence[str] = ()
    """What :func:`pipeline_operator.api.validation.lint` says of the spec: it deploys, but
    probably not as meant."""
    served: Mapping[str, int] | None = None
    """Revision -> weight that the main graph's router serves on every replica; None while
    KServe rolls the router out (it restarts it on every graph change) or when unknown."""
    mirror_served: int = 0
    """The share of requests the route copies to the canary, once it serves that."""
    preview_served: str | None = None
    """The revision the blue-green preview router serves on every replica, if any."""
    routing: str = ""
    """What the routers are doing when they do not serve the current routes yet."""
    replicas: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Revision -> stage -> ready pods (the fewest over the stage's components); a revision
    missing here is not waited on for its replicas."""
    unschedulable: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Revision -> its stages with a pod the scheduler cannot place (no room on the pool)."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record: one per transition."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The engine's answer: the complete new status, the events, and when to run again."""

    status: InferencePipelineStatus
    events: tuple[Event, ...]
    requeue_after: float | None
