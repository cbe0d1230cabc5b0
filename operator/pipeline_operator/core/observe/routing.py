"""What the graphs' routers serve (pure): whether KServe has rolled a graph's routes out to every
router replica, and the traffic split they then serve."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_operator.core.naming import LABEL_REVISION, LABEL_ROLE
from pipeline_operator.core.objects import condition
from pipeline_operator.core.observe.pods import draining_routers
from pipeline_operator.core.planner.graph import (
    GRAPH_KIND,
    ROLE_REVISION,
    TRAFFIC_ANNOTATION,
    parse_traffic,
)
from pipeline_operator.core.planner.route import MIRROR_ANNOTATION, MIRRORING_KIND


@dataclass(frozen=True)
class RouterRollout:
    """Whether a graph's router serves the graph's current routes on every replica."""

    rolled_out: bool
    message: str


_STEP_KEYS = ("name", "nodeName", "serviceName", "weight", "condition", "dependency", "data")


def routes(nodes: Mapping[str, Any]) -> dict[str, Any]:
    """What decides where a request goes: per node, its router type and its steps."""
    return {
        name: (
            node.get("routerType"),
            [tuple(step.get(k) for k in _STEP_KEYS) for step in node.get("steps") or []],
        )
        for name, node in nodes.items()
    }


def _graph_json(deployment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The graph a router Deployment's pods are started with (KServe's ``--graph-json``)."""
    for container in deployment["spec"]["template"]["spec"].get("containers") or []:
        args = list(container.get("args") or [])
        if "--graph-json" in args[:-1]:
            try:
                value = json.loads(args[args.index("--graph-json") + 1])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def served_traffic(
    graph: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
    pods: Iterable[dict[str, Any]] = (),
) -> tuple[dict[str, int] | None, RouterRollout | None]:
    """The split a graph's router serves on every replica (None while it rolls out), and the
    state of its rollout (None without a graph); ``pods`` are the pipeline's pods."""
    if graph is None:
        return None, None
    rollout = router_rollout(graph, deployment, pods)
    annotation = (graph["metadata"].get("annotations") or {}).get(TRAFFIC_ANNOTATION, "")
    return (parse_traffic(annotation) if rollout.rolled_out else None), rollout


