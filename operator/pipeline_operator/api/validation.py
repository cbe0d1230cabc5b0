"""Semantic checks of an InferencePipelineSpec that the CRD schema and CEL rules cannot do.

``validate`` returns errors: a spec with any is not deployed, and the operator reports the
messages in status. ``lint`` returns warnings: the spec deploys, but probably not as meant
(a stage no graph step uses still gets its InferenceService, and so still has to become
ready; an Ensemble nested directly in an Ensemble works in KServe's router but returns
nested per-step objects). Every message starts with the path of the field it is about.
Switch conditions must be GJSON paths (KServe's router would only fail at request time).
Some checks repeat CEL rules, and success conditions are compiled here as well as in the
model, so that specs built or changed in Python are held to the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import ValidationError

from pipeline_operator.api import gjson, success_condition
from pipeline_operator.api.success_condition import ConditionError, compile_condition
from pipeline_operator.api.v1alpha1 import (
    RESERVED_ENV,
    Graph,
    GraphNode,
    InferencePipelineSpec,
    NodeType,
)

RAW_MODES = frozenset({"RawDeployment", "Standard"})


def node_path(index: int, node: GraphNode) -> str:
    return f"spec.graph.nodes[{index}] ({node.name})"


# -- errors ----------------------------------------------------------------------------------


def check_stages(spec: InferencePipelineSpec) -> Iterator[str]:
    """Unknown node pools, GPUs a pool's nodes cannot hold, duplicate or reserved env names."""
    for i, stage in enumerate(spec.stages):
        path = f"spec.stages[{i}] ({stage.name})"
        pool = spec.pool(stage.node_pool)
        if stage.node_pool is not None and pool is None:
            yield f"{path}: nodePool {stage.node_pool} is not in spec.nodePools"
        gpus = stage.resources.gpus
        if pool is not None and pool.gpus_per_node is not None and gpus > pool.gpus_per_node:
            yield (
                f"{path}: asks for {gpus} GPUs per replica but nodePool {pool.name} "
                f"has gpusPerNode {pool.gpus_per_node}"
            )
        containers = [
            ("predictor.model", stage.predictor.model),
            ("predictor.container", stage.predictor.container),
            ("transformer", stage.transformer),
        ]
        for field, container in containers:
            names = [e.name for e in container.env] if container is not None else []
            for name in sorted({n for n in names if names.count(n) > 1}):
                yield f"{path}.{field}.env: {name} is set more than once"
            for name in sorted(set(names) & set(RESERVED_ENV)):
                yield f"{path}.{field}.env: {name} is set by the operator"


def check_graph_refs(spec: InferencePipelineSpec, graph: Graph) -> Iterator[str]:
    """Root, unique node names, step targets, Switch conditions."""
    names = [n.name for n in graph.nodes]
    stages = {s.name for s in spec.stages}
    if graph.root not in names:
        yield f"spec.graph.root: {graph.root} is not a node of spec.graph.nodes"
    for i, node in enumerate(graph.nodes):
        path = node_path(i, node)
        if names.index(node.name) != i:
            yield f"{path}: node name {node.name} is used more than once"
        for j, step in enumerate(node.steps):
            step_path = f"{path}.steps[{j}]"
            if (step.stage is None) == (step.node is None):
                yield f"{step_path}: set exactly one of stage or node"
            if step.stage is not None and step.stage not in stages:
                yield f"{step_path}: stage {step.stage} is not a stage of spec.stages"
            if step.node is not None and step.node not in names:
                yield f"{step_path}: node {step.node} is not a node of spec.graph.nodes"
            if node.type == NodeType.SWITCH and step.condition is None:
                yield f"{step_path}: a Switch step needs a condition"
            if step.condition is not None and (
                node.type == NodeType.ENSEMBLE or (node.type == NodeType.SEQUENCE and j == 0)
            ):
                yield (
                    f"{step_path}: condition is allowed on Switch steps and on Sequence steps "
                    "after the first"
                )
            if step.condition is not None:
                try:
                    gjson.check(step.condition)
                except gjson.PathError as err:
                    yield f"{step_path}.condition: not a GJSON path: {err}"


def check_analysis(spec: InferencePipelineSpec) -> Iterator[str]:
    """Success conditions that are not CEL conditions on ``result`` (where cel-python is
    installed: the operator always has it)."""
    if not success_condition.AVAILABLE:
        return
    steps = spec.rollout.canary.steps if spec.rollout.canary is not None else []
    for i, step in enumerate(steps):
        for j, metric in enumerate(step.analysis.metrics if step.analysis is not None else []):
            try:
                compile_condition(metric.condition)
            except ConditionError as err:
                path = f"spec.rollout.canary.steps[{i}].analysis.metrics[{j}].successCondition"
                yield f"{path}: {err}"


def children(graph: Graph, node: GraphNode) -> list[str]:
    """Names of the known nodes that ``node``'s steps call, in step order."""
    known = {n.name for n in graph.nodes}
    return [s.node for s in node.steps if s.node is not None and s.node in known]


