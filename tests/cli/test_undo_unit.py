"""Pure layer of undo: which revision to go back to, and the patch."""

from __future__ import annotations

import pytest

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.cli import undo
from pipeline_operator.cli.errors import CliError
from pipeline_operator.core.naming import revision_of
from pipeline_operator.core.observe.snapshots import parse
from tests.cli import samples as s


def healthy_at_v2() -> dict:
    return s.pipeline(
        model="bert-v2",
        phase="Healthy",
        stableRevision=s.V2,
        traffic=[{"revision": s.V2, "weight": 100}],
    )


def test_undo_goes_to_the_revision_before_stable() -> None:
    target, patch = undo.plan_undo("clf", healthy_at_v2(), s.revisions("bert-v1", "bert-v2"), None)
    assert (target.number, target.revision) == (1, s.V1)
    assert set(patch) == {"spec"}
    assert set(patch["spec"]) == {"nodePools", "stages", "graph"}
    assert patch["spec"]["graph"] is None  # no graph in the snapshot: removed
    restored = {**healthy_at_v2()["spec"], **patch["spec"]}
    restored.pop("graph")
    assert revision_of(InferencePipelineSpec.model_validate(restored)) == s.V1


def test_undo_leaves_rollout_settings_and_paused_alone() -> None:
    _, patch = undo.plan_undo("clf", healthy_at_v2(), s.revisions("bert-v1", "bert-v2"), None)
    assert "rollout" not in patch["spec"] and "paused" not in patch["spec"]


def test_undo_to_a_given_revision_number() -> None:
    obj = s.pipeline(model="bert-v3", phase="Healthy", stableRevision=s.V3)
    target, _ = undo.plan_undo("clf", obj, s.revisions("bert-v1", "bert-v2", "bert-v3"), 1)
    assert target.revision == s.V1
    target, _ = undo.plan_undo("clf", obj, s.revisions("bert-v1", "bert-v2", "bert-v3"), None)
    assert target.revision == s.V2


def test_undo_keeps_a_graph() -> None:
    snaps = s.revisions("bert-v1")
    snaps[0]["data"]["spec"]["graph"] = {
        "root": "root",
        "nodes": [
            {
                "name": "root",
                "type": "Sequence",
                "steps": [{"stage": "tokenize"}, {"stage": "classify"}],
            }
        ],
    }
    target = next(iter(parse(snaps).values()))
    graph = undo.patch_for(target, None)["spec"]["graph"]
    assert graph["nodes"][0]["steps"][1] == {"stage": "classify", "dependency": "Hard"}


@pytest.mark.parametrize(
    ("obj", "models", "to", "message"),
    [
        (s.healthy(), ("bert-v1",), None, f"no revision before stable {s.V1}"),
        (s.pipeline(), ("bert-v1",), None, "has no stable revision yet"),
        (s.healthy(), ("bert-v1", "bert-v2"), 7, r"has no revision 7 \(known: 1, 2\)"),
        (s.healthy(), (), 1, r"known: none"),
        (healthy_at_v2(), ("bert-v1", "bert-v2"), 2, rf"already at revision 2 \({s.V2}\)"),
    ],
)
def test_undo_refusals(obj: dict, models: tuple[str, ...], to: int | None, message: str) -> None:
    with pytest.raises(CliError, match=message):
        undo.plan_undo("clf", obj, s.revisions(*models), to)


def test_started_reports_the_new_rollout() -> None:
    target = parse(s.revisions("bert-v1"))[s.V1]
    head = f'inferencepipeline "clf": spec set back to revision 1 ({s.V1})'
    assert undo.started("clf", target, None, waited=False) == head
    assert undo.started("clf", target, None, waited=True).endswith("has not observed it yet")
    seen = s.pipeline(phase="Progressing", stableRevision=s.V2, canaryRevision=s.V1)
    assert undo.started("clf", target, seen, waited=True) == (
        f"{head}; rolling out {s.V1} over stable {s.V2} (phase Progressing)"
    )
