"""Pure output helpers: kubectl-style tables, ages, ``-o json|yaml``, reading status out of
an object."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, InferencePipelineStatus
from pipeline_operator.cli.errors import CliError
from pipeline_operator.core.rollout.clock import parse

NONE = "-"
OUTPUTS = ("json", "yaml")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell and separated by three spaces, as kubectl does."""
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def dump(data: Any, output: str) -> str:
    """``data`` as ``-o json`` (indented as kubectl does) or ``-o yaml`` prints it."""
    if output == "json":
        return json.dumps(data, indent=4)
    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


def as_list(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Objects as the ``v1`` ``List`` that ``kubectl get -o json|yaml`` prints."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def parse_time(value: str | None) -> datetime | None:
    """A timestamp of the object (``creationTimestamp``, a status time), None when unreadable."""
    if not value:
        return None
    try:
        return parse(value)
    except ValueError:
        return None


def age(value: str | None, now: datetime) -> str:
    """A short human age, as kubectl prints it (``45s``, ``3m20s``, ``5h``, ``12d``)."""
    then = parse_time(value)
    if then is None:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 2:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def status_of(obj: dict[str, Any]) -> InferencePipelineStatus:
    """The object's status as the model (empty when the operator has not written one)."""
    return InferencePipelineStatus.model_validate(obj.get("status") or {})


def spec_of(obj: dict[str, Any]) -> InferencePipelineSpec | None:
    """The object's spec as the model, or None when it does not parse."""
    try:
        return InferencePipelineSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None


def where(name: str, status: InferencePipelineStatus) -> str:
    """``pipeline NAME is PHASE at revision STABLE``, for messages."""
    if status.phase is None and status.stable_revision is None:
        return f"pipeline {name} has no status yet (is the operator running?)"
    phase = status.phase or "without a phase"
    return f"pipeline {name} is {phase} at revision {status.stable_revision or NONE}"


def check_not_paused(name: str, obj: dict[str, Any]) -> None:
    """Fail when ``spec.paused`` holds the pipeline's rollouts."""
    if (obj.get("spec") or {}).get("paused"):
        raise CliError(
            f"pipeline {name} is paused (spec.paused); 'kubectl pipeline resume {name}' first"
        )
