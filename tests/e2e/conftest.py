"""Fixtures for the real-container tier: the operator installed by ``helm install`` of the
chart (two replicas electing a leader, from the image ``make images`` built, with Gateway API
routing enabled over the Gateway API CRDs), and the examples' models on the claims the pods
mount."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Cluster, LocalCluster
from tests.harness.helm import Helm
from tests.harness.models import build_example_models
from tests.support import kubectl_json, wait_for

RELEASE = "inference-pipelines"
OPERATOR_NAMESPACE = "inference-pipelines"


@pytest.fixture(scope="package")
def operator_release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The chart installed for the whole cluster; uninstalled after this tier, so that the
    control-plane tier's per-namespace operators never meet it."""
    if not isinstance(cluster, LocalCluster):
        pytest.skip("the chart is installed by the harness on the local cluster only")
    # The Gateway API's and Traefik's CRDs first: an operator with gatewayAPI.enabled watches
    # HTTPRoutes, and with traefikServices TraefikServices. Pipelines without
    # trafficRouting.gatewayAPI keep KServe's Splitter, as without them.
    cluster.apply_crds([*cluster.tools.gateway_api_crds(), *cluster.tools.traefik_crds()])
    helm = Helm(cluster.tools, cluster.kubeconfig, tmp_path_factory.mktemp("helm"))
    helm.install_operator(
        RELEASE,
        OPERATOR_NAMESPACE,
        *("--set", "gatewayAPI.enabled=true", "--set", "gatewayAPI.traefikServices=true"),
    )
    selector = f"app.kubernetes.io/instance={RELEASE}"

    def ready_pods() -> list[dict] | None:
        pods = kubectl_json(cluster, "get", "pods", "-n", OPERATOR_NAMESPACE, "-l", selector)[
            "items"
        ]
        ready = [
            pod
            for pod in pods
            if all(s.get("ready") for s in pod["status"].get("containerStatuses") or [{}])
        ]
        return ready if len(ready) == 2 else None

    wait_for(ready_pods, 180, "both operator replicas Ready")
    yield OPERATOR_NAMESPACE
    helm.run(
        "uninstall",
        RELEASE,
        "--namespace",
        OPERATOR_NAMESPACE,
        "--wait",
        "--timeout",
        "120s",
        check=False,
    )


@pytest.fixture(scope="session")
def example_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every model the numbered examples name, built locally: storage URI -> directory."""
    return build_example_models(tmp_path_factory.mktemp("models"))
