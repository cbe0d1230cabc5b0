"""InferenceGraph planning: per-revision Sequence/Ensemble/Switch nodes, splitter, preview."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, InferencePipelineStatus
from pipeline_operator.core import naming
from pipeline_operator.core.planner import Owner, PlanOptions, plan
from pipeline_operator.core.planner.graph import node_name, step_names

OWNER = Owner(name="demo", namespace="ml", uid="uid-1")


def stage(name: str, image: str = "img:1") -> dict[str, Any]:
    return {"name": name, "predictor": {"container": {"image": image}}}


def make_spec(
    graph: dict[str, Any] | None = None,
    image: str = "img:1",
    names: tuple[str, ...] = ("pre", "a", "b", "post"),
) -> InferencePipelineSpec:
    body: dict[str, Any] = {"stages": [stage(n, image) for n in names]}
    if graph is not None:
        body["graph"] = graph
    return InferencePipelineSpec.model_validate(body)


def status(**fields: Any) -> InferencePipelineStatus:
    return InferencePipelineStatus.model_validate(fields)


def graphs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "InferenceGraph"]


def single_revision_nodes(spec: InferencePipelineSpec, rev: str = "r1") -> dict[str, Any]:
    """The graph's nodes when ``rev`` alone serves: its own root node is the graph's root."""
    st = status(stableRevision=rev, traffic=[{"revision": rev, "weight": 100}])
    [graph] = graphs(plan(OWNER, {rev: spec}, st))
    nodes = dict(graph["spec"]["nodes"])
    effective = spec.effective_graph()
    assert all(node["routerType"] != "Splitter" for node in nodes.values())
    assert set(nodes) == {"root"} | {
        node_name(rev, n.name) for n in effective.nodes if n.name != effective.root
    }
    [root_node] = [n for n in effective.nodes if n.name == effective.root]
    assert nodes["root"]["routerType"] == str(root_node.type)
    assert [s["name"] for s in nodes["root"]["steps"]] == step_names(root_node.steps)
    return nodes


def revision_nodes(spec: InferencePipelineSpec, rev: str = "r1") -> dict[str, Any]:
    """``rev``'s per-revision nodes (``<rev>-<node>``) while it splits traffic with another."""
    st = status(
        stableRevision="r0",
        canaryRevision=rev,
        traffic=[{"revision": "r0", "weight": 50}, {"revision": rev, "weight": 50}],
    )
    [graph] = graphs(plan(OWNER, {"r0": spec, rev: spec}, st))
    return {k: v for k, v in graph["spec"]["nodes"].items() if k.startswith(f"{rev}-")}


def svc(stage_name: str, rev: str = "r1") -> str:
    return naming.service_name("demo", stage_name, rev)


def test_single_revision_has_no_splitter() -> None:
    nodes = single_revision_nodes(make_spec())
    assert list(nodes) == ["root"]
    assert nodes["root"]["routerType"] == "Sequence"
    assert nodes["root"] == revision_nodes(make_spec())["r1-root"]

    graph = {
        "root": "main",
        "nodes": [
            {"name": "main", "steps": [{"stage": "pre"}, {"node": "fan"}]},
            {"name": "fan", "type": "Ensemble", "steps": [{"stage": "a"}, {"stage": "b"}]},
        ],
    }
    nodes = single_revision_nodes(make_spec(graph))
    split = revision_nodes(make_spec(graph))
    assert {k: n["routerType"] for k, n in nodes.items()} == {
        "root": "Sequence",
        "r1-fan": "Ensemble",
    }
    assert "r1-main" not in nodes
    assert nodes == {"root": split["r1-main"], "r1-fan": split["r1-fan"]}


def test_default_graph_is_a_sequence_over_stages() -> None:
    nodes = single_revision_nodes(make_spec())
    assert nodes["root"] == {
        "routerType": "Sequence",
        "steps": [
            {"name": "pre", "serviceName": svc("pre"), "dependency": "Hard", "data": "$request"},
            {"name": "a", "serviceName": svc("a"), "dependency": "Hard", "data": "$response"},
            {"name": "b", "serviceName": svc("b"), "dependency": "Hard", "data": "$response"},
            {"name": "post", "serviceName": svc("post"), "dependency": "Hard", "data": "$response"},
        ],
    }
    assert list(nodes) == ["root"]


