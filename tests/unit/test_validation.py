"""validate() errors and lint() warnings: each message names the field path."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, Rollout
from pipeline_operator.api.validation import lint, validate

MODEL = {"model": {"modelFormat": {"name": "huggingface"}, "storageUri": "pvc://m/x"}}


def stage(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "predictor": MODEL, **extra}


def spec(
    graph: dict[str, Any] | None = None,
    stages: list[dict[str, Any]] | None = None,
    pools: list[dict[str, Any]] | None = None,
) -> InferencePipelineSpec:
    body: dict[str, Any] = {"stages": stages or [stage("pre"), stage("ensemble-a"), stage("b")]}
    if graph is not None:
        body["graph"] = graph
    if pools is not None:
        body["nodePools"] = pools
    return InferencePipelineSpec.model_validate(body)


def test_default_graph_is_valid() -> None:
    assert validate(spec()) == []
    assert lint(spec()) == []


def test_valid_ensemble_graph() -> None:
    graph = {
        "root": "root",
        "nodes": [
            {"name": "root", "steps": [{"stage": "pre"}, {"node": "fan"}]},
            {"name": "fan", "type": "Ensemble", "steps": [{"stage": "ensemble-a"}, {"stage": "b"}]},
        ],
    }
    assert validate(spec(graph)) == []
    assert lint(spec(graph)) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        pytest.param(
            {
                "root": "root",
                "nodes": [
                    {"name": "root", "steps": [{"stage": "pre"}, {"node": "ensemble"}]},
                    {
                        "name": "ensemble",
                        "type": "Ensemble",
                        "steps": [{"stage": "b"}, {"node": "root"}],
                    },
                ],
            },
            ["spec.graph.nodes[1] (ensemble): cycle root -> ensemble -> root"],
            id="cycle-through-root",
        ),
        pytest.param(
            {
                "root": "root",
                "nodes": [
                    {"name": "root", "steps": [{"node": "x"}]},
                    {"name": "x", "steps": [{"node": "y"}]},
                    {"name": "y", "steps": [{"node": "x"}, {"stage": "b"}]},
                ],
            },
            ["spec.graph.nodes[2] (y): cycle x -> y -> x"],
            id="cycle-below-root",
        ),
        pytest.param(
            {
                "root": "root",
                "nodes": [
                    {"name": "root", "steps": [{"stage": "pre"}, {"node": "missing"}]},
                ],
            },
            ["spec.graph.nodes[0] (root).steps[1]: node missing is not a node of spec.graph.nodes"],
            id="unknown-node",
        ),
        pytest.param(
            {"root": "root", "nodes": [{"name": "root", "steps": [{"stage": "nope"}]}]},
            ["spec.graph.nodes[0] (root).steps[0]: stage nope is not a stage of spec.stages"],
            id="unknown-stage",
        ),
        pytest.param(
            {"root": "start", "nodes": [{"name": "root", "steps": [{"stage": "pre"}]}]},
            ["spec.graph.root: start is not a node of spec.graph.nodes"],
            id="unknown-root",
        ),
        pytest.param(
            {
                "root": "root",
                "nodes": [
                    {"name": "root", "steps": [{"stage": "pre"}]},
                    {"name": "orphan", "steps": [{"stage": "b"}]},
                ],
            },
            ["spec.graph.nodes[1] (orphan): not reachable from root node root"],
            id="unreachable-node",
        ),
        pytest.param(
            {
                "root": "root",
                "nodes": [
                    {"name": "root", "steps": [{"stage": "pre"}]},
                    {"name": "root", "steps": [{"stage": "b"}]},
                ],
            },
            ["spec.graph.nodes[1] (root): node name root is used more than once"],
            id="duplicate-node",
        ),
    ],
)
def test_graph_errors(graph: dict[str, Any], expected: list[str]) -> None:
    assert validate(spec(graph)) == expected


def test_switch_condition_rules() -> None:
    graph = {
        "root": "root",
        "nodes": [
            {
                "name": "root",
                "type": "Switch",
                "steps": [{"stage": "pre", "condition": "a"}, {"stage": "b", "condition": "b"}],
            }
        ],
    }
    body = spec(graph)
    assert validate(body) == []
    body.graph.nodes[0].steps[1].condition = None  # type: ignore[union-attr]
    body.graph.nodes[0].steps[0].stage = None  # type: ignore[union-attr]
    assert validate(body) == [
        "spec.graph.nodes[0] (root).steps[0]: set exactly one of stage or node",
        "spec.graph.nodes[0] (root).steps[1]: a Switch step needs a condition",
    ]


def test_a_sequence_step_after_the_first_may_carry_a_condition() -> None:
    steps = [{"stage": "pre"}, {"stage": "b", "condition": "predictions.#(confident==false)"}]
    graph = {"root": "main", "nodes": [{"name": "main", "type": "Sequence", "steps": steps}]}
    assert validate(spec(graph)) == []
    first = [{"stage": "pre", "condition": "a"}, {"stage": "b"}]
    graph = {"root": "main", "nodes": [{"name": "main", "type": "Sequence", "steps": first}]}
    ensemble = [{"stage": "pre"}, {"stage": "b", "condition": "a"}]
    graph["nodes"].append({"name": "fan", "type": "Ensemble", "steps": ensemble})
    graph["nodes"][0]["steps"].append({"node": "fan"})
    allowed = "condition is allowed on Switch steps and on Sequence steps after the first"
    assert validate(spec(graph)) == [
        f"spec.graph.nodes[0] (main).steps[0]: {allowed}",
        f"spec.graph.nodes[1] (fan).steps[1]: {allowed}",
    ]


def test_gpu_fit() -> None:
    pools = [{"name": "gpu-l4", "gpusPerNode": 4}, {"name": "gpu-h100"}]
    stages = [
        stage("tok"),
        stage("emb", nodePool="gpu-l4", resources={"gpus": 4}),
        stage("llm", nodePool="gpu-l4", resources={"gpus": 8}),
        stage("big", nodePool="gpu-h100", resources={"gpus": 16}),
    ]
    assert validate(spec(stages=stages, pools=pools)) == [
        "spec.stages[2] (llm): asks for 8 GPUs per replica but nodePool gpu-l4 has gpusPerNode 4",
    ]


def test_unknown_pool_and_duplicate_env() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    stages = [stage("tok", nodePool="cpu", transformer={"image": "t:1", "env": env})]
    assert validate(spec(stages=stages)) == [
        "spec.stages[0] (tok): nodePool cpu is not in spec.nodePools",
        "spec.stages[0] (tok).transformer.env: A is set more than once",
    ]


def test_lint_unused_stage_and_nested_ensemble() -> None:
    graph = {
        "root": "root",
        "nodes": [
            {"name": "root", "steps": [{"stage": "pre"}, {"node": "outer", "data": "Response"}]},
            {"name": "outer", "type": "Ensemble", "steps": [{"node": "inner"}, {"stage": "pre"}]},
            {
                "name": "inner",
                "type": "Ensemble",
                "steps": [{"stage": "ensemble-a", "data": "Request"}],
            },
        ],
    }
    warnings = lint(spec(graph))
    assert warnings[0].startswith("spec.stages[2] (b): used by no step reachable")
    assert warnings[1].startswith(
        "spec.graph.nodes[1] (outer).steps[0]: Ensemble inner nested directly in Ensemble outer"
    )
    assert warnings[2] == (
        "spec.graph.nodes[2] (inner).steps[0]: data is ignored outside Sequence nodes"
    )
    assert len(warnings) == 3
    assert validate(spec(graph)) == []


def test_lint_raw_mode_scaling() -> None:
    stages = [
        stage("a", scaling={"minReplicas": 1, "maxReplicas": 3, "metric": "concurrency"}),
        stage("b", scaling={"minReplicas": 0, "maxReplicas": 2, "metric": "cpu"}),
        stage("c", scaling={"minReplicas": 2, "maxReplicas": 2}),
    ]
    body = spec(stages=stages)
    assert lint(body) == []
    assert lint(body, deployment_mode="RawDeployment") == [
        "spec.stages[0] (a).scaling.metric: concurrency needs Knative; in RawDeployment mode "
        "KServe's HPA scales on cpu or memory only",
        "spec.stages[1] (b).scaling.minReplicas: scale to zero needs Knative; in RawDeployment "
        "mode the stage keeps at least one replica",
    ]


def test_lint_gpu_stage_without_pool() -> None:
    assert lint(spec(stages=[stage("llm", resources={"gpus": 1})])) == [
        "spec.stages[0] (llm): asks for GPUs but names no nodePool; it gets no GPU node "
        "tolerations",
    ]


def test_switch_conditions_must_be_gjson_paths() -> None:
    graph = {
        "root": "root",
        "nodes": [
            {
                "name": "root",
                "type": "Switch",
                "steps": [
                    {"stage": "pre", "condition": "predictions.#(confident==false)"},
                    {"stage": "b", "condition": "confident == false"},
                ],
            }
        ],
    }
    assert validate(spec(graph)) == [
        "spec.graph.nodes[0] (root).steps[1].condition: not a GJSON path: '=' in a key must be "
        "escaped as '\\=' (to compare values, query an array: '#(key==value)') at column 11",
    ]


def analysed(condition: str) -> InferencePipelineSpec:
    metric = {"name": "errors", "query": "q", "successCondition": condition}
    steps = [{"setWeight": 10}, {"pause": {}}, {"analysis": {"metrics": [metric]}}]
    body = spec()
    return body.model_copy(update={"rollout": Rollout.model_validate({"canary": {"steps": steps}})})


def test_success_conditions_compile() -> None:
    assert validate(analysed("result < 0.01")) == []
    body = analysed("result < 0.01")
    body.rollout.canary.steps[2].analysis.metrics[0].success_condition = "result >>= 1"  # type: ignore[union-attr]
    assert validate(body) == [
        "spec.rollout.canary.steps[2].analysis.metrics[0].successCondition: 'result >>= 1' is "
        "not a CEL expression: syntax error at column 9",
    ]


@pytest.mark.parametrize("condition", ["result >>= 1", "result.__class__", "result > 0 and 1"])
def test_the_model_refuses_a_success_condition_naming_the_field(condition: str) -> None:
    with pytest.raises(ValidationError) as raised:
        analysed(condition)
    (error,) = raised.value.errors()
    assert error["loc"] == ("canary", "steps", 2, "analysis", "metrics", 0, "successCondition")
    assert repr(condition) in error["msg"]


@pytest.mark.parametrize("name", ["INFERENCE_PIPELINE_REVISION", "INFERENCE_PIPELINE_GPUS"])
def test_env_names_the_operator_sets_are_reserved(name: str) -> None:
    env = [{"name": name, "value": "x"}, {"name": "A", "value": "1"}]
    body = spec(stages=[stage("tok", predictor={"container": {"image": "t:1", "env": env}})])
    assert validate(body) == [
        f"spec.stages[0] (tok).predictor.container.env: {name} is set by the operator"
    ]
