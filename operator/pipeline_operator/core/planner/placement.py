"""Where pods run and what they request: node pools, tolerations, GPU limits."""

from __future__ import annotations

import copy
from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, NodePool, Resources, Stage


def is_gpu_pool(spec: InferencePipelineSpec, pool: NodePool) -> bool:
    """A pool is a GPU pool when it declares GPUs per node or a GPU stage is placed on it."""
    if pool.gpus_per_node:
        return True
    return any(s.node_pool == pool.name and s.resources.gpus > 0 for s in spec.stages)


def build_tolerations(pool: NodePool) -> list[dict[str, Any]]:
    """The pool's tolerations as core/v1 Toleration dicts (camelCase, unset fields left out)."""
    return [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in pool.tolerations]


def build_pool_placement(pool: NodePool | None) -> dict[str, Any]:
    """nodeSelector, tolerations and affinity that put a component on ``pool``."""
    if pool is None:
        return {}
    out: dict[str, Any] = {}
    if pool.node_selector:
        out["nodeSelector"] = dict(sorted(pool.node_selector.items()))
    tolerations = build_tolerations(pool)
    if tolerations:
        out["tolerations"] = tolerations
    if pool.affinity:
        out["affinity"] = copy.deepcopy(pool.affinity)
    return out


def build_avoid_pool_placement(pool: NodePool) -> dict[str, Any]:
    """A required node affinity that keeps a component off ``pool``'s nodes.

    A node is in the pool when it carries every nodeSelector label; the terms (ORed) accept a
    node missing any one of them. Without a nodeSelector the pool cannot be told apart, and
    leaving out its tolerations is all that keeps the component off tainted nodes.
    """
    terms = [
        {"matchExpressions": [{"key": key, "operator": "NotIn", "values": [value]}]}
        for key, value in sorted(pool.node_selector.items())
    ]
    if not terms:
        return {}
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": terms,
                }
            },
        },
    }


def build_predictor_placement(spec: InferencePipelineSpec, stage: Stage) -> dict[str, Any]:
    """The predictor goes on the stage's node pool."""
    return build_pool_placement(spec.pool(stage.node_pool))


def build_transformer_placement(spec: InferencePipelineSpec, stage: Stage) -> dict[str, Any]:
    """A transformer (CPU only) shares a CPU pool with its predictor but stays off GPU pools."""
    pool = spec.pool(stage.node_pool)
    if pool is None:
        return {}
    if is_gpu_pool(spec, pool):
        return build_avoid_pool_placement(pool)
    return build_pool_placement(pool)


def build_resources(resources: Resources, gpu_resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    """core/v1 ResourceRequirements with requests equal to limits (Guaranteed QoS)."""
    amounts: dict[str, str] = {"cpu": resources.cpu, "memory": resources.memory}
    if resources.gpus > 0:
        amounts[gpu_resource] = str(resources.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def build_stage_resources(spec: InferencePipelineSpec, stage: Stage) -> dict[str, Any]:
    """The stage predictor's resources; GPUs under the pool's extended resource name."""
    pool = spec.pool(stage.node_pool)
    gpu_resource = pool.gpu_resource if pool is not None else "nvidia.com/gpu"
    return build_resources(stage.resources, gpu_resource)
