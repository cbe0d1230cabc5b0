"""Every numbered example applies cleanly and becomes Healthy under the operator."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.localcluster import Cluster
from pipeline_operator.localcluster.operator_process import OperatorProcess
from pipeline_operator.validation import validate
from tests import pipelines as p
from tests.support import wait_for

EXAMPLES = sorted((Path(__file__).parents[2] / "manifests" / "examples").glob("*/pipeline.yaml"))


def test_there_are_examples_for_each_composition() -> None:
    assert [e.parent.name for e in EXAMPLES] == [
        "01-text-classifier",
        "02-ensemble",
        "03-cascade",
        "04-retrieval",
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


def example(name: str, namespace: str) -> dict:
    path = next(e for e in EXAMPLES if e.parent.name == name)
    body = yaml.safe_load(path.read_text())
    body["metadata"]["namespace"] = namespace
    return dict(body)


def new_model(body: dict, stage: int = 0) -> dict:
    """The same pipeline with the stage's model moved to a new version directory."""
    model = body["spec"]["stages"][stage]["predictor"]["model"]
    model["storageUri"] += "-next"
    return body


@pytest.mark.cluster
def test_canary_rollout_of_the_text_classifier_completes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    body = example("01-text-classifier", namespace)
    body["spec"]["rollout"]["canary"]["steps"][1] = {"pause": {"duration": "2s"}}
    p.apply(cluster, body)
    stable = p.wait_status(cluster, namespace, "text-classifier", "v1 Healthy", phase="Healthy")
    p.apply(cluster, new_model(body))
    st = p.wait_status(
        cluster, namespace, "text-classifier", "the canary at 50%", phase="Paused", canaryWeight=50
    )
    assert p.traffic(cluster, namespace, "text-classifier") == {
        stable["stableRevision"]: 50,
        st["canaryRevision"]: 50,
    }
    p.command(cluster, namespace, "text-classifier", "promote", "1")
    done = p.wait_status(
        cluster,
        namespace,
        "text-classifier",
        "the canary promoted",
        phase="Healthy",
        stableRevision=st["canaryRevision"],
    )
    assert done["ready"] == "1/1"


@pytest.mark.cluster
def test_blue_green_rollout_of_the_cascade_completes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    body = example("03-cascade", namespace)
    body["spec"]["rollout"]["blueGreen"] = {"autoPromotionSeconds": 1, "scaleDownDelaySeconds": 1}
    p.apply(cluster, body)
    blue = p.wait_status(cluster, namespace, "cascade", "blue Healthy", phase="Healthy")
    p.apply(cluster, new_model(body, stage=1))
    green = wait_for(
        lambda: (
            (s := p.status(cluster, namespace, "cascade")).get("stableRevision")
            != blue["stableRevision"]
            and s.get("phase") == "Healthy"
            and not s.get("previousRevision")
            and s
        ),
        90,
        "green promoted automatically and blue scaled down",
    )
    assert green["ready"] == "2/2"
    revisions = {
        s["metadata"]["labels"]["pipelines.inference.dev/revision"]
        for s in p.children(cluster, namespace, "inferenceservices")
    }
    wait_for(
        lambda: (
            {
                s["metadata"]["labels"]["pipelines.inference.dev/revision"]
                for s in p.children(cluster, namespace, "inferenceservices")
            }
            == {green["stableRevision"]}
        ),
        60,
        f"only green's services left (had {revisions})",
    )