def test_ensemble_fan_out_fan_in() -> None:
    graph = {
        "root": "main",
        "nodes": [
            {"name": "main", "steps": [{"stage": "pre"}, {"node": "fan"}, {"stage": "post"}]},
            {
                "name": "fan",
                "type": "Ensemble",
                "steps": [{"stage": "a"}, {"stage": "b", "dependency": "Soft"}],
            },
        ],
    }
    nodes = revision_nodes(make_spec(graph))
    assert single_revision_nodes(make_spec(graph)) == {
        "root": nodes["r1-main"],
        "r1-fan": nodes["r1-fan"],
    }
    assert sorted(nodes) == ["r1-fan", "r1-main"]
    assert nodes["r1-main"]["steps"][1] == {
        "name": "fan",
        "nodeName": "r1-fan",
        "dependency": "Hard",
        "data": "$response",
    }
    assert nodes["r1-fan"] == {
        "routerType": "Ensemble",
        "steps": [
            {"name": "a", "serviceName": svc("a"), "dependency": "Hard"},
            {"name": "b", "serviceName": svc("b"), "dependency": "Soft"},
        ],
    }


def test_switch_cascade() -> None:
    graph = {
        "root": "root",
        "nodes": [
            {"name": "root", "steps": [{"stage": "a"}, {"node": "route", "data": "Request"}]},
            {
                "name": "route",
                "type": "Switch",
                "steps": [
                    {"stage": "b", "condition": "predictions.#(score<0.5)"},
                    {"stage": "post", "condition": "predictions"},
                ],
            },
        ],
    }
    nodes = revision_nodes(make_spec(graph))
    assert nodes["r1-root"]["steps"][1]["data"] == "$request"
    assert nodes["r1-route"] == {
        "routerType": "Switch",
        "steps": [
            {
                "name": "b",
                "serviceName": svc("b"),
                "dependency": "Hard",
                "condition": "predictions.#(score<0.5)",
            },
            {
                "name": "post",
                "serviceName": svc("post"),
                "dependency": "Hard",
                "condition": "predictions",
            },
        ],
    }


def test_a_conditional_sequence_step_keeps_its_condition() -> None:
    steps = [{"stage": "a"}, {"stage": "b", "condition": "predictions.#(confident==false)"}]
    nodes = revision_nodes(make_spec({"root": "root", "nodes": [{"name": "root", "steps": steps}]}))
    assert nodes["r1-root"]["steps"][1]["condition"] == "predictions.#(confident==false)"
    assert "condition" not in nodes["r1-root"]["steps"][0]


def test_sequence_data_override() -> None:
    graph = {
        "nodes": [
            {
                "name": "root",
                "steps": [{"stage": "a"}, {"stage": "b", "data": "Request"}, {"stage": "post"}],
            }
        ]
    }
    steps = single_revision_nodes(make_spec(graph))["root"]["steps"]
    assert [s["data"] for s in steps] == ["$request", "$request", "$response"]


def test_repeated_targets_get_unique_step_names() -> None:
    spec = make_spec(
        {
            "nodes": [
                {"name": "root", "steps": [{"stage": "a"}, {"stage": "a"}, {"node": "a"}]},
                {"name": "a", "steps": [{"stage": "b"}]},
            ]
        }
    )
    names = [s["name"] for s in single_revision_nodes(spec)["root"]["steps"]]
    assert names == ["a", "a-1", "a-2"]
    assert len(set(step_names(spec.effective_graph().nodes[0].steps))) == 3


def test_node_names_never_clash_with_root_and_fit() -> None:
    assert node_name("r1", "root") == "r1-root"
    long = node_name("abcdef12", "n" * 40)
    assert len(long) <= 63
    assert long != "root"


def test_splitter_over_two_revisions_keeps_requests_inside_one() -> None:
    graph = {
        "root": "main",
        "nodes": [
            {"name": "main", "steps": [{"stage": "pre"}, {"node": "fan"}]},
            {"name": "fan", "type": "Ensemble", "steps": [{"stage": "a"}, {"stage": "b"}]},
        ],
    }
    v1, v2 = make_spec(graph, "img:1"), make_spec(graph, "img:2")
    st = status(
        stableRevision="v1",
        canaryRevision="v2",
        strategy="Canary",
        traffic=[{"revision": "v1", "weight": 80}, {"revision": "v2", "weight": 20}],
    )
    [graph_obj] = graphs(plan(OWNER, {"v1": v1, "v2": v2}, st))
    nodes = graph_obj["spec"]["nodes"]
    assert nodes["root"]["steps"] == [
        {"name": "v1", "nodeName": "v1-main", "weight": 80},
        {"name": "v2", "nodeName": "v2-main", "weight": 20},
    ]
    for rev in ("v1", "v2"):
        for key in (f"{rev}-main", f"{rev}-fan"):
            for step in nodes[key]["steps"]:
                target = step.get("serviceName") or step["nodeName"]
                assert rev in target


