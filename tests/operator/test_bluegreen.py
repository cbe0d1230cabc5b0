"""Blue-green rollouts: preview graph, manual and automatic promotion, scale-down delay."""

from __future__ import annotations

import pytest

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.operator_process import OperatorProcess
from tests.operator.test_canary import deploy_stable, services_of, weights
from tests.support import wait_for

pytestmark = pytest.mark.cluster


def graphs(cluster: Cluster, namespace: str) -> list[str]:
    return sorted(g["metadata"]["name"] for g in p.children(cluster, namespace, "inferencegraphs"))


def test_blue_green_with_manual_promotion(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    rollout = {"strategy": "BlueGreen", "blueGreen": {"scaleDownDelaySeconds": 3}}
    blue = deploy_stable(cluster, namespace, rollout)
    assert graphs(cluster, namespace) == ["clf"]

    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **rollout))
    st = p.wait_status(
        cluster, namespace, "clf", "preview ready, waiting for promote", phase="Paused"
    )
    green = st["canaryRevision"]
    assert st["traffic"] == [{"revision": blue, "weight": 100}]
    assert graphs(cluster, namespace) == ["clf", "clf-preview"]
    assert weights(cluster, namespace, "clf") == {blue: 100}
    assert weights(cluster, namespace, "clf-preview") == {green: 100}
    wait_for(
        lambda: p.status(cluster, namespace, "clf").get("previewUrl"),
        20,
        "status.previewUrl from the preview graph",
    )

    p.command(cluster, namespace, "clf", "promote", "1")
    st = p.wait_status(cluster, namespace, "clf", "green promoted", stableRevision=green)
    assert weights(cluster, namespace, "clf") == {green: 100}
    assert st["previousRevision"] == blue
    assert len(services_of(cluster, namespace, blue)) == 2, "blue stays for the scale-down delay"
    wait_for(lambda: graphs(cluster, namespace) == ["clf"], 30, "the preview graph to go")
    wait_for(
        lambda: services_of(cluster, namespace, blue) == [],
        30,
        "blue to be scaled down after the delay",
    )
    st = p.status(cluster, namespace, "clf")
    assert st["phase"] == "Healthy"
    assert "previousRevision" not in st


def test_blue_green_promotes_itself_after_auto_promotion_seconds(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    rollout = {
        "strategy": "BlueGreen",
        "blueGreen": {"autoPromotionSeconds": 2, "scaleDownDelaySeconds": 0},
    }
    blue = deploy_stable(cluster, namespace, rollout)
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **rollout))

    def promoted() -> dict | None:
        st = p.status(cluster, namespace, "clf")
        done = st.get("phase") == "Healthy" and "previousRevision" not in st
        return st if done and st["stableRevision"] != blue else None

    st = wait_for(promoted, 60, "automatic promotion and scale-down of blue")
    assert weights(cluster, namespace, "clf") == {st["stableRevision"]: 100}
    assert "Promoted" in p.events(cluster, namespace, "clf")
