"""Revision snapshots (ControllerRevisions) and the command annotation."""

from __future__ import annotations

import pytest

from pipeline_operator.api import command_annotation
from pipeline_operator.api.v1alpha1 import (
    COMMAND_ANNOTATION,
    CommandAck,
    InferencePipelineSpec,
    InferencePipelineStatus,
)
from pipeline_operator.core.naming import revision_of
from pipeline_operator.core.observe import snapshots
from pipeline_operator.core.planner import Owner

OWNER = Owner(name="clf", namespace="ml", uid="u-1")


def spec(uri: str) -> InferencePipelineSpec:
    return InferencePipelineSpec.model_validate(
        {
            "stages": [
                {
                    "name": "m",
                    "predictor": {"model": {"modelFormat": {"name": "hf"}, "storageUri": uri}},
                }
            ]
        }
    )


def stored(*uris: str) -> dict[str, snapshots.Snapshot]:
    objects = [
        snapshots.build(OWNER, revision_of(spec(u)), spec(u), i + 1) for i, u in enumerate(uris)
    ]
    return snapshots.parse(objects)


def test_snapshot_round_trip_keeps_the_spec_and_its_revision() -> None:
    snaps = stored("pvc://a", "pvc://b")
    for uri in ("pvc://a", "pvc://b"):
        rev = revision_of(spec(uri))
        assert snaps[rev].spec == spec(uri)
        assert revision_of(snaps[rev].spec) == rev
    assert snapshots.next_number(snaps) == 3


def test_snapshot_is_owned_and_labelled() -> None:
    body = snapshots.build(OWNER, "abc", spec("pvc://a"), 1)
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert body["metadata"]["labels"]["pipelines.inference.dev/revision"] == "abc"


def test_previous_and_expired() -> None:
    snaps = stored("pvc://a", "pvc://b", "pvc://c")
    a, b, c = (revision_of(spec(u)) for u in ("pvc://a", "pvc://b", "pvc://c"))
    prev = snapshots.previous(snaps, c)
    assert prev is not None
    assert prev.revision == b
    assert snapshots.previous(snaps, a) is None
    assert [s.revision for s in snapshots.expired(snaps, keep=[c], limit=2)] == [a]
    assert snapshots.expired(snaps, keep=[a], limit=2) == []


def test_unreadable_snapshots_are_skipped() -> None:
    bad = {
        "metadata": {"name": "x", "labels": {"pipelines.inference.dev/revision": "r"}},
        "data": {"spec": {"stages": "not a list"}},
    }
    assert snapshots.parse([bad]) == {}


def test_command_annotation_round_trip() -> None:
    patch = command_annotation.command_patch("promote", "42")
    value = patch["metadata"]["annotations"][COMMAND_ANNOTATION]
    assert value == "promote:42"
    parsed = command_annotation.parse(value)
    assert (parsed.verb, parsed.raw) == ("promote", "promote:42")
    assert command_annotation.parse("abort").verb == "abort"


def test_unknown_command_is_refused_with_the_choices() -> None:
    with pytest.raises(command_annotation.CommandError, match="expected one of promote"):
        command_annotation.parse("launch:1")


def test_pending_skips_acknowledged_commands() -> None:
    annotations = {COMMAND_ANNOTATION: "promote:1"}
    assert command_annotation.pending(annotations, InferencePipelineStatus()) == "promote:1"
    acked = InferencePipelineStatus(
        last_command=CommandAck(command="promote:1", result="Accepted", at="2026-01-01T00:00:00Z")
    )
    assert command_annotation.pending(annotations, acked) is None
    assert command_annotation.pending({}, InferencePipelineStatus()) is None
