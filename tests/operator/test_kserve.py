"""What KServe's real controller and webhooks change for the operator, on the local cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pipelines as p
from tests.cli.test_plugin import plugin
from tests.harness import Cluster
from tests.harness.operator_process import OperatorProcess
from tests.support import kubectl_json, wait_for

pytestmark = pytest.mark.cluster


def gpu_only(name: str, namespace: str, model: str = "bert-v1", **rollout: object) -> dict:
    """The classifier with both stages on the GPU pool: nothing of it needs a CPU node."""
    pipeline = p.classifier(name, namespace, model=model, **rollout)
    for stage in pipeline["spec"]["stages"]:
        stage["nodePool"] = "gpu-h100"
    return pipeline


@pytest.fixture
def cpu_nodes_cordoned(cluster: Cluster) -> Iterator[list[str]]:
    """A context in which new pods cannot land on the CPU pool (restored afterwards)."""
    nodes = [
        n["metadata"]["name"]
        for n in kubectl_json(cluster, "get", "nodes", "-l", "pipelines.inference.dev/pool=cpu")[
            "items"
        ]
    ]
    yield nodes
    for node in nodes:
        cluster.kubectl("uncordon", node, check=False)


@pytest.mark.local_only
def test_a_pause_waits_until_kserve_has_rolled_the_router_out(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    cpu_nodes_cordoned: list[str],
) -> None:
    steps = [{"setWeight": 10}, {"pause": {}}]
    p.apply(cluster, gpu_only("clf", namespace, canary={"steps": steps}))
    p.wait_status(cluster, namespace, "clf", "first revision Healthy", phase="Healthy")
    # The router runs on the CPU pool; from now on its new pods cannot be scheduled there.
    for node in cpu_nodes_cordoned:
        cluster.kubectl("cordon", node)

    p.apply(cluster, gpu_only("clf", namespace, model="bert-v2", canary={"steps": steps}))
    st = wait_for(
        lambda: (
            (s := p.status(cluster, namespace, "clf")).get("canaryWeight") == 10
            and not (s.get("routers") or [{}])[0].get("rolledOut", True)
            and s
        ),
        60,
        "the canary at 10% with the router still rolling out",
    )
    assert st["phase"] == "Progressing"
    assert "waiting for the router to serve 10%" in st["message"]
    assert "pausedAt" not in st
    shown = plugin("status", "clf", "-n", namespace, kubeconfig=cluster.kubeconfig).stdout
    assert "RollingOut" in shown

    for node in cpu_nodes_cordoned:
        cluster.kubectl("uncordon", node)
    st = p.wait_status(cluster, namespace, "clf", "the pause to begin", phase="Paused")
    assert st["pausedAt"]
    assert st["routers"][0]["rolledOut"] is True


def test_a_child_kserve_refuses_is_reported_in_status_and_an_event(
    cluster: Cluster, namespace: str, operator: OperatorProcess, operator_identity: Path
) -> None:
    p.apply(cluster, p.classifier("clf", namespace))
    p.wait_status(cluster, namespace, "clf", "first revision Healthy", phase="Healthy")
    # KServe refuses to move an InferenceService between deployment modes: an operator
    # reconfigured for Knative meets its validating webhook on every child it writes.
    operator.stop()
    knative = OperatorProcess(
        cluster,
        namespace,
        operator.log_path.with_name("operator-knative.log"),
        kubeconfig=operator_identity,
        extra_args=["--deployment-mode", "Serverless"],
    )
    knative.start()
    try:
        st = p.wait_status(cluster, namespace, "clf", "the refusal reported", phase="Degraded")
    finally:
        knative.stop()
    assert st["applyErrors"], st
    assert all("deploymentMode cannot be changed" in e["message"] for e in st["applyErrors"])
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert "ApplyFailed" in p.events(cluster, namespace, "clf")
    # What serves is untouched: the children keep their Standard-mode spec.
    for isvc in p.children(cluster, namespace, "inferenceservices"):
        mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
        assert mode == "Standard"
