"""plan(): apply order, errors, names, determinism, and properties over random statuses."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, InferencePipelineStatus
from pipeline_operator.core import naming
from pipeline_operator.core.planner import MissingRevisionError, Owner, PlanError, plan
from pipeline_operator.core.planner.graph import TRAFFIC_ANNOTATION, node_name, step_names

OWNER = Owner(name="demo", namespace="ml", uid="uid-1")
KSERVE_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
ENSEMBLE_GRAPH = {
    "root": "main",
    "nodes": [
        {"name": "main", "steps": [{"stage": "pre"}, {"node": "fan"}, {"stage": "post"}]},
        {"name": "fan", "type": "Ensemble", "steps": [{"stage": "a"}, {"node": "pick"}]},
        {"name": "pick", "type": "Switch", "steps": [{"stage": "b", "condition": "x"}]},
    ],
}


def make_spec(image: str, graph: dict[str, Any] | None = None) -> InferencePipelineSpec:
    body: dict[str, Any] = {
        "stages": [
            {"name": n, "predictor": {"container": {"image": image}}}
            for n in ("pre", "a", "b", "post")
        ]
    }
    if graph is not None:
        body["graph"] = graph
    return InferencePipelineSpec.model_validate(body)


def status(**fields: Any) -> InferencePipelineStatus:
    return InferencePipelineStatus.model_validate(fields)


CANARY = status(
    stableRevision="v1",
    canaryRevision="v2",
    strategy="Canary",
    phase="Progressing",
    traffic=[{"revision": "v1", "weight": 70}, {"revision": "v2", "weight": 30}],
)
SPECS = {"v1": make_spec("img:1", ENSEMBLE_GRAPH), "v2": make_spec("img:2", ENSEMBLE_GRAPH)}


def test_apply_order_services_then_graph() -> None:
    objects = plan(OWNER, SPECS, CANARY)
    kinds = [o["kind"] for o in objects]
    assert kinds == ["InferenceService"] * 8 + ["InferenceGraph"]
    names = [o["metadata"]["name"] for o in objects[:8]]
    assert names == [
        naming.service_name("demo", s, r) for r in ("v1", "v2") for s in ("pre", "a", "b", "post")
    ]


def test_every_child_is_owned_and_labelled() -> None:
    for obj in plan(OWNER, SPECS, CANARY):
        meta = obj["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "pipelines.inference.dev/v1alpha1",
                "kind": "InferencePipeline",
                "name": "demo",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"][naming.LABEL_PIPELINE] == "demo"
        assert meta["labels"][naming.MANAGED_BY] == naming.OPERATOR_NAME


def test_deterministic_and_inputs_untouched() -> None:
    specs_before = {r: s.model_dump() for r, s in SPECS.items()}
    status_before = CANARY.model_dump()
    first = plan(OWNER, SPECS, CANARY)
    second = plan(OWNER, copy.deepcopy(SPECS), CANARY.model_copy(deep=True))
    assert json.dumps(first) == json.dumps(second)
    assert {r: s.model_dump() for r, s in SPECS.items()} == specs_before
    assert CANARY.model_dump() == status_before


def test_returned_dicts_share_no_state() -> None:
    first = plan(OWNER, SPECS, CANARY)
    first[0]["spec"]["predictor"]["labels"]["x"] = "y"
    first[-1]["spec"]["nodes"]["root"]["steps"].clear()
    assert plan(OWNER, SPECS, CANARY)[0]["spec"]["predictor"]["labels"].get("x") is None
    assert plan(OWNER, SPECS, CANARY)[-1]["spec"]["nodes"]["root"]["steps"]


def test_missing_snapshot_names_the_revision() -> None:
    with pytest.raises(MissingRevisionError, match="v2") as info:
        plan(OWNER, {"v1": SPECS["v1"]}, CANARY)
    assert isinstance(info.value, KeyError)
    assert info.value.revision == "v2"


def test_traffic_must_sum_to_100() -> None:
    bad = status(
        stableRevision="v1",
        canaryRevision="v2",
        traffic=[{"revision": "v1", "weight": 70}, {"revision": "v2", "weight": 20}],
    )
    with pytest.raises(PlanError, match="sum to 90"):
        plan(OWNER, SPECS, bad)


def test_duplicate_traffic_entries_merge() -> None:
    dup = status(
        stableRevision="v1",
        traffic=[{"revision": "v1", "weight": 60}, {"revision": "v1", "weight": 40}],
    )
    graph = plan(OWNER, SPECS, dup)[-1]
    root = graph["spec"]["nodes"]["root"]
    assert root["routerType"] != "Splitter", "60 + 40 to one revision is that revision at 100%"
    single = status(stableRevision="v1", traffic=[{"revision": "v1", "weight": 100}])
    assert graph == plan(OWNER, SPECS, single)[-1]


def test_empty_status_plans_nothing() -> None:
    assert plan(OWNER, SPECS, status()) == []


def test_blue_green_previous_revision_kept_until_scale_down() -> None:
    st_ = status(
        stableRevision="v2",
        previousRevision="v1",
        strategy="BlueGreen",
        phase="Healthy",
        traffic=[{"revision": "v2", "weight": 100}],
    )
    objects = plan(OWNER, SPECS, st_)
    revisions = [o["metadata"]["labels"].get(naming.LABEL_REVISION) for o in objects[:-1]]
    assert revisions == ["v2"] * 4 + ["v1"] * 4
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "InferenceGraph"] == ["demo"]


def test_a_canary_analysed_by_jobs_gets_a_graph_per_revision() -> None:
    objects = plan(OWNER, SPECS, CANARY, revision_graphs=True)
    graphs = [o for o in objects if o["kind"] == "InferenceGraph"]
    assert [g["metadata"]["name"] for g in graphs] == ["demo", "demo-v1", "demo-v2"]
    for graph, revision in zip(graphs[1:], ("v1", "v2"), strict=True):
        labels = graph["metadata"]["labels"]
        assert labels[naming.LABEL_ROLE] == "revision" and labels[naming.LABEL_REVISION] == revision
        assert graph["metadata"]["annotations"][TRAFFIC_ANNOTATION] == f"{revision}=100"
        services = {
            step["serviceName"]
            for node in graph["spec"]["nodes"].values()
            for step in node["steps"]
            if "serviceName" in step
        }
        assert services and all(s.endswith(f"-{revision}") for s in services), services
    assert [g["metadata"]["name"] for g in graphs] == [
        g["metadata"]["name"]
        for g in plan(OWNER, SPECS, CANARY, revision_graphs=True)
        if g["kind"] == "InferenceGraph"
    ]


@pytest.mark.parametrize(
    "st_",
    [
        status(stableRevision="v1", phase="Healthy", traffic=[{"revision": "v1", "weight": 100}]),
        status(
            stableRevision="v1",
            canaryRevision="v2",
            strategy="BlueGreen",
            phase="Progressing",
            traffic=[{"revision": "v1", "weight": 100}],
        ),
    ],
    ids=["no-canary", "blue-green"],
)
def test_revision_graphs_exist_only_while_a_canary_is_analysed(
    st_: InferencePipelineStatus,
) -> None:
    graphs = [
        o for o in plan(OWNER, SPECS, st_, revision_graphs=True) if o["kind"] == "InferenceGraph"
    ]
    assert all(g["metadata"]["labels"][naming.LABEL_ROLE] != "revision" for g in graphs)


def test_long_names_are_truncated_with_a_hash() -> None:
    owner = Owner(name="a-very-long-pipeline-name-for-the-fraud-team", namespace="ml", uid="u")
    st_ = status(
        stableRevision="abcdef12",
        canaryRevision="12345678",
        strategy="BlueGreen",
        phase="Progressing",
        traffic=[{"revision": "abcdef12", "weight": 100}],
    )
    specs = {"abcdef12": make_spec("img:1"), "12345678": make_spec("img:2")}
    objects = plan(owner, specs, st_)
    names = [o["metadata"]["name"] for o in objects]
    assert len(set(names)) == len(names)
    for name in names:
        assert len(name) <= naming.MAX_CHILD_NAME
        assert KSERVE_NAME.match(name)
    assert names[-2] != names[-1]  # the preview graph keeps a distinct name


def test_names_kserve_would_reject_are_refused() -> None:
    owner = Owner(name="1st-pipeline", namespace="ml", uid="u")
    with pytest.raises(PlanError, match="must match"):
        plan(owner, SPECS, CANARY)


# -- properties ------------------------------------------------------------------------------

REVISIONS = ["r0000001", "r0000002", "r0000003"]
GRAPHS: list[dict[str, Any] | None] = [
    None,
    ENSEMBLE_GRAPH,
    {
        "root": "sw",
        "nodes": [
            {
                "name": "sw",
                "type": "Switch",
                "steps": [{"stage": "a", "condition": "a"}, {"node": "seq", "condition": "b"}],
            },
            {"name": "seq", "steps": [{"stage": "pre"}, {"stage": "b"}, {"stage": "post"}]},
        ],
    },
]


@st.composite
def rollouts(draw: st.DrawFn) -> tuple[dict[str, InferencePipelineSpec], InferencePipelineStatus]:
    count = draw(st.integers(1, 3))
    revisions = REVISIONS[:count]
    specs = {r: make_spec(f"img:{r}", draw(st.sampled_from(GRAPHS))) for r in revisions}
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=count - 1, max_size=count - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    traffic = [{"revision": r, "weight": w} for r, w in zip(revisions, weights, strict=True)]
    fields: dict[str, Any] = {
        "stableRevision": revisions[0],
        "canaryRevision": revisions[1] if count > 1 else None,
        "previousRevision": revisions[2] if count > 2 else None,
        "strategy": draw(st.sampled_from(["Canary", "BlueGreen"])),
        "phase": draw(st.sampled_from(["Progressing", "Paused", "Healthy", "Aborted"])),
        "traffic": draw(st.permutations(traffic)),
    }
    return specs, status(**fields)


def graph_targets(graph: dict[str, Any]) -> tuple[set[str], set[str]]:
    nodes = graph["spec"]["nodes"]
    services = {s["serviceName"] for n in nodes.values() for s in n["steps"] if "serviceName" in s}
    node_refs = {s["nodeName"] for n in nodes.values() for s in n["steps"] if "nodeName" in s}
    return services, node_refs


@settings(max_examples=300, deadline=None)
@given(rollouts())
def test_graphs_only_reference_planned_services(
    rollout: tuple[dict[str, InferencePipelineSpec], InferencePipelineStatus],
) -> None:
    specs, st_ = rollout
    objects = plan(OWNER, specs, st_)
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "InferenceService"}
    graph_objs = [o for o in objects if o["kind"] == "InferenceGraph"]
    assert [o["kind"] for o in objects] == (
        ["InferenceService"] * len(services) + ["InferenceGraph"] * len(graph_objs)
    )
    assert len(graph_objs) >= 1
    for graph in graph_objs:
        nodes = graph["spec"]["nodes"]
        root = nodes["root"]
        service_refs, node_refs = graph_targets(graph)
        assert service_refs <= set(services)
        assert node_refs <= set(nodes) - {"root"}
        served = {t.revision for t in st_.traffic if t.weight > 0}
        if graph["metadata"]["labels"][naming.LABEL_ROLE] == "preview":
            served = {st_.canary_revision}  # type: ignore[arg-type]
        if len(served) >= 2:
            assert root["routerType"] == "Splitter"
            assert sum(s["weight"] for s in root["steps"]) == 100
            assert all(s["weight"] > 0 for s in root["steps"])
            assert {s["name"] for s in root["steps"]} == served
            for step in root["steps"]:
                revision = step["name"]
                assert step["nodeName"] == node_name(
                    revision, specs[revision].effective_graph().root
                )
                assert any(
                    o["metadata"]["labels"][naming.LABEL_REVISION] == revision
                    for o in services.values()
                )
            assert all(n["routerType"] != "Splitter" for k, n in nodes.items() if k != "root")
        else:
            (only,) = served
            effective = specs[only].effective_graph()
            [root_node] = [n for n in effective.nodes if n.name == effective.root]
            assert all(n["routerType"] != "Splitter" for n in nodes.values())
            assert root["routerType"] == str(root_node.type)
            assert [s["name"] for s in root["steps"]] == step_names(root_node.steps)
            assert set(nodes) == {"root"} | {
                node_name(only, n.name) for n in effective.nodes if n.name != effective.root
            }
            assert all(
                services[name]["metadata"]["labels"][naming.LABEL_REVISION] == only
                for name in service_refs
            )
            assert all(ref.split("-", 1)[0] == only for ref in node_refs)
        for key, node in nodes.items():
            names = [s["name"] for s in node["steps"]]
            assert len(set(names)) == len(names)
            if key == "root":
                continue
            revision = key.split("-", 1)[0]
            for step in node["steps"]:
                target = step.get("serviceName") or step["nodeName"]
                owner_rev = (
                    services[target]["metadata"]["labels"][naming.LABEL_REVISION]
                    if "serviceName" in step
                    else target.split("-", 1)[0]
                )
                assert owner_rev == revision
    assert plan(OWNER, specs, st_) == objects


def test_each_revision_runs_its_share_of_the_replicas() -> None:
    scaled = InferencePipelineSpec.model_validate(
        {
            "stages": [
                {
                    "name": "m",
                    "predictor": {"container": {"image": "m:1"}},
                    "transformer": {"image": "t:1"},
                    "scaling": {"minReplicas": 6, "maxReplicas": 10},
                }
            ]
        }
    )
    rollout = CANARY.model_copy(update={"canary_scale": 30, "stable_scale": 70})
    counts = {
        o["metadata"]["name"]: {
            c: (o["spec"][c]["minReplicas"], o["spec"][c]["maxReplicas"])
            for c in ("predictor", "transformer")
        }
        for o in plan(OWNER, {"v1": scaled, "v2": scaled}, rollout)
        if o["kind"] == "InferenceService"
    }
    assert counts == {
        "demo-m-v1": {"predictor": (5, 7), "transformer": (5, 7)},
        "demo-m-v2": {"predictor": (2, 3), "transformer": (2, 3)},
    }


def test_a_revision_hashes_only_the_fields_set_away_from_their_defaults() -> None:
    base = {"stages": [{"name": "m", "predictor": {"container": {"image": "m:1"}}}]}
    explicit = {
        "stages": [
            {
                "name": "m",
                "predictor": {"container": {"image": "m:1", "port": 8080}},
                "scaling": {"minReplicas": 1},
            }
        ]
    }
    changed = {"stages": [{"name": "m", "predictor": {"container": {"image": "m:2"}}}]}
    revision = naming.revision_of(InferencePipelineSpec.model_validate(base))
    assert naming.revision_of(InferencePipelineSpec.model_validate(explicit)) == revision
    assert naming.revision_of(InferencePipelineSpec.model_validate(changed)) != revision
