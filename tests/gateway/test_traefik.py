"""The harness's Gateway routes what the kit's Gateway API traffic provider will write.

Two revisions of an echo backend behind one HTTPRoute: weighted backendRefs split the
traffic, a header match and a cookie match (a regular expression on the Cookie header) pin a
user to one revision; pods reach the Gateway at the node address. A RequestMirror filter is
refused by Traefik (it answers 500 on that rule): the operator cannot rely on mirroring here.
"""

from __future__ import annotations

import collections
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Cluster
from tests.harness.gateway import CONFORMANCE_IMAGES, Gateway, wait_for_route
from tests.support import kubectl_json, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.local_only]

ECHO_IMAGE = CONFORMANCE_IMAGES[0]
CLIENT_IMAGE = "ghcr.io/inference-pipelines/operator:0.1.0"
HOST = "pipeline.example.test"


@pytest.fixture(scope="module")
def gateway(
    cluster: Cluster, conformance_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with Gateway(cluster, tmp_path_factory.mktemp("gateway")) as running:
        yield running


def _echo(cluster: Cluster, namespace: str, revision: str) -> None:
    labels = {"app": "echo", "revision": revision}
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    objects = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"echo-{revision}", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "echo",
                                "image": ECHO_IMAGE,
                                "imagePullPolicy": "Never",
                                "env": env,
                                "readinessProbe": {"httpGet": {"path": "/", "port": 3000}},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"echo-{revision}", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 3000}]},
        },
    ]
    cluster.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objects))


def _route(gateway: Gateway, namespace: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "pipeline", "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": gateway.gateway_name, "namespace": gateway.namespace}],
            "hostnames": [HOST],
            "rules": rules,
        },
    }


def _backend(revision: str, weight: int) -> dict[str, Any]:
    return {"name": f"echo-{revision}", "port": 80, "weight": weight}


def _get(gateway: Gateway, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{gateway.address}/predict", headers={"Host": HOST, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, {}
    except (urllib.error.URLError, TimeoutError):  # not routed yet: a previous route's backends
        return 0, {}


def _revision(body: dict[str, Any]) -> str:
    return str(body["pod"]).split("-")[1]


@pytest.fixture
def revisions(cluster: Cluster, namespace: str) -> str:
    for revision in ("stable", "canary"):
        _echo(cluster, namespace, revision)
    for revision in ("stable", "canary"):
        cluster.kubectl(
            "rollout", "status", f"deployment/echo-{revision}", "-n", namespace, "--timeout=120s"
        )
    return namespace


def test_weights_and_header_and_cookie_matches(
    cluster: Cluster, gateway: Gateway, revisions: str
) -> None:
    namespace = revisions
    canary = [_backend("canary", 1)]
    rules = [
        {
            "matches": [{"headers": [{"name": "x-revision", "value": "canary"}]}],
            "backendRefs": canary,
        },
        {
            "matches": [
                {
                    "headers": [
                        {
                            "type": "RegularExpression",
                            "name": "cookie",
                            "value": "(^|.*; )revision=canary(;.*|$)",
                        }
                    ]
                }
            ],
            "backendRefs": canary,
        },
        {"backendRefs": [_backend("stable", 80), _backend("canary", 20)]},
    ]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(_route(gateway, namespace, rules)))
    wait_for_route(gateway, namespace, "pipeline")
    wait_for(lambda: _get(gateway)[0] == 200, 30, "the route to answer")

    seen = collections.Counter(_revision(_get(gateway)[1]) for _ in range(200))
    assert 130 <= seen["stable"] <= 190 and seen["stable"] + seen["canary"] == 200, seen
    pinned = [_revision(_get(gateway, {"x-revision": "canary"})[1]) for _ in range(20)]
    assert set(pinned) == {"canary"}
    cookie = {"Cookie": "session=abc; revision=canary"}
    assert {_revision(_get(gateway, cookie)[1]) for _ in range(20)} == {"canary"}
    echoed = _get(gateway, {"x-revision": "canary"})[1]
    assert echoed["namespace"] == namespace and echoed["host"] == HOST


def test_pods_reach_the_gateway(cluster: Cluster, gateway: Gateway, revisions: str) -> None:
    namespace = revisions
    rules = [{"backendRefs": [_backend("stable", 1)]}]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(_route(gateway, namespace, rules)))
    wait_for_route(gateway, namespace, "pipeline")
    script = (
        "import urllib.request as u;"
        f"r=u.Request('{gateway.address}/from-pod', headers={{'Host': '{HOST}'}});"
        "print(u.urlopen(r, timeout=10).read().decode())"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "client",
                    "image": CLIENT_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", script],
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))

    def phase() -> str | None:
        value = kubectl_json(cluster, "get", "pod", "client", "-n", namespace)["status"].get(
            "phase"
        )
        return value if value in ("Succeeded", "Failed") else None

    final = wait_for(phase, 120, "the client pod to finish")
    # The kubelet may serve a finished container's log a moment after the pod's phase says so.
    logs = wait_for(
        lambda: cluster.kubectl("logs", "client", "-n", namespace, check=False).stdout.strip(),
        30,
        "the client pod's log",
    )
    assert final == "Succeeded", logs
    body = json.loads(logs)
    assert body["path"] == "/from-pod" and _revision(body) == "stable"


def test_request_mirror_filter_is_refused(
    cluster: Cluster, gateway: Gateway, revisions: str
) -> None:
    namespace = revisions
    mirror = {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": "echo-canary", "port": 80}},
    }
    rules = [{"filters": [mirror], "backendRefs": [_backend("stable", 1)]}]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(_route(gateway, namespace, rules)))
    wait_for(lambda: _get(gateway)[0] == 500, 60, "Traefik to answer 500 on the mirrored rule")
    log = Path(gateway.traefik.log_path).read_text(errors="replace")
    assert "unsupported filter RequestMirror" in log
    # What the operator reads before it writes a mirror (core/observe/gateways.py): the class
    # says so, and a setMirror step attached to this Gateway is refused.
    listed = json.loads(
        cluster.kubectl("get", "gatewayclass", gateway.class_name, "-o", "json").stdout
    )["status"]["supportedFeatures"]
    names = {f["name"] for f in listed}
    assert {"HTTPRoute", "HTTPRouteQueryParamMatching"} <= names, names
    assert not {"HTTPRouteRequestMirror", "HTTPRouteRequestPercentageMirror"} & names, names
