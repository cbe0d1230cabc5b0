"""Rollout commands as a declarative annotation on the pipeline (pure).

``kubectl pipeline promote`` (or any client: kubectl, a GitOps tool) sets the annotation
``pipelines.inference.dev/command`` to ``<verb>`` or ``<verb>:<id>``. The operator handles a
value once and acknowledges it in ``status.lastCommand``; a new id repeats a verb.
Pause and resume are the ``spec.paused`` field; undo is a patch of the spec back to a
previous revision's snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pipeline_operator.api.v1alpha1 import COMMAND_ANNOTATION, InferencePipelineStatus

Verb = Literal["promote", "promote-full", "abort", "retry"]
VERBS: tuple[str, ...] = get_args(Verb)


@dataclass(frozen=True)
class Command:
    """A user command, parsed from the resource's command annotation.

    The engine acts on a command once: one whose ``raw`` value equals
    ``status.last_command.command`` has been acknowledged already and is ignored, so each
    issued command needs a distinct value (e.g. the verb plus a timestamp).
    """

    verb: Verb
    raw: str


class CommandError(ValueError):
    """The annotation does not hold a known command."""


def parse(value: str) -> Command:
    verb = value.split(":", 1)[0].strip()
    if verb not in VERBS:
        raise CommandError(
            f"unknown command {verb!r} in {COMMAND_ANNOTATION}; expected one of {', '.join(VERBS)}"
        )
    return Command(verb=verb, raw=value)  # type: ignore[arg-type]


def pending(annotations: dict[str, str] | None, status: InferencePipelineStatus) -> str | None:
    """The command annotation's value when it has not been acknowledged yet."""
    value = (annotations or {}).get(COMMAND_ANNOTATION)
    if not value:
        return None
    if status.last_command is not None and status.last_command.command == value:
        return None
    return value


def command_patch(verb: str, command_id: str | None = None) -> dict[str, Any]:
    """The merge patch that issues ``verb`` (a fresh id makes every call a new command)."""
    if verb not in VERBS:
        raise CommandError(f"unknown command {verb!r}; expected one of {', '.join(VERBS)}")
    value = f"{verb}:{command_id or time.time_ns()}"
    return {"metadata": {"annotations": {COMMAND_ANNOTATION: value}}}


def paused_patch(paused: bool) -> dict[str, Any]:
    return {"spec": {"paused": paused}}
