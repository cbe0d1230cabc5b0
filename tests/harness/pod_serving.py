"""Requests through Kubernetes: a pipeline's InferenceGraph Service, KServe's router pod and
the stage pods, started by the real nodes' kubelets from the kit's images.

The local cluster's models live where its ``models`` claims point (a hostPath volume per
namespace, see :meth:`Cluster.provide_claim`): :func:`install_models` puts the built models
there, at the paths the ``pvc://models/...`` storage URIs name, and KServe mounts them into
the pods at ``/mnt/models``. The machine reaches Service addresses through kube-proxy, as a
pod would.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.harness.cluster import Cluster, claim_path

# What a stage's pods request on a 2-core machine whose real nodes each report it whole: the
# examples ask for production sizes (4 CPUs, 16 GiB), which no node of this machine holds.
# The real nodes do not enforce CPU limits (cpuCFSQuota off), so small requests only pack the
# pods; memory stays a real limit.
MACHINE_FIT = {"cpu": "100m", "memory": "2Gi"}


def install_models(namespace: str, models: Mapping[str, Path], claim: str = "models") -> None:
    """Copy each ``pvc://<claim>/<path>`` model into the namespace's claim volume."""
    root = claim_path(namespace, claim)
    prefix = f"pvc://{claim}/"
    for uri, source in models.items():
        if not uri.startswith(prefix):
            continue
        target = root / uri.removeprefix(prefix)
        if target.exists():
            continue
        shutil.copytree(source, target, symlinks=False)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def fit_to_machine(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline with its stages' CPU and memory requests sized for this machine, and its
    GPU predictors told to serve on the CPU (the real nodes' GPUs are advertised, not there; a
    kit predictor given GPUs refuses to start without them); GPU requests, placement, images,
    models and rollout stay as written."""
    out = copy.deepcopy(dict(pipeline))
    for stage in out["spec"]["stages"]:
        resources = stage.setdefault("resources", {})
        resources.update(MACHINE_FIT)
        container = stage["predictor"].get("container")
        if resources.get("gpus") and container is not None:
            container["args"] = [*container.get("args", []), "--device=cpu"]
        if "transformer" in stage:
            stage["transformer"].update(MACHINE_FIT)
    return out


def graph_url(cluster: Cluster, namespace: str, graph: str) -> str:
    """The InferenceGraph's Service, by its cluster address (what a client pod would call)."""
    address = cluster.kubectl(
        "get", "service", graph, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
    ).stdout.strip()
    return f"http://{address}"
