"""Every numbered example applies cleanly and becomes Healthy under the operator."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.localcluster import Cluster
from pipeline_operator.localcluster.kserve_sim import KServeSimulator
from pipeline_operator.localcluster.operator_process import OperatorProcess
from pipeline_operator.validation import validate
from tests import pipelines as p

EXAMPLES = sorted((Path(__file__).parents[2] / "manifests" / "examples").glob("*/pipeline.yaml"))


def test_there_are_examples_for_each_composition() -> None:
    assert [e.parent.name for e in EXAMPLES] == [
        "01-text-classifier",
        "02-ensemble",
        "03-cascade",
        "04-rag",
    ]
    for example in EXAMPLES:
        assert (example.parent / "README.md").exists()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.parent.name)
def test_example_is_valid(example: Path) -> None:
    spec = InferencePipelineSpec.model_validate(yaml.safe_load(example.read_text())["spec"])
    assert validate(spec) == []


@pytest.mark.cluster
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.parent.name)
def test_example_becomes_healthy_on_the_cluster(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kserve: KServeSimulator,
    example: Path,
) -> None:
    body = yaml.safe_load(example.read_text())
    body["metadata"]["namespace"] = namespace
    p.apply(cluster, body)
    name = body["metadata"]["name"]
    st = p.wait_status(cluster, namespace, name, f"{name} Healthy", phase="Healthy")
    stages = len(body["spec"]["stages"])
    assert st["ready"] == f"{stages}/{stages}"
    assert len(p.children(cluster, namespace, "inferenceservices")) == stages
