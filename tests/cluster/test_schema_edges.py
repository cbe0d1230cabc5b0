"""The CRD on the real apiserver: optional fields may be left out, quantities are real ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from pipeline_operator.api import v1alpha1 as api
from tests.harness import Cluster
from tests.unit.admission import EXAMPLES, MINIMAL, stripped

pytestmark = pytest.mark.cluster


def pipeline(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def dry_run(cluster: Cluster, *objects: dict[str, Any]) -> list[dict[str, Any]]:
    """Server-side dry-run apply; the objects as the apiserver would store them."""
    listed = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(listed), check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    return list(out["items"]) if out["kind"] == "List" else [out]


def test_the_minimal_pipeline_and_the_examples_less_any_optional_block_are_admitted(
    cluster: Cluster, namespace: str
) -> None:
    objects = [pipeline("minimal", namespace, MINIMAL)]
    for example in EXAMPLES:
        spec = yaml.safe_load(example.read_text())["spec"]
        variants = [spec, *(variant for _, variant in stripped(spec))]
        prefix = example.parent.name
        objects += [pipeline(f"{prefix}-{i}", namespace, v) for i, v in enumerate(variants)]
    assert len(dry_run(cluster, *objects)) == len(objects)


def test_an_empty_canary_gets_the_default_steps(cluster: Cluster, namespace: str) -> None:
    spec = {**MINIMAL, "rollout": {"canary": {}}}
    (stored,) = dry_run(cluster, pipeline("canary", namespace, spec))
    assert stored["spec"]["rollout"]["canary"]["steps"] == [{"setWeight": 20}, {"pause": {}}]


@pytest.mark.parametrize("quantity", ["1.2.3", "..", "1iii", "1Mi5", "-1"])
def test_a_malformed_or_negative_quantity_is_refused(
    cluster: Cluster, namespace: str, quantity: str
) -> None:
    stage = {**MINIMAL["stages"][0], "resources": {"cpu": quantity, "memory": quantity}}
    body = pipeline("quantity", namespace, {"nodePools": [{"name": "cpu"}], "stages": [stage]})
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(body), check=False
    )
    assert result.returncode != 0
    assert "spec.stages[0].resources.cpu" in result.stderr
    assert "spec.stages[0].resources.memory" in result.stderr


def test_pipelines_are_not_in_the_all_category(cluster: Cluster, namespace: str) -> None:
    """`kubectl delete all --all` must not reach pipelines (nor, through garbage collection,
    the InferenceServices they own); their own category lists them."""
    body = pipeline("kept", namespace, MINIMAL)
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body))
    listed = cluster.kubectl("get", "all", "-n", namespace, "-o", "name").stdout
    assert "inferencepipeline" not in listed
    own = cluster.kubectl("get", "kserve-pipelines", "-n", namespace, "-o", "name").stdout
    assert own.split() == ["inferencepipeline.pipelines.inference.dev/kept"]


def test_a_job_metric_keeps_its_pod_template_and_needs_no_success_condition(
    cluster: Cluster, namespace: str
) -> None:
    container = {
        "name": "evaluate",
        "image": "evaluation:1",
        "volumeMounts": [{"name": "set", "mountPath": "/data"}],
    }
    volumes = [{"name": "set", "configMap": {"name": "labelled"}}]
    job = {"template": {"spec": {"containers": [container], "volumes": volumes}}}
    metric = {"name": "accuracy", "job": job}

    def body(name: str, metric: dict[str, Any]) -> dict[str, Any]:
        steps = [{"setWeight": 50}, {"analysis": {"metrics": [metric]}}]
        return pipeline(name, namespace, {**MINIMAL, "rollout": {"canary": {"steps": steps}}})

    (stored,) = dry_run(cluster, body("job", metric))
    kept = stored["spec"]["rollout"]["canary"]["steps"][1]["analysis"]["metrics"][0]["job"]
    assert kept["template"] == job["template"]  # unknown to the schema, kept whole
    assert (kept["backoffLimit"], kept["activeDeadline"]) == (0, "10m")
    refused = body("judged", {**metric, "successCondition": "result == 1"})
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(refused), check=False
    )
    assert result.returncode != 0
    assert "spec.rollout.canary.steps[1].analysis.metrics[0]" in result.stderr
    assert "a job metric's Job decides" in result.stderr
