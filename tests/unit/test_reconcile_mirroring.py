"""A mirror through Traefik in the reconcile: the TraefikService is written before the route
that names it, and removed only once the route no longer names it and its Gateway took that
route in."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.settings import OperatorSettings
from tests.unit.fake_kube import FakeKube, reconcile

ROUTING = {"gatewayAPI": {"parentRefs": [{"name": "public"}], "mirrorWith": "TraefikService"}}
STEPS = [{"setMirror": {"percent": 20}}, {"pause": {}}]


def pipeline() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "p", "namespace": "ml", "uid": "u1", "generation": 1},
        "spec": {
            "stages": [{"name": "m", "predictor": {"container": {"image": "model:1"}}}],
            "rollout": {"trafficRouting": ROUTING, "canary": {"steps": STEPS}},
        },
    }


def accept_route(kube: FakeKube) -> None:
    """What the Gateway does: take the route in at its generation."""
    route = kube.children[("HTTPRoute", "p")]
    verdicts = [{"type": t, "status": "True"} for t in ("Accepted", "ResolvedRefs")]
    route["status"] = {"parents": [{"parentRef": {"name": "public"}, "conditions": verdicts}]}


def settle(reconciler: Reconciler, kube: FakeKube, times: int = 3) -> None:
    for _ in range(times):
        kube.mark_ready()
        kube.mark_ready("InferenceGraph")
        accept_route(kube)
        reconcile(reconciler, kube)


def mirroring() -> tuple[FakeKube, Reconciler]:
    kube = FakeKube(pipeline())
    settings = OperatorSettings(gateway_api=True, traefik_services=True)
    reconciler = Reconciler(kube, settings)  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    settle(reconciler, kube)
    kube.pipeline["spec"]["stages"][0]["predictor"]["container"]["image"] = "model:2"
    kube.pipeline["metadata"]["generation"] = 2
    kube.applied.clear()
    reconcile(reconciler, kube)
    settle(reconciler, kube)
    return kube, reconciler


def test_the_mirroring_service_is_written_before_the_route_that_names_it() -> None:
    kube, _ = mirroring()
    status = kube.pipeline["status"]
    assert status.get("mirrorPercent") == 20, status
    assert ("TraefikService", "p-mirror") in kube.children
    assert kube.applied.index("p-mirror") < kube.applied.index("p")
    route = kube.children[("HTTPRoute", "p")]
    refs = [ref for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
    assert {
        "group": "traefik.io",
        "kind": "TraefikService",
        "name": "p-mirror",
        "weight": 100,
    } in refs


def test_the_mirroring_service_goes_only_once_the_gateway_serves_the_route_without_it() -> None:
    kube, reconciler = mirroring()
    kube.pipeline["metadata"]["annotations"] = {"pipelines.inference.dev/command": "abort:1"}
    reconcile(reconciler, kube)
    route = kube.children[("HTTPRoute", "p")]
    refs = [ref for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
    assert all(ref.get("kind") != "TraefikService" for ref in refs)
    # The route was rewritten this reconcile: the Gateway may still route through the service.
    assert ("TraefikService", "p-mirror") in kube.children
    assert "status" not in route  # the Gateway has not yet reported on the new route
    reconcile(reconciler, kube)
    assert ("TraefikService", "p-mirror") in kube.children
    accept_route(kube)
    reconcile(reconciler, kube)
    assert ("TraefikService", "p-mirror") not in kube.children
