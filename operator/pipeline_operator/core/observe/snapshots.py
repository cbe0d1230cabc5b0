"""Revision snapshots: the spec of every revision, kept as ControllerRevisions (pure).

A rollout needs the old revision's spec after the user changed ``spec``, to keep (or bring
back) the stable revision's children, and ``undo`` needs it to roll back. Each revision's
spec is stored once, in an ``apps/v1`` ControllerRevision owned by the pipeline, numbered in
the order revisions were first seen. Every InferenceService of a revision also carries the
revision's serving fields, so that a deleted snapshot can be rebuilt from any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.core.naming import (
    LABEL_REVISION,
    SERVING_SPEC_ANNOTATION,
    fit_name,
    labels,
    legacy_revision_of,
    parse_serving_spec,
    revision_of,
)
from pipeline_operator.core.planner import Owner
from pipeline_operator.core.planner.metadata import build_owner_reference


@dataclass(frozen=True)
class Snapshot:
    revision: str
    number: int
    spec: InferencePipelineSpec
    name: str


def snapshot_name(pipeline: str, revision: str) -> str:
    return fit_name(pipeline, revision, limit=253)


def parse(objects: Iterable[dict[str, Any]]) -> dict[str, Snapshot]:
    """Snapshots by revision, from ControllerRevision objects (unreadable ones are skipped)."""
    out: dict[str, Snapshot] = {}
    for obj in objects:
        revision = obj["metadata"].get("labels", {}).get(LABEL_REVISION)
        data = (obj.get("data") or {}).get("spec")
        if not revision or data is None:
            continue
        try:
            spec = InferencePipelineSpec.model_validate(data)
        except ValueError:
            continue
        out[revision] = Snapshot(
            revision, int(obj.get("revision", 0)), spec, obj["metadata"]["name"]
        )
    return out


def build(owner: Owner, revision: str, spec: InferencePipelineSpec, number: int) -> dict[str, Any]:
    """The ControllerRevision that stores ``spec`` as revision ``revision``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": snapshot_name(owner.name, revision),
            "namespace": owner.namespace,
            "labels": labels(owner.name, revision),
            "ownerReferences": [build_owner_reference(owner)],
        },
        "revision": number,
        "data": {"spec": spec.model_dump(by_alias=True, mode="json", exclude_none=True)},
    }


def recover(children: Iterable[dict[str, Any]], revision: str) -> InferencePipelineSpec | None:
    """``revision``'s spec, from the first of its children that carries it intact."""
    for child in children:
        meta = child["metadata"]
        mine = (meta.get("labels") or {}).get(LABEL_REVISION) == revision
        value = (meta.get("annotations") or {}).get(SERVING_SPEC_ANNOTATION)
        spec = parse_serving_spec(value, revision) if mine and value else None
        if spec is not None:
            return spec
    return None


def revision_for(
    spec: InferencePipelineSpec, snaps: dict[str, Snapshot], active: Iterable[str]
) -> str:
    """The revision ``spec`` is: a stored one of the same content if there is one (an active
    revision first, then the newest), so that a change of capacity alone, or of a quantity's
    spelling, keeps the revision it had, whichever hash named it; else its hash."""
    wanted = revision_of(spec)
    for name in (wanted, legacy_revision_of(spec)):
        if name in snaps:
            return name
    order = [*active, *(s.revision for s in sorted(snaps.values(), key=lambda s: -s.number))]
    same = (r for r in order if r in snaps and revision_of(snaps[r].spec) == wanted)
    return next(same, wanted)


def missing(revisions: Iterable[str]) -> str:
    """Why the pipeline cannot be reconciled while these revisions have no snapshot."""
    listed = ", ".join(revisions)
    return (
        f"no spec snapshot for revision(s) {listed}, and none of their InferenceServices carries "
        "their spec to rebuild it from: their children are left as they are; apply that "
        "revision's spec again to restore it"
    )


def next_number(snapshots: dict[str, Snapshot]) -> int:
    return max((s.number for s in snapshots.values()), default=0) + 1


def expired(snapshots: dict[str, Snapshot], keep: Iterable[str], limit: int) -> list[Snapshot]:
    """Snapshots beyond the newest ``limit``, never those of revisions in ``keep``."""
    kept = set(keep)
    newest_first = sorted(snapshots.values(), key=lambda s: s.number, reverse=True)
    return [s for s in newest_first[limit:] if s.revision not in kept]


def previous(snapshots: dict[str, Snapshot], current: str | None) -> Snapshot | None:
    """The newest snapshot older than ``current`` (what ``undo`` goes back to)."""
    number = snapshots[current].number if current in snapshots else None
    older = [s for s in snapshots.values() if number is None or s.number < number]
    return max(older, key=lambda s: s.number, default=None)
