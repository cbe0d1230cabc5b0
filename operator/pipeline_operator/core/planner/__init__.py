"""The planner: pipeline spec snapshots + rollout status -> desired KServe objects (pure).

No I/O, no clock, no Kubernetes client: the same input always gives identical dicts in the
same order, so applying them with server-side apply is a no-op when nothing changed.
"""

from pipeline_operator.core.planner.inference_service import capacity
from pipeline_operator.core.planner.options import (
    MissingRevisionError,
    Owner,
    PlanError,
    PlanOptions,
)
from pipeline_operator.core.planner.plan import plan, plan_revision

__all__ = [
    "MissingRevisionError",
    "Owner",
    "PlanError",
    "PlanOptions",
    "capacity",
    "plan",
    "plan_revision",
]
