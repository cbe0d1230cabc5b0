"""The CRD's CEL rules, evaluated offline after defaulting: optional fields may be left out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.api.validation import validate
from tests.unit.admission import EXAMPLES, MINIMAL, admit, defaulted, stripped


def test_the_minimal_pipeline_passes_every_rule() -> None:
    assert admit(MINIMAL) == []


def test_an_empty_canary_gets_the_model_default_steps() -> None:
    spec = {**MINIMAL, "rollout": {"canary": {}}}
    assert admit(spec) == []
    model = InferencePipelineSpec.model_validate(spec).rollout.canary
    assert model is not None
    expected = [s.model_dump(by_alias=True, exclude_none=True) for s in model.steps]
    assert defaulted(spec)["rollout"]["canary"]["steps"] == expected


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.parent.name)
def test_an_example_less_any_optional_block_passes_every_rule(example: Path) -> None:
    spec = yaml.safe_load(example.read_text())["spec"]
    variants = dict(stripped(spec))
    assert len(variants) > 10
    refused = {label: admit(variant) for label, variant in variants.items()}
    assert {label: failures for label, failures in refused.items() if failures} == {}
    for variant in variants.values():
        assert validate(InferencePipelineSpec.model_validate(variant)) == []


def test_a_stage_naming_a_pool_without_any_pools_gets_the_rule_message() -> None:
    stage = {**MINIMAL["stages"][0], "nodePool": "gpu"}
    assert admit({"stages": [stage]}) == [
        "spec: every stages[].nodePool must name an entry of spec.nodePools"
    ]


def test_the_rules_still_refuse_what_they_are_for() -> None:
    pools = [{"name": "gpu"}, {"name": "gpu"}]
    steps = [{"setWeight": 50}, {"setWeight": 20}]
    spec = {**MINIMAL, "nodePools": pools, "rollout": {"canary": {"steps": steps}}}
    assert admit(spec) == [
        "spec: nodePool names must be unique",
        "spec.rollout.canary: setWeight steps must not decrease",
    ]


def test_a_condition_is_admitted_on_later_sequence_steps_only() -> None:
    stages = [{**MINIMAL["stages"][0], "name": n} for n in ("small", "large")]

    def graph(*steps: dict) -> dict:
        node = {"name": "main", "type": "Sequence", "steps": list(steps)}
        return {**MINIMAL, "stages": stages, "graph": {"root": "main", "nodes": [node]}}

    escalate = {"stage": "large", "condition": "predictions.#(confident==false)"}
    assert admit(graph({"stage": "small"}, escalate)) == []
    assert admit(graph({**escalate, "stage": "small"}, {"stage": "large"})) == [
        "spec.graph.nodes[0]: condition is required on every step of a Switch node, allowed "
        "on the steps of a Sequence after the first, and nowhere else"
    ]


def test_root_is_refused_unless_run_as_non_root_is_turned_off() -> None:
    def spec(security: dict) -> dict:
        container = {"image": "m:1", "securityContext": security}
        return {"stages": [{"name": "m", "predictor": {"container": container}}]}

    [refusal] = admit(spec({"runAsUser": 0}))
    assert refusal.endswith("runAsUser 0 is root: set runAsNonRoot to false to run as root")
    assert admit(spec({"runAsUser": 0, "runAsNonRoot": False})) == []
    assert admit(spec({"runAsUser": 1000})) == []


def test_a_job_metric_is_admitted_without_a_success_condition_and_refused_with_one() -> None:
    template = {"spec": {"containers": [{"name": "e", "image": "e:1", "volumeMounts": []}]}}
    job = {"name": "accuracy", "job": {"template": template}}

    def spec(*metrics: dict) -> dict:
        steps = [{"setWeight": 50}, {"analysis": {"metrics": list(metrics)}}]
        return {**MINIMAL, "rollout": {"canary": {"steps": steps}}}

    assert admit(spec(job)) == []
    where = "spec.rollout.canary.steps[1].analysis.metrics[0]"
    decides = (
        f"{where}: query and web metrics need a successCondition; a job metric's Job decides, "
        "without one"
    )
    assert admit(spec({**job, "successCondition": "result == 1"})) == [decides]
    assert admit(spec({"name": "errors", "query": "up"})) == [decides]
    assert admit(spec({**job, "query": "up"})) == [
        f"{where}: set exactly one of query (Prometheus), web or job"
    ]
