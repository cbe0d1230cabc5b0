"""The router rollout: when KServe's router serves a graph's routes, and what waits for it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline_operator.api.v1alpha1 import (
    Analysis,
    AnalysisMetric,
    BlueGreen,
    Canary,
    CanaryStep,
    Pause,
    Phase,
    Rollout,
)
from pipeline_operator.core.naming import LABEL_REVISION, LABEL_ROLE
from pipeline_operator.core.observe.routing import (
    revision_urls,
    route_served,
    router_rollout,
    served_traffic,
)
from pipeline_operator.core.planner.graph import TRAFFIC_ANNOTATION, format_traffic, parse_traffic
from pipeline_operator.core.planner.route import MIRROR_ANNOTATION
from pipeline_operator.core.rollout.analysis import due_measurements
from tests.unit.world import World, reasons, sample_spec

NODES = {
    "root": {
        "routerType": "Splitter",
        "steps": [
            {"name": "r1", "nodeName": "r1-main", "weight": 80},
            {"name": "r2", "nodeName": "r2-main", "weight": 20},
        ],
    },
    "r1-main": {"routerType": "Sequence", "steps": [{"name": "m", "serviceName": "p-m-r1"}]},
    "r2-main": {"routerType": "Sequence", "steps": [{"name": "m", "serviceName": "p-m-r2"}]},
}


def graph(nodes: dict[str, Any] = NODES, traffic: str = "r1=80,r2=20") -> dict[str, Any]:
    return {
        "metadata": {"name": "clf", "annotations": {TRAFFIC_ANNOTATION: traffic}},
        "spec": {"nodes": nodes},
    }


def router_pod(graph_name: str = "clf", deleting: bool = False, phase: str = "Running") -> dict:
    meta: dict[str, Any] = {"labels": {"serving.kserve.io/inferencegraph": graph_name}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T01:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


def with_urls(nodes: dict[str, Any]) -> dict[str, Any]:
    """The graph as KServe passes it to its router: service names resolved to URLs."""
    out = json.loads(json.dumps(nodes))
    for node in out.values():
        for step in node["steps"]:
            if "serviceName" in step:
                step["serviceUrl"] = f"http://{step['serviceName']}.ns.svc/v1/models/m:predict"
    return out


def deployment(
    nodes: dict[str, Any] = NODES,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 1,
    updated: int = 1,
    available: int = 1,
    total: int = 1,
) -> dict[str, Any]:
    spec = {"nodes": with_urls(nodes), "resources": {}}
    container = {"name": "p", "args": ["--graph-json", json.dumps(spec)]}
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
        },
    }


def test_a_router_with_the_graphs_routes_on_every_replica_serves_its_split() -> None:
    served, rollout = served_traffic(graph(), deployment())
    assert served == {"r1": 80, "r2": 20}
    assert rollout is not None and rollout.rolled_out


@pytest.mark.parametrize(
    ("router", "why"),
    [
        (None, "not created yet"),
        (deployment(observed=1), "not yet observed"),
        (deployment(replicas=2, updated=1, total=2, available=2), "1 of 2 replicas updated"),
        (deployment(replicas=1, updated=1, total=2, available=1), "1 old replicas left"),
        (deployment(available=0), "0 of 1 available"),
    ],
)
def test_a_router_still_rolling_out_serves_nothing_yet(
    router: dict[str, Any] | None, why: str
) -> None:
    served, rollout = served_traffic(graph(), router)
    assert served is None
    assert rollout is not None and not rollout.rolled_out and why in rollout.message


def test_a_router_started_with_other_weights_has_not_picked_the_change_up() -> None:
    old = json.loads(json.dumps(NODES))
    old["root"]["steps"][0]["weight"], old["root"]["steps"][1]["weight"] = 90, 10
    rollout = router_rollout(graph(), deployment(nodes=old))
    assert not rollout.rolled_out
    assert "not yet updated" in rollout.message


def test_an_old_router_pod_still_draining_its_connections_holds_the_rollout() -> None:
    """The Deployment no longer counts a pod being deleted, but KServe's router serves its
    open (keep-alive) connections for 30 s more, with the old routes."""
    served, rollout = served_traffic(
        graph(), deployment(), [router_pod(), router_pod(deleting=True)]
    )
    assert served is None
    assert rollout is not None and "1 old pods still serving" in rollout.message


@pytest.mark.parametrize(
    "pods",
    [
        [router_pod(), router_pod(deleting=True, phase="Succeeded")],
        [router_pod(), router_pod(graph_name="clf-preview", deleting=True)],
        [router_pod()],
    ],
    ids=["old-pod-exited", "another-graphs-pod", "none-old"],
)
def test_pods_that_serve_nothing_of_the_graph_do_not_hold_it(pods: list[dict]) -> None:
    served, rollout = served_traffic(graph(), deployment(), pods)
    assert served == {"r1": 80, "r2": 20}
    assert rollout is not None and rollout.rolled_out


def test_no_graph_means_no_router_to_wait_for() -> None:
    assert served_traffic(None, None) == (None, None)


def test_traffic_annotation_round_trips_and_rejects_what_it_did_not_write() -> None:
    weights = {"a1b2c3d4": 90, "e5f6a7b8": 10}
    assert parse_traffic(format_traffic(weights)) == weights
    assert parse_traffic("") is None
    assert parse_traffic("a=x") is None


# -- the engine waits for the router -------------------------------------------------------


def canary_world(*steps: CanaryStep) -> World:
    world = World(spec=sample_spec(Rollout(canary=Canary(steps=list(steps)))))
    world.ready["r1"] = True
    world.tick()
    world.desired = "r2"
    world.ready["r2"] = True
    return world


def test_a_timed_pause_starts_only_once_the_router_serves_the_new_weight() -> None:
    world = canary_world(CanaryStep(set_weight=20), CanaryStep(pause=Pause(duration="30s")))
    world.router_follows = False
    world.served = {"r1": 100}
    decision = world.tick()
    assert reasons(decision) == ["RolloutStarted", "WeightChanged"]
    assert world.status.canary_weight == 20
    assert world.status.paused_at is None
    assert world.status.phase == Phase.PROGRESSING
    assert "waiting for the router to serve 20%" in world.status.message
    assert decision.requeue_after == 5  # a poll, should the Deployment's events be missed
    world.advance(60)
    assert reasons(world.tick()) == []  # a minute of rollout does not count as pause
    world.served = {"r1": 80, "r2": 20}
    assert reasons(world.tick()) == ["Paused"]
    assert world.status.paused_at is not None
    world.advance(29)
    assert reasons(world.tick()) == []
    world.advance(1)
    assert "Resumed" in reasons(world.tick())


def test_waiting_for_the_router_is_stable_under_a_rerun() -> None:
    world = canary_world(CanaryStep(set_weight=20), CanaryStep(pause=Pause()))
    world.router_follows = False
    world.served = {"r1": 100}
    world.tick()
    before = world.status
    assert reasons(world.tick()) == []
    assert world.status == before


def test_an_analysis_window_starts_once_the_router_serves_the_new_weight() -> None:
    metric = AnalysisMetric(name="errors", query="q", success_condition="result < 1")
    world = canary_world(CanaryStep(set_weight=20), CanaryStep(analysis=Analysis(metrics=[metric])))
    world.router_follows = False
    world.served = {"r1": 100}
    world.tick()
    world.advance(300)
    world.tick()  # five minutes of router rollout: the window has not begun
    assert due_measurements(world.spec, world.status, world.now) == []
    world.served = {"r1": 80, "r2": 20}
    assert reasons(world.tick()) == ["AnalysisStarted"]


def test_blue_green_auto_promotion_counts_from_the_preview_router_serving() -> None:
    rollout = Rollout(strategy="BlueGreen", blue_green=BlueGreen(auto_promotion_seconds=10))
    world = World(spec=sample_spec(rollout))
    world.ready["r1"] = True
    world.tick()
    world.router_follows = False
    world.served = {"r1": 100}
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    assert world.status.paused_at is None
    assert "waiting for the preview router to serve it" in world.status.message
    world.advance(30)
    world.tick()
    assert world.status.stable_revision == "r1"
    world.preview_served = "r2"
    assert reasons(world.tick()) == ["PreviewReady"]
    world.advance(10)
    assert "RolloutCompleted" in reasons(world.tick())


def test_revision_urls_name_the_ready_graphs_of_revisions_only() -> None:
    def child(name: str, role: str, revision: str | None, ready: str) -> dict[str, Any]:
        labels = {LABEL_ROLE: role, **({LABEL_REVISION: revision} if revision else {})}
        return {
            "kind": "InferenceGraph",
            "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }

    children = [
        child("clf", "active", None, "True"),
        child("clf-r1", "revision", "r1", "True"),
        child("clf-r2", "revision", "r2", "False"),
        {
            "kind": "InferenceService",
            "metadata": {
                "name": "clf-m-r3",
                "labels": {LABEL_ROLE: "revision", LABEL_REVISION: "r3"},
            },
        },
    ]
    assert revision_urls("ml", children) == {"r1": "http://clf-r1.ml.svc"}


def http_route(backend_refs: list[dict[str, Any]], generation: int = 2) -> dict[str, Any]:
    verdicts = [
        {"type": t, "status": "True", "observedGeneration": generation}
        for t in ("Accepted", "ResolvedRefs")
    ]
    return {
        "metadata": {
            "name": "clf",
            "namespace": "ml",
            "generation": generation,
            "annotations": {TRAFFIC_ANNOTATION: "r1=100", MIRROR_ANNOTATION: "r2=20"},
        },
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backend_refs}]},
        "status": {"parents": [{"parentRef": {"name": "gw"}, "conditions": verdicts}]},
    }


def ready_graph(name: str, status: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": status}]},
    }


MIRRORING = {
    "metadata": {"name": "clf-mirror"},
    "spec": {"mirroring": {"name": "clf-r1", "port": 80, "mirrors": [{"name": "clf-r2"}]}},
}
BY_TRAEFIK = [{"group": "traefik.io", "kind": "TraefikService", "name": "clf-mirror"}]


def test_a_route_through_a_mirroring_service_waits_for_it_and_the_graphs_it_names() -> None:
    graphs = {"clf-r1": ready_graph("clf-r1"), "clf-r2": ready_graph("clf-r2", "False")}
    served, mirror, rollout = route_served(http_route(BY_TRAEFIK), graphs, {})
    assert (served, mirror, rollout.rolled_out) == (None, 0, False)
    assert rollout.message == "route waits for TraefikService/clf-mirror to be created"
    # There, it still waits for the canary's graph it copies to.
    _, _, rollout = route_served(http_route(BY_TRAEFIK), graphs, {"clf-mirror": MIRRORING})
    assert rollout.message == "route waits for graph clf-r2 to be Ready"
    graphs["clf-r2"] = ready_graph("clf-r2")
    served, mirror, rollout = route_served(
        http_route(BY_TRAEFIK), graphs, {"clf-mirror": MIRRORING}
    )
    assert (served, mirror, rollout.rolled_out) == ({"r1": 100}, 20, True)


def test_a_route_not_yet_accepted_at_its_generation_is_not_served() -> None:
    route = http_route([{"name": "clf-r1", "port": 80}])
    route["metadata"]["generation"] = 3
    served, _, rollout = route_served(route, {"clf-r1": ready_graph("clf-r1")})
    assert served is None and rollout.message == "Gateway ml/gw: Accepted not yet reported"
