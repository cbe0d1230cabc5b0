"""User commands: promote, promote-full, abort, retry. Each is acknowledged in
``status.last_command``, accepted or rejected with a reason."""

from __future__ import annotations

from typing import Literal

from pipeline_operator.api.command_annotation import Command
from pipeline_operator.api.v1alpha1 import CommandAck, Phase
from pipeline_operator.core.revisions import canary_role
from pipeline_operator.core.rollout import transitions
from pipeline_operator.core.rollout.context import Run
from pipeline_operator.core.rollout.steps import canary_steps

HELD = "the rollout is held by spec.paused; set it to false first"


class RejectedError(Exception):
    """The command cannot be carried out; the message says why."""


def pending(run: Run) -> Command | None:
    """The observed command, unless it was acknowledged already."""
    command = run.obs.command
    last = run.status.last_command
    if command is None or (last is not None and last.command == command.raw):
        return None
    return command


def apply(run: Run) -> bool:
    """Carry out the pending command; True when it is a canary promote, which the canary
    walk performs by skipping its next pause or analysis step."""
    command = pending(run)
    if command is None:
        return False
    try:
        if command.verb == "abort":
            message = _abort(run)
        elif command.verb == "retry":
            message = _retry(run)
        elif command.verb == "promote-full" or run.spec.rollout.strategy == "BlueGreen":
            message = _promote_full(run, command.verb)
        else:
            message = _promote_step(run)
    except RejectedError as rejected:
        reject(run, command, str(rejected))
        return False
    _acknowledge(run, command, "Accepted", message)
    return command.verb == "promote" and run.spec.rollout.strategy == "Canary"


def reject(run: Run, command: Command, message: str) -> None:
    _acknowledge(run, command, "Rejected", message)
    run.warning("CommandRejected", f"{command.verb} rejected: {message}")


def _acknowledge(
    run: Run, command: Command, result: Literal["Accepted", "Rejected"], message: str
) -> None:
    run.status.last_command = CommandAck(
        command=command.raw, result=result, message=message, at=run.stamp
    )


def _in_flight(run: Run, verb: str) -> str:
    """The canary / preview revision of the rollout in progress, or rejection."""
    s = run.status
    if s.canary_revision is None:
        raise RejectedError(f"nothing to {verb}: no rollout in progress")
    if s.phase == Phase.ABORTED:
        raise RejectedError(f"nothing to {verb}: the rollout of {s.canary_revision} was aborted")
    return s.canary_revision


def _ready(run: Run, revision: str) -> None:
    if not run.ready(revision):
        role = canary_role(run.spec.rollout.strategy)
        raise RejectedError(f"{role} revision {revision} is not ready")
    if run.spec.paused:
        raise RejectedError(HELD)


def _promote_step(run: Run) -> str:
    canary = _in_flight(run, "promote")
    _ready(run, canary)
    return f"canary {canary}: skipping the next pause or analysis step"


def _promote_full(run: Run, verb: str) -> str:
    revision = _in_flight(run, "promote")
    _ready(run, revision)
    run.normal("Promoted", f"revision {revision} promoted to stable ({verb})")
    if run.spec.rollout.strategy == "Canary":
        # Past the last step: the walk promotes it once it runs all of its replicas.
        run.status.current_step_index = len(canary_steps(run.spec))
    else:
        transitions.promote(run)
    return f"revision {revision} promoted to stable"


def _abort(run: Run) -> str:
    revision = _in_flight(run, "abort")
    transitions.abort(run, "aborted by user")
    return f"rollout of {revision} aborted; stable {run.status.stable_revision} serves 100%"


def _retry(run: Run) -> str:
    s = run.status
    if s.phase != Phase.ABORTED or s.canary_revision is None:
        raise RejectedError("nothing to retry: no aborted rollout")
    if run.spec.paused:
        raise RejectedError(HELD)
    revision = s.canary_revision
    transitions.start(run, why="retry")
    return f"rollout of {revision} restarted from the first step"
