"""Capacity is no part of a revision: scaling and quantity spellings keep the revision, and
the spec's scaling applies in place to every active revision (stable, canary, previous)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_operator.api.v1alpha1 import (
    InferencePipelineSpec,
    InferencePipelineStatus,
    Phase,
    TrafficTarget,
)
from pipeline_operator.cli.undo import patch_for
from pipeline_operator.core import naming
from pipeline_operator.core.observe import snapshots
from pipeline_operator.core.planner import Owner, capacity, plan

OWNER = Owner(name="clf", namespace="ml", uid="u-1")


def spec(image: str = "m:1", **stage: Any) -> InferencePipelineSpec:
    body = {
        "name": "m",
        "predictor": {"container": {"image": image}},
        "transformer": {"image": "t:1"},
        **stage,
    }
    return InferencePipelineSpec.model_validate({"stages": [body]})


@pytest.mark.parametrize(
    "stage",
    [
        {"scaling": {"minReplicas": 2, "maxReplicas": 8}},
        {"scaling": {"metric": "cpu", "target": 70}},
        {"resources": {"cpu": "1000m"}},
        {"resources": {"cpu": "1", "memory": "2048Mi"}},
        {"resources": {"gpus": 0, "cpu": "1.0", "memory": "2147483648"}},
        {"transformer": {"image": "t:1", "cpu": "1000m", "memory": "1024Mi"}},
    ],
)
def test_capacity_and_spellings_keep_the_revision(stage: dict[str, Any]) -> None:
    assert naming.revision_of(spec(**stage)) == naming.revision_of(spec())


@pytest.mark.parametrize(
    "stage",
    [
        {"resources": {"cpu": "2"}},
        {"resources": {"gpus": 1}},
        {"resources": {"memory": "3Gi"}},
        {"transformer": {"image": "t:1", "cpu": "500m"}},
        {"batching": {"maxBatchSize": 8}},
    ],
)
def test_what_changes_serving_makes_a_new_revision(stage: dict[str, Any]) -> None:
    assert naming.revision_of(spec(**stage)) != naming.revision_of(spec())
    assert naming.revision_of(spec("m:2")) != naming.revision_of(spec())


def stored(*entries: tuple[str, InferencePipelineSpec]) -> dict[str, snapshots.Snapshot]:
    bodies = [snapshots.build(OWNER, rev, s, i + 1) for i, (rev, s) in enumerate(entries)]
    return snapshots.parse(bodies)


def test_a_revision_named_by_the_former_hash_keeps_its_name_when_only_capacity_changes() -> None:
    """A pipeline deployed before capacity left the hash: its revision is named by the hash
    over every serving field. Raising maxReplicas keeps that revision (no rollout)."""
    before = spec(scaling={"maxReplicas": 2})
    legacy = naming.legacy_revision_of(before)
    assert legacy != naming.revision_of(before)
    snaps = stored((legacy, before))
    assert snapshots.revision_for(before, snaps, [legacy]) == legacy
    assert snapshots.revision_for(spec(scaling={"maxReplicas": 8}), snaps, [legacy]) == legacy
    assert snapshots.revision_for(spec("m:2"), snaps, [legacy]) == naming.revision_of(spec("m:2"))


def test_the_active_revision_is_preferred_among_stored_ones_of_the_same_content() -> None:
    """Two stored revisions that differ in capacity only (named by the former hash): the
    spec is the active one, never an older snapshot that happens to match."""
    old, new = spec(scaling={"maxReplicas": 2}), spec(scaling={"maxReplicas": 3})
    a, b = naming.legacy_revision_of(old), naming.legacy_revision_of(new)
    snaps = stored((a, old), (b, new))
    assert snapshots.revision_for(spec(scaling={"maxReplicas": 9}), snaps, [a]) == a
    assert snapshots.revision_for(spec(scaling={"maxReplicas": 9}), snaps, [b]) == b
    assert snapshots.revision_for(spec(scaling={"maxReplicas": 9}), snaps, []) == b


def test_annotations_of_either_hash_rebuild_their_revision() -> None:
    s = spec(scaling={"maxReplicas": 4})
    for revision in (naming.revision_of(s), naming.legacy_revision_of(s)):
        assert naming.parse_serving_spec(naming.serving_spec(s), revision) == s
    assert naming.parse_serving_spec(naming.serving_spec(s), "deadbeef") is None


def bounds(objects: list[dict[str, Any]]) -> dict[str, dict[str, tuple[int, int]]]:
    return {
        o["metadata"]["name"]: {
            c: (o["spec"][c]["minReplicas"], o["spec"][c]["maxReplicas"])
            for c in ("predictor", "transformer")
        }
        for o in objects
        if o["kind"] == "InferenceService"
    }


def test_the_specs_scaling_applies_to_every_active_revision_the_canary_by_its_share() -> None:
    stable, canary = spec(scaling={"minReplicas": 1, "maxReplicas": 2}), spec("m:2")
    r1, r2 = naming.revision_of(stable), naming.revision_of(canary)
    status = InferencePipelineStatus(
        phase=Phase.PROGRESSING,
        stable_revision=r1,
        canary_revision=r2,
        canary_weight=25,
        canary_scale=25,
        traffic=[TrafficTarget(revision=r1, weight=75), TrafficTarget(revision=r2, weight=25)],
    )
    now = spec("m:2", scaling={"minReplicas": 4, "maxReplicas": 8})
    objects = plan(OWNER, {r1: stable, r2: canary}, status, capacity=capacity(now))
    assert bounds(objects) == {
        f"clf-m-{r1}": {"predictor": (4, 8), "transformer": (4, 8)},
        f"clf-m-{r2}": {"predictor": (1, 2), "transformer": (1, 2)},
    }
    isvc = next(o for o in objects if o["metadata"]["name"] == f"clf-m-{r1}")
    # The revision's own spec stays in its annotation: it still rebuilds the revision.
    annotation = isvc["metadata"]["annotations"][naming.SERVING_SPEC_ANNOTATION]
    assert naming.parse_serving_spec(annotation, r1) == stable
    # Without a capacity, each revision runs its snapshot's scaling.
    assert bounds(plan(OWNER, {r1: stable, r2: canary}, status))[f"clf-m-{r1}"] == {
        "predictor": (1, 2),
        "transformer": (1, 2),
    }


def test_undo_keeps_each_stages_scaling() -> None:
    old = spec("m:1", scaling={"maxReplicas": 2})
    snap = stored((naming.revision_of(old), old))[naming.revision_of(old)]
    now = spec("m:2", scaling={"minReplicas": 3, "maxReplicas": 6})
    stage = patch_for(snap, now)["spec"]["stages"][0]
    assert stage["scaling"]["minReplicas"] == 3 and stage["scaling"]["maxReplicas"] == 6
    assert stage["predictor"]["container"]["image"] == "m:1"
    assert patch_for(snap, None)["spec"]["stages"][0]["scaling"]["maxReplicas"] == 2
