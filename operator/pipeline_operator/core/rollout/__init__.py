"""The rollout engine (pure): canary and blue-green rollouts of a pipeline, decided from
spec, status and observations. See :func:`pipeline_operator.core.rollout.engine.step`."""

from pipeline_operator.core.rollout.analysis import (
    AnalysisError,
    AnalysisProvider,
    NoDataError,
    PendingError,
    Reading,
    measure,
)
from pipeline_operator.core.rollout.engine import (
    Command,
    Decision,
    Event,
    Observations,
    due_measurements,
    step,
)

__all__ = [
    "AnalysisError",
    "AnalysisProvider",
    "Command",
    "Decision",
    "Event",
    "NoDataError",
    "Observations",
    "PendingError",
    "Reading",
    "due_measurements",
    "measure",
    "step",
]