def router_rollout(
    graph: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    pods: Iterable[dict[str, Any]] = (),
) -> RouterRollout:
    """Has KServe rolled the graph's current routes out to all of its router's replicas?

    KServe marks an InferenceGraph Ready as soon as its router Deployment has an Available
    condition of any status, and rolls the router out anew on every graph change; so this
    looks at the Deployment itself: the routes in its pod template, the generation its
    controller observed, and updated and available replicas with no old ones left. The
    Deployment no longer counts an old pod once it is being deleted, but that pod still
    serves its open connections with the old routes: rolled out means none is left.
    """
    if deployment is None:
        return RouterRollout(False, "router Deployment not created yet")
    served = _graph_json(deployment)
    if served is None or routes(served.get("nodes") or {}) != routes(graph["spec"]["nodes"]):
        return RouterRollout(False, "router not yet updated to the graph's routes")
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return RouterRollout(False, "router rollout not yet observed")
    want = int(deployment["spec"].get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    if updated < want:
        return RouterRollout(False, f"router rolling out: {updated} of {want} replicas updated")
    if total > updated:
        return RouterRollout(False, f"router rolling out: {total - updated} old replicas left")
    if available < want:
        return RouterRollout(False, f"router rolling out: {available} of {want} available")
    draining = draining_routers(pods, graph["metadata"]["name"])
    if draining:
        return RouterRollout(
            False, f"router rolling out: {draining} old pods still serving their connections"
        )
    return RouterRollout(True, f"router serves the current routes ({available}/{want} ready)")


def revision_urls(namespace: str, children: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Revision -> the in-cluster URL of its own graph (KServe's Service of it), for each
    such graph KServe reports Ready."""
    out = {}
    for child in children:
        labels = child["metadata"].get("labels") or {}
        revision = labels.get(LABEL_REVISION)
        if child["kind"] != GRAPH_KIND or labels.get(LABEL_ROLE) != ROLE_REVISION or not revision:
            continue
        ready = condition(dict(child), "Ready")
        if ready is not None and ready.get("status") == "True":
            out[revision] = f"http://{child['metadata']['name']}.{namespace}.svc"
    return out


def route_served(
    route: Mapping[str, Any],
    graphs: Mapping[str, Mapping[str, Any]],
    mirrorings: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, int] | None, int, RouterRollout]:
    """The split and the mirror share an HTTPRoute serves (None, 0 until it does), and what
    it waits for: every Gateway it names has Accepted it and ResolvedRefs at its generation,
    every TraefikService it names is there (``mirrorings``, by name), and every graph it or
    they route to (``graphs``, by name) is Ready."""
    meta = route["metadata"]
    generation = meta.get("generation", 0)
    parents = (route.get("status") or {}).get("parents") or []
    for ref in route["spec"].get("parentRefs") or []:
        gateway = f"Gateway {ref.get('namespace') or meta['namespace']}/{ref['name']}"
        verdict = next((p for p in parents if _same_parent(p["parentRef"], ref, meta)), None)
        if verdict is None:
            return None, 0, RouterRollout(False, f"route not yet seen by {gateway}")
        for kind in ("Accepted", "ResolvedRefs"):
            found = next((c for c in verdict["conditions"] if c["type"] == kind), None)
            if found is None or found.get("observedGeneration", 0) < generation:
                return None, 0, RouterRollout(False, f"{gateway}: {kind} not yet reported")
            if found["status"] != "True":
                why = ": ".join(x for x in (found.get("reason"), found.get("message")) if x)
                return None, 0, RouterRollout(False, f"{gateway}: not {kind}: {why}")
    names = _backends(route)
    for name in [n for n in names if n.startswith(f"{MIRRORING_KIND}/")]:
        mirroring = (mirrorings or {}).get(name.partition("/")[2])
        if mirroring is None:
            return None, 0, RouterRollout(False, f"route waits for {name} to be created")
        names += _mirrored(mirroring)
    for name in [n for n in names if "/" not in n]:
        graph = graphs.get(name)
        ready = condition(dict(graph), "Ready") if graph is not None else None
        if ready is None or ready.get("status") != "True":
            return None, 0, RouterRollout(False, f"route waits for graph {name} to be Ready")
    annotations = meta.get("annotations") or {}
    mirror = parse_traffic(annotations.get(MIRROR_ANNOTATION, "")) or {}
    served = parse_traffic(annotations.get(TRAFFIC_ANNOTATION, ""))
    return served, sum(mirror.values()), RouterRollout(True, "route accepted by its Gateways")


def _same_parent(seen: Mapping[str, Any], ref: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    here = meta["namespace"]
    return (
        seen.get("name") == ref["name"]
        and (seen.get("namespace") or here) == (ref.get("namespace") or here)
        and seen.get("sectionName") == ref.get("sectionName")
    )


def _backends(route: Mapping[str, Any]) -> list[str]:
    names = []
    for rule in route["spec"].get("rules") or []:
        refs = [*(rule.get("backendRefs") or [])]
        refs += [
            f["requestMirror"]["backendRef"]
            for f in rule.get("filters") or []
            if "requestMirror" in f
        ]
        names += [_backend(ref) for ref in refs]
    return list(dict.fromkeys(names))


def _backend(ref: Mapping[str, Any]) -> str:
    """A graph's Service by its name; a TraefikService as ``TraefikService/<name>``."""
    kind = ref.get("kind") or "Service"
    return ref["name"] if kind == "Service" else f"{kind}/{ref['name']}"


def _mirrored(mirroring: Mapping[str, Any]) -> list[str]:
    """The Services a TraefikService of kind mirroring serves from and copies to."""
    spec = (mirroring.get("spec") or {}).get("mirroring") or {}
    return [spec.get("name", ""), *(m.get("name", "") for m in spec.get("mirrors") or [])]
