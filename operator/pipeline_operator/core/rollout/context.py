"""The working state of one engine step: a private copy of status and what the step produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, InferencePipelineStatus
from pipeline_operator.core.rollout.clock import stamp
from pipeline_operator.core.rollout.model import Event, Observations


@dataclass
class Run:
    """One call of the engine. ``status`` is a deep copy that the step edits; ``before`` is
    the caller's status, read only."""

    spec: InferencePipelineSpec
    obs: Observations
    before: InferencePipelineStatus
    status: InferencePipelineStatus
    events: list[Event] = field(default_factory=list)
    wakeups: list[datetime] = field(default_factory=list)
    outcome: str | None = None
    """Reason of the Progressing condition set by a rollout ending in this step."""

    @classmethod
    def of(
        cls, spec: InferencePipelineSpec, status: InferencePipelineStatus, obs: Observations
    ) -> Run:
        return cls(spec=spec, obs=obs, before=status, status=status.model_copy(deep=True))

    @property
    def now(self) -> datetime:
        return self.obs.now

    @property
    def stamp(self) -> str:
        return stamp(self.obs.now)

    def normal(self, reason: str, message: str) -> None:
        self.events.append(Event("Normal", reason, message))

    def warning(self, reason: str, message: str) -> None:
        self.events.append(Event("Warning", reason, message))

    def wake_at(self, moment: datetime) -> None:
        """Ask to be run again at ``moment``."""
        self.wakeups.append(moment)

    def ready(self, revision: str | None) -> bool:
        return revision is not None and self.obs.ready.get(revision, False)

    def why_not_ready(self, revision: str) -> str:
        return self.obs.reasons.get(revision) or "waiting for its stages to become Ready"

    def requeue_after(self) -> float | None:
        if not self.wakeups:
            return None
        return max(0.0, (min(self.wakeups) - self.now).total_seconds())