def test_zero_weight_revision_is_deployed_but_not_routed() -> None:
    v1, v2 = make_spec(image="img:1"), make_spec(image="img:2")
    st = status(
        stableRevision="v1",
        canaryRevision="v2",
        strategy="Canary",
        traffic=[{"revision": "v1", "weight": 100}, {"revision": "v2", "weight": 0}],
    )
    objects = plan(OWNER, {"v1": v1, "v2": v2}, st)
    assert {
        o["metadata"]["labels"].get(naming.LABEL_REVISION)
        for o in objects
        if o["kind"] == "InferenceService"
    } == {"v1", "v2"}
    [graph_obj] = graphs(objects)
    nodes = graph_obj["spec"]["nodes"]
    assert list(nodes) == ["root"]
    assert [s["serviceName"] for s in nodes["root"]["steps"]] == [
        svc(n, "v1") for n in ("pre", "a", "b", "post")
    ]


def test_no_graph_without_traffic() -> None:
    st = status(stableRevision="v1")
    objects = plan(OWNER, {"v1": make_spec()}, st)
    assert graphs(objects) == []
    assert len(objects) == 4


@pytest.mark.parametrize(
    ("strategy", "phase", "expect_preview"),
    [
        ("BlueGreen", "Progressing", True),
        ("BlueGreen", "Aborted", False),
        ("Canary", "Progressing", False),
    ],
)
def test_preview_graph(strategy: str, phase: str, expect_preview: bool) -> None:
    v1, v2 = make_spec(image="img:1"), make_spec(image="img:2")
    st = status(
        stableRevision="v1",
        canaryRevision="v2",
        strategy=strategy,
        phase=phase,
        traffic=[{"revision": "v1", "weight": 100}],
    )
    found = graphs(plan(OWNER, {"v1": v1, "v2": v2}, st))
    assert found[0]["metadata"]["name"] == naming.graph_name("demo")
    main_root = found[0]["spec"]["nodes"]["root"]
    assert list(found[0]["spec"]["nodes"]) == ["root"]
    assert main_root["routerType"] == "Sequence"
    assert [s["serviceName"] for s in main_root["steps"]] == [
        svc(n, "v1") for n in ("pre", "a", "b", "post")
    ]
    assert len(found) == (2 if expect_preview else 1)
    if expect_preview:
        preview = found[1]
        assert preview["metadata"]["name"] == naming.graph_name("demo", preview=True)
        assert preview["metadata"]["labels"][naming.LABEL_ROLE] == "preview"
        assert found[0]["metadata"]["labels"][naming.LABEL_ROLE] == "active"
        nodes = preview["spec"]["nodes"]
        assert list(nodes) == ["root"]
        assert nodes["root"]["routerType"] == "Sequence"
        assert [s["serviceName"] for s in nodes["root"]["steps"]] == [
            svc(n, "v2") for n in ("pre", "a", "b", "post")
        ]


def test_graph_metadata_and_router_options() -> None:
    options = PlanOptions(
        deployment_mode="Standard",
        router_node_selector={"pool": "cpu"},
        router_tolerations=({"key": "dedicated", "operator": "Exists"},),
        router_resources={"requests": {"cpu": "100m"}},
        router_min_replicas=2,
        router_max_replicas=4,
        router_timeout_seconds=30,
    )
    st = status(stableRevision="v1", traffic=[{"revision": "v1", "weight": 100}])
    [graph_obj] = graphs(plan(OWNER, {"v1": make_spec()}, st, options))
    assert graph_obj["apiVersion"] == "serving.kserve.io/v1alpha1"
    meta = graph_obj["metadata"]
    assert meta["name"] == "demo"
    assert meta["annotations"] == {
        "serving.kserve.io/deploymentMode": "Standard",
        "pipelines.inference.dev/traffic": "v1=100",
    }
    assert meta["labels"][naming.LABEL_PIPELINE] == "demo"
    assert naming.LABEL_REVISION not in meta["labels"]
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    body = graph_obj["spec"]
    assert body["nodeSelector"] == {"pool": "cpu"}
    assert body["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert body["resources"] == {"requests": {"cpu": "100m"}}
    assert (body["minReplicas"], body["maxReplicas"], body["timeout"]) == (2, 4, 30)


def test_router_defaults_leave_router_fields_out() -> None:
    st = status(stableRevision="v1", traffic=[{"revision": "v1", "weight": 100}])
    [graph_obj] = graphs(plan(OWNER, {"v1": make_spec()}, st))
    assert set(graph_obj["spec"]) == {"nodes"}
