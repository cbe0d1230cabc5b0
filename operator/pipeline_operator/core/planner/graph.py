"""The InferenceGraph (serving.kserve.io/v1alpha1): a Splitter over per-revision sub-graphs.

Every node of a revision's graph is copied under a name prefixed with the revision, and its
steps point only at that revision's InferenceServices and nodes, so a request that the root
Splitter sends to a revision goes through that revision's stages alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipeline_operator.api.v1alpha1 import (
    GROUP,
    GraphNode,
    GraphStep,
    InferencePipelineSpec,
    NodeType,
)
from pipeline_operator.core import naming
from pipeline_operator.core.planner.metadata import build_metadata
from pipeline_operator.core.planner.options import Owner, PlanError, PlanOptions

GRAPH_API_VERSION = "serving.kserve.io/v1alpha1"
GRAPH_KIND = "InferenceGraph"
ROOT = "root"  # KServe's router starts every request at the node named "root"
ROLE_ACTIVE = "active"
ROLE_PREVIEW = "preview"
ROLE_REVISION = "revision"  # one revision's own graph, while a job metric analyses the canary
TRAFFIC_ANNOTATION = f"{GROUP}/traffic"
_DATA = {"Request": "$request", "Response": "$response"}


def node_name(revision: str, node: str) -> str:
    """Name of ``revision``'s copy of a graph node (never ``root``: it contains a '-')."""
    return naming.fit_name(revision, node, limit=63)


def step_names(steps: Iterable[GraphStep]) -> list[str]:
    """Unique step names: the stage or node name, ``-<index>`` added on a repeat.

    KServe requires unique step names per node, and an Ensemble keys each step's response by
    its name, so the names are the same in every revision.
    """
    out: list[str] = []
    for index, step in enumerate(steps):
        base = step.stage or step.node or "step"
        candidate, suffix = base, index
        while candidate in out:
            candidate, suffix = f"{base}-{suffix}", suffix + 1
        out.append(candidate)
    return out


def build_step(
    owner: Owner, revision: str, node: GraphNode, index: int, step: GraphStep, name: str
) -> dict[str, Any]:
    """One InferenceStep: target inside the same revision, dependency, condition, data."""
    out: dict[str, Any] = {"name": name}
    if step.stage is not None:
        out["serviceName"] = naming.service_name(owner.name, step.stage, revision)
    elif step.node is not None:
        out["nodeName"] = node_name(revision, step.node)
    else:
        raise PlanError(f"graph node {node.name} step {index}: neither stage nor node")
    out["dependency"] = step.dependency
    if step.condition is not None:
        out["condition"] = step.condition
    if node.type == NodeType.SEQUENCE:
        default = "Request" if index == 0 else "Response"
        out["data"] = _DATA[step.data or default]
    return out


def build_router(owner: Owner, revision: str, node: GraphNode) -> dict[str, Any]:
    """One InferenceRouter (routerType + steps) of a revision's sub-graph."""
    names = step_names(node.steps)
    return {
        "routerType": str(node.type),
        "steps": [
            build_step(owner, revision, node, i, step, names[i])
            for i, step in enumerate(node.steps)
        ],
    }


def build_revision_nodes(
    owner: Owner, spec: InferencePipelineSpec, revision: str
) -> dict[str, dict[str, Any]]:
    """Every node of the revision's effective graph, under per-revision names."""
    return {
        node_name(revision, node.name): build_router(owner, revision, node)
        for node in spec.effective_graph().nodes
    }


def build_splitter(
    weights: Mapping[str, int], specs: Mapping[str, InferencePipelineSpec]
) -> dict[str, Any]:
    """The root Splitter: one step per revision, to that revision's copy of its graph root."""
    return {
        "routerType": "Splitter",
        "steps": [
            {
                "name": revision,
                "nodeName": node_name(revision, specs[revision].effective_graph().root),
                "weight": weight,
            }
            for revision, weight in weights.items()
        ],
    }


def build_graph_spec(
    owner: Owner,
    weights: Mapping[str, int],
    specs: Mapping[str, InferencePipelineSpec],
    options: PlanOptions,
) -> dict[str, Any]:
    """InferenceGraphSpec: the Splitter root, each weighted revision's nodes, router settings.

    With one revision at 100% there is nothing to split: that revision's own root node is the
    graph's root. Requests skip a hop, and KServe routers without the Splitter range fix
    (kserve#5408, in releases up to v0.17.0) only split while a rollout is in progress.
    """
    if len(weights) == 1:
        (revision,) = weights
        nodes = build_revision_nodes(owner, specs[revision], revision)
        nodes[ROOT] = nodes.pop(node_name(revision, specs[revision].effective_graph().root))
    else:
        nodes = {ROOT: build_splitter(weights, specs)}
        for revision in weights:
            nodes.update(build_revision_nodes(owner, specs[revision], revision))
    out: dict[str, Any] = {"nodes": nodes}
    if options.router_node_selector:
        out["nodeSelector"] = dict(sorted(options.router_node_selector.items()))
    if options.router_tolerations:
        out["tolerations"] = [dict(t) for t in options.router_tolerations]
    if options.router_affinity:
        out["affinity"] = dict(options.router_affinity)
    if options.router_resources:
        out["resources"] = dict(options.router_resources)
    if options.router_min_replicas is not None:
        out["minReplicas"] = options.router_min_replicas
    if options.router_max_replicas is not None:
        out["maxReplicas"] = options.router_max_replicas
    if options.router_timeout_seconds is not None:
        out["timeout"] = options.router_timeout_seconds
    return out


def build_inference_graph(
    owner: Owner,
    weights: Mapping[str, int],
    specs: Mapping[str, InferencePipelineSpec],
    options: PlanOptions,
    role: str = ROLE_ACTIVE,
) -> dict[str, Any]:
    """The pipeline's InferenceGraph, its blue-green preview graph, or (``ROLE_REVISION``)
    the graph of the one revision ``weights`` names."""
    labels = {**naming.labels(owner.name), naming.LABEL_ROLE: role}
    if role == ROLE_REVISION:
        (revision,) = weights
        name = naming.revision_graph_name(owner.name, revision)
        labels[naming.LABEL_REVISION] = revision
    else:
        name = naming.graph_name(owner.name, preview=role == ROLE_PREVIEW)
    metadata = build_metadata(owner, name, labels, options)
    metadata["annotations"][TRAFFIC_ANNOTATION] = format_traffic(weights)
    return {
        "apiVersion": GRAPH_API_VERSION,
        "kind": GRAPH_KIND,
        "metadata": metadata,
        "spec": build_graph_spec(owner, weights, specs, options),
    }


def format_traffic(weights: Mapping[str, int]) -> str:
    """``rev1=90,rev2=10``: the split a graph routes, as its traffic annotation."""
    return ",".join(f"{revision}={weight}" for revision, weight in weights.items())


def parse_traffic(value: str) -> dict[str, int] | None:
    """The inverse of :func:`format_traffic`; None for a value it did not write."""
    out: dict[str, int] = {}
    for part in value.split(","):
        revision, _, weight = part.partition("=")
        if not revision or not weight.isdigit():
            return None
        out[revision] = int(weight)
    return out