def check_cycles(graph: Graph) -> Iterator[str]:
    """Cycles through node steps (the router would recurse until the request times out)."""
    index: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        index.setdefault(n.name, i)
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> Iterator[str]:
        node = graph.nodes[index[name]]
        stack.append(name)
        for child in children(graph, node):
            if child in stack:
                cycle = " -> ".join([*stack[stack.index(child) :], child])
                yield f"{node_path(index[name], node)}: cycle {cycle}"
            elif child not in done:
                yield from visit(child, stack)
        stack.pop()
        done.add(name)

    starts = ([graph.root] if graph.root in index else []) + list(index)
    for start in starts:
        if start not in done:
            yield from visit(start, [])


def reachable(graph: Graph) -> set[str]:
    """Node names reachable from the root through node steps."""
    by_name = {n.name: n for n in reversed(graph.nodes)}
    if graph.root not in by_name:
        return set()
    seen, todo = {graph.root}, [graph.root]
    while todo:
        for child in children(graph, by_name[todo.pop()]):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def check_reachability(graph: Graph) -> Iterator[str]:
    if not any(n.name == graph.root for n in graph.nodes):
        return
    seen = reachable(graph)
    for i, node in enumerate(graph.nodes):
        if node.name not in seen:
            yield f"{node_path(i, node)}: not reachable from root node {graph.root}"


def unreadable(err: ValidationError) -> list[str]:
    """A spec the models refuse, one problem per field, each named the way :func:`validate`
    names them (``spec.rollout.canary.steps[1].pause``)."""
    problems = []
    for error in err.errors():
        path = "spec" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        )
        problems.append(f"{path}: {error['msg']}")
    return problems


def validate(spec: InferencePipelineSpec) -> list[str]:
    """Errors that make the spec undeployable; empty means valid."""
    problems = [*check_stages(spec), *check_analysis(spec)]
    if spec.graph is not None:
        problems += check_graph_refs(spec, spec.graph)
        problems += check_cycles(spec.graph)
        problems += check_reachability(spec.graph)
    return problems


# -- warnings --------------------------------------------------------------------------------


def used_stages(graph: Graph) -> set[str]:
    """Stages called by a step of a node reachable from the root."""
    seen = reachable(graph)
    return {s.stage for n in graph.nodes if n.name in seen for s in n.steps if s.stage}


def lint_graph(spec: InferencePipelineSpec, graph: Graph) -> Iterator[str]:
    used = used_stages(graph)
    for i, stage in enumerate(spec.stages):
        if stage.name not in used:
            yield (
                f"spec.stages[{i}] ({stage.name}): used by no step reachable from the graph "
                "root; it is deployed and must become ready all the same"
            )
    types = {n.name: n.type for n in reversed(graph.nodes)}
    for i, node in enumerate(graph.nodes):
        path = node_path(i, node)
        for j, step in enumerate(node.steps):
            step_path = f"{path}.steps[{j}]"
            nested = types.get(step.node or "")
            if node.type == NodeType.ENSEMBLE and nested == NodeType.ENSEMBLE:
                yield (
                    f"{step_path}: Ensemble {step.node} nested directly in Ensemble "
                    f"{node.name}: KServe returns its responses as one object keyed by step "
                    "name inside the outer one; put an aggregating stage after it in a "
                    "Sequence"
                )
            if step.data is not None and node.type != NodeType.SEQUENCE:
                yield f"{step_path}: data is ignored outside Sequence nodes"
            if step.data == "Response" and node.type == NodeType.SEQUENCE and j == 0:
                yield f"{step_path}: data Response on the first step gets the request"


def lint_scaling(spec: InferencePipelineSpec, deployment_mode: str | None) -> Iterator[str]:
    if deployment_mode not in RAW_MODES:
        return
    for i, stage in enumerate(spec.stages):
        path = f"spec.stages[{i}] ({stage.name}).scaling"
        scaling = stage.scaling
        autoscaled = scaling.min_replicas != scaling.max_replicas
        if autoscaled and scaling.metric in ("concurrency", "rps"):
            yield (
                f"{path}.metric: {scaling.metric} needs Knative; in {deployment_mode} mode "
                "KServe's HPA scales on cpu or memory only"
            )
        if scaling.min_replicas == 0:
            yield (
                f"{path}.minReplicas: scale to zero needs Knative; in {deployment_mode} "
                "mode the stage keeps at least one replica"
            )


def lint(spec: InferencePipelineSpec, deployment_mode: str | None = None) -> list[str]:
    """Warnings: the spec deploys, but probably not as meant."""
    warnings: list[str] = []
    if spec.graph is not None:
        warnings += lint_graph(spec, spec.graph)
    for i, stage in enumerate(spec.stages):
        if stage.resources.gpus > 0 and stage.node_pool is None:
            warnings.append(
                f"spec.stages[{i}] ({stage.name}): asks for GPUs but names no "
                "nodePool; it gets no GPU node tolerations"
            )
    warnings += lint_scaling(spec, deployment_mode)
    return warnings
