"""A setMirror step is refused, naming it, when a Gateway's class does not list the mirror
among its supported features; the Gateway's support is read once a while, not per reconcile."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND, InferencePipelineSpec
from pipeline_operator.controller.gateways import GatewaySupports
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.core.observe.gateways import (
    MIRROR,
    PERCENTAGE_MIRROR,
    gateway_keys,
    read_support,
    unsupported_mirrors,
)
from pipeline_operator.k8s.client import RefusedError
from pipeline_operator.settings import OperatorSettings
from tests.unit.admission import MINIMAL
from tests.unit.fake_kube import FakeKube, reconcile

GATEWAY = {"parentRefs": [{"name": "public", "namespace": "edge"}, {"name": "internal"}]}


def spec(*percents: int, gateway: dict | None = GATEWAY) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"setMirror": {"percent": p}} for p in percents]
    rollout: dict[str, Any] = {"canary": {"steps": [*steps, {"setWeight": 50}]}}
    if gateway is not None:
        rollout["trafficRouting"] = {"gatewayAPI": gateway}
    return {**MINIMAL, "rollout": rollout}


def model(body: dict[str, Any]) -> InferencePipelineSpec:
    return InferencePipelineSpec.model_validate(body)


def gateway(class_name: str) -> dict[str, Any]:
    return {"spec": {"gatewayClassName": class_name}}


def gateway_class(*features: str) -> dict[str, Any]:
    return {"status": {"supportedFeatures": [{"name": f} for f in features]}}


def test_only_a_mirroring_spec_depends_on_its_gateways() -> None:
    assert gateway_keys(model(spec(20)), "ml") == [("edge", "public"), ("ml", "internal")]
    assert gateway_keys(model(spec()), "ml") == []
    assert gateway_keys(model(spec(0)), "ml") == []  # a setMirror of 0 stops, needs nothing


def test_a_share_needs_the_percentage_mirror_and_all_requests_the_plain_one() -> None:
    plain = read_support(("edge", "public"), gateway("basic"), gateway_class(MIRROR))
    assert unsupported_mirrors(model(spec(100)), [plain]) == []
    [problem] = unsupported_mirrors(model(spec(100, 20)), [plain])
    assert problem.startswith("spec.rollout.canary.steps[1].setMirror: the GatewayClass basic")
    assert f"Gateway edge/public does not list {PERCENTAGE_MIRROR}" in problem
    both = read_support(
        ("edge", "public"), gateway("full"), gateway_class(MIRROR, PERCENTAGE_MIRROR)
    )
    assert unsupported_mirrors(model(spec(100, 20)), [both]) == []


def test_what_is_not_known_is_not_judged() -> None:
    key = ("edge", "public")
    unknown = [
        read_support(key, None, None),
        read_support(key, gateway("gone"), None),
        read_support(key, gateway("quiet"), {"status": {}}),
    ]
    assert [s.unknown for s in unknown] == [
        "the Gateway does not exist",
        "GatewayClass gone not found",
        "the class lists no supported features",
    ]
    assert unsupported_mirrors(model(spec(20)), unknown) == []


def test_features_listed_as_strings_are_read_too() -> None:
    support = read_support(("a", "b"), gateway("old"), {"status": {"supportedFeatures": [MIRROR]}})
    assert support.features == frozenset({MIRROR})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_read_is_kept_for_its_ttl() -> None:
    kube = FakeKube({})
    kube.gateways[("edge", "public")] = gateway("traefik")
    kube.gateway_classes["traefik"] = gateway_class("HTTPRouteWeight")
    clock = Clock()
    supports = GatewaySupports(kube, ttl=30, clock=clock)  # type: ignore[arg-type]
    keys = [("edge", "public")]
    assert supports.known(keys) == ([], keys)
    supports.read(keys)
    [support], due = supports.known(keys)
    assert due == [] and support.class_name == "traefik"
    clock.now = 31
    assert supports.known(keys) == ([], keys)


def test_a_refused_read_is_known_as_refused() -> None:
    class Refusing(FakeKube):
        def read_gateway(self, namespace: str, name: str) -> dict[str, Any] | None:
            raise RefusedError(403, "gateways is forbidden")

    supports = GatewaySupports(Refusing({}))  # type: ignore[arg-type]
    supports.read([("edge", "public")])
    [support], _ = supports.known([("edge", "public")])
    assert support.features is None and support.refused and support.unknown is not None
    assert "refused (403)" in support.unknown
    assert unsupported_mirrors(model(spec(20)), [support]) == []


def pipeline(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "p", "namespace": "ml", "uid": "u1", "generation": 1},
        "spec": copy.deepcopy(body),
    }


@pytest.fixture
def kube() -> FakeKube:
    kube = FakeKube(pipeline(spec(20, gateway={"parentRefs": [{"name": "public"}]})))
    kube.gateways[("ml", "public")] = gateway("traefik")
    kube.gateway_classes["traefik"] = gateway_class("HTTPRouteWeight", "HTTPRouteHeaderMatching")
    return kube


def test_a_pipeline_mirroring_through_a_class_without_the_mirror_is_degraded(
    kube: FakeKube,
) -> None:
    reconciler = Reconciler(kube, OperatorSettings(gateway_api=True))  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert status["phase"] == "Degraded"
    assert "spec.rollout.canary.steps[0].setMirror" in status["message"]
    assert PERCENTAGE_MIRROR in status["message"]
    assert not [c for c in kube.children if c[0] == "HTTPRoute"]  # nothing half-applied
    assert any(reason == "InvalidSpec" for _, reason, _ in kube.events), kube.events
    reconcile(reconciler, kube)
    assert kube.gateway_reads == 1  # the class is read again after the TTL only


def test_a_class_that_mirrors_lets_the_same_pipeline_through(kube: FakeKube) -> None:
    kube.gateway_classes["traefik"] = gateway_class(MIRROR, PERCENTAGE_MIRROR)
    reconciler = Reconciler(kube, OperatorSettings(gateway_api=True))  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    assert kube.pipeline["status"]["phase"] != "Degraded", kube.pipeline["status"]
    assert [c for c in kube.children if c[0] == "HTTPRoute"]


def test_a_refused_read_is_a_warning_not_a_refusal(kube: FakeKube) -> None:
    def refuse(name: str) -> dict[str, Any] | None:
        raise RefusedError(403, "gatewayclasses is forbidden")

    kube.read_gateway_class = refuse  # type: ignore[method-assign]
    reconciler = Reconciler(kube, OperatorSettings(gateway_api=True))  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert status["phase"] != "Degraded", status
    [warned] = [c for c in status["conditions"] if c["type"] == "Warnings"]
    assert "not known whether Gateway ml/public mirrors" in warned["message"]


TRAEFIK = {"parentRefs": [{"name": "public"}], "mirrorWith": "TraefikService"}


def test_a_mirror_through_a_traefik_service_asks_nothing_of_the_class(kube: FakeKube) -> None:
    assert gateway_keys(model(spec(20, gateway=TRAEFIK)), "ml") == []
    kube.pipeline["spec"] = spec(20, gateway=TRAEFIK)
    settings = OperatorSettings(gateway_api=True, traefik_services=True)
    reconciler = Reconciler(kube, settings)  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    assert kube.pipeline["status"]["phase"] != "Degraded", kube.pipeline["status"]
    assert kube.gateway_reads == 0
    assert [c for c in kube.children if c[0] == "HTTPRoute"]


def test_a_mirror_through_traefik_on_an_operator_without_it_is_degraded(kube: FakeKube) -> None:
    kube.pipeline["spec"] = spec(20, gateway=TRAEFIK)
    reconciler = Reconciler(kube, OperatorSettings(gateway_api=True))  # type: ignore[arg-type]
    reconcile(reconciler, kube)
    status = kube.pipeline["status"]
    assert status["phase"] == "Degraded"
    assert "spec.rollout.trafficRouting.gatewayAPI.mirrorWith" in status["message"]
    assert "gatewayAPI.traefikServices=true" in status["message"]
    # Without a mirror step, the same routing needs no TraefikService and is let through.
    kube.pipeline["spec"] = spec(gateway=TRAEFIK)
    kube.pipeline["metadata"]["generation"] = 2
    reconcile(reconciler, kube)
    assert kube.pipeline["status"]["phase"] != "Degraded", kube.pipeline["status"]
