"""Building and observing InferencePipelines in tests."""

from __future__ import annotations

import copy
import json
from typing import Any

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND, PLURAL

__all__ = ["PLURAL"]
from tests.harness import Cluster
from tests.harness.topology import FAKE_TOLERATION
from tests.support import kubectl_json, wait_for

# The control-plane scenarios' pools are kwok's fake nodes (type=kwok, tolerating kwok's
# taint): their stages run images that exist nowhere, and many GPUs. The real nodes, which
# run containers, serve the examples (tests/e2e).
GPU_POOL = {
    "name": "gpu-h100",
    "nodeSelector": {"pipelines.inference.dev/pool": "gpu-h100", "type": "kwok"},
    "tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
        FAKE_TOLERATION,
    ],
    "gpusPerNode": 8,
}
CPU_POOL = {
    "name": "cpu",
    "nodeSelector": {"pipelines.inference.dev/pool": "cpu", "type": "kwok"},
    "tolerations": [FAKE_TOLERATION],
}


def classifier(
    name: str, namespace: str, model: str = "bert-v1", claim: str = "models", **rollout: Any
) -> dict[str, Any]:
    """A tokenizer -> classifier pipeline on the GPU pool; the model is on ``claim``."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodePools": [copy.deepcopy(GPU_POOL), copy.deepcopy(CPU_POOL)],
            "stages": [
                {
                    "name": "tokenize",
                    "predictor": {"container": {"image": "example/tokenizer:1"}},
                    "nodePool": "cpu",
                },
                {
                    "name": "classify",
                    "predictor": {
                        "model": {
                            "modelFormat": {"name": "huggingface"},
                            "storageUri": f"pvc://{claim}/{model}",
                        }
                    },
                    "resources": {"gpus": 1, "cpu": "4", "memory": "16Gi"},
                    "nodePool": "gpu-h100",
                },
            ],
            "rollout": rollout or {"strategy": "Canary"},
        },
    }


def apply(cluster: Cluster, obj: dict[str, Any]) -> None:
    cluster.kubectl(
        "apply", "--server-side", "--field-manager", "tests", "-f", "-", stdin=json.dumps(obj)
    )


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(kubectl_json(cluster, "get", PLURAL, name, "-n", namespace))


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(get(cluster, namespace, name).get("status") or {})


def wait_status(
    cluster: Cluster, namespace: str, name: str, what: str, timeout: float = 60, **expected: Any
) -> dict[str, Any]:
    """Wait until every ``expected`` status field has the given value."""

    def probe() -> dict[str, Any] | None:
        current = status(cluster, namespace, name)
        return current if all(current.get(k) == v for k, v in expected.items()) else None

    return wait_for(probe, timeout, f"{what} ({expected})", interval=0.3)


def children(cluster: Cluster, namespace: str, kind: str) -> list[dict[str, Any]]:
    return list(kubectl_json(cluster, "get", kind, "-n", namespace)["items"])


def traffic(cluster: Cluster, namespace: str, graph: str) -> dict[str, int]:
    """Weights by revision as the live InferenceGraph routes them.

    A root Splitter routes to ``<revision>-<node>`` sub-graphs; without one, a single revision
    serves everything and its steps name its own services (``<pipeline>-<stage>-<revision>``).
    """
    obj = kubectl_json(cluster, "get", "inferencegraph", graph, "-n", namespace)
    root = obj["spec"]["nodes"]["root"]
    if root["routerType"] == "Splitter":
        return {s["nodeName"].split("-")[0]: s.get("weight", 0) for s in root["steps"]}
    step = root["steps"][0]
    if "nodeName" in step:
        return {step["nodeName"].split("-")[0]: 100}
    return {step["serviceName"].rsplit("-", 1)[1]: 100}


def events(cluster: Cluster, namespace: str, name: str) -> list[str]:
    listed = kubectl_json(
        cluster, "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )
    ordered = sorted(listed["items"], key=lambda e: e["metadata"]["creationTimestamp"])
    return [e["reason"] for e in ordered]


def command(cluster: Cluster, namespace: str, name: str, verb: str, command_id: str) -> None:
    cluster.kubectl(
        "annotate",
        PLURAL,
        name,
        "-n",
        namespace,
        "--overwrite",
        f"pipelines.inference.dev/command={verb}:{command_id}",
    )
