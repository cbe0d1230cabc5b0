"""Children the apiserver or an admission webhook refused, as status reports them (pure).

A refused write is never silent: the Ready condition turns False with reason ``ApplyFailed``
and the refusal, the phase is Degraded (mid-rollout the rollout waits instead, and its
progress deadline counts), and a Warning Event is posted when the set of refusals changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline_operator.api.v1alpha1 import (
    ApplyError,
    Condition,
    InferencePipelineStatus,
    Phase,
)
from pipeline_operator.core.revisions import canary_active

REASON = "ApplyFailed"


def describe(errors: Sequence[ApplyError]) -> str:
    return "; ".join(f"{e.kind} {e.name} refused: {e.message}" for e in errors)


def refused_services(status: InferencePipelineStatus) -> dict[str, str]:
    """InferenceService name -> why it was refused, as the last reconcile recorded it."""
    return {e.name: e.message for e in status.apply_errors if e.kind == "InferenceService"}


def report(
    status: InferencePipelineStatus, errors: Sequence[ApplyError], now: str
) -> tuple[InferencePipelineStatus, str | None]:
    """``status`` with ``errors`` recorded, and the Warning Event message to post, if any.

    ``status`` is the one just decided for this reconcile: its previous apply errors are the
    last reconcile's, so an Event is posted only when the refusals changed.
    """
    changed = list(errors) != list(status.apply_errors)
    if not errors:
        return status.model_copy(update={"apply_errors": []}), None
    message = describe(errors)
    old = next((c for c in status.conditions if c.type == "Ready"), None)
    since = old.last_transition_time if old is not None and old.status == "False" else now
    ready = Condition(
        type="Ready",
        status="False",
        reason=REASON,
        message=message,
        last_transition_time=since,
        observed_generation=status.observed_generation,
    )
    update = {
        "apply_errors": list(errors),
        "conditions": [ready if c.type == "Ready" else c for c in status.conditions]
        + ([] if old else [ready]),
        "message": f"{status.message}; {message}" if status.message else message,
    }
    if not canary_active(status):
        update["phase"] = Phase.DEGRADED
    return status.model_copy(update=update), (message if changed else None)
