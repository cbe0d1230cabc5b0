"""GPU capacity across revisions on the local cluster's gpu-l4 pool (2 nodes x 4 GPUs): KServe
makes the Deployments, the real scheduler leaves pods Pending when no GPU is left."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests import pipelines as p
from tests.cli.test_plugin import plugin
from tests.harness import Cluster
from tests.harness.operator_process import OperatorProcess
from tests.support import kubectl_json, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.local_only]

L4_POOL = {
    **p.GPU_POOL,
    "name": "gpu-l4",
    "nodeSelector": {"pipelines.inference.dev/pool": "gpu-l4", "type": "kwok"},
    "gpusPerNode": 4,
}
NO_GPU = "Insufficient nvidia.com/gpu"


def pipeline(namespace: str, model: str, rollout: dict[str, Any]) -> dict[str, Any]:
    """One stage of 6 one-GPU replicas on the 8 GPUs of the pool: room for one copy plus 2."""
    obj = p.classifier("clf", namespace, model=model)
    stage = obj["spec"]["stages"][1]
    stage.update(nodePool="gpu-l4", scaling={"minReplicas": 6, "maxReplicas": 6})
    stage["resources"] = {"gpus": 1, "cpu": "1", "memory": "4Gi"}
    obj["spec"]["nodePools"] = [copy.deepcopy(L4_POOL)]
    obj["spec"]["stages"] = [stage]
    obj["spec"]["rollout"] = rollout
    return obj


def wait_for_a_free_pool(cluster: Cluster) -> None:
    """Pods of earlier tests' namespaces leave the pool before this test counts GPUs."""

    def free() -> bool:
        listed = kubectl_json(
            cluster, "get", "pods", "-A", "--field-selector", "status.phase!=Failed"
        )
        return not [
            pod
            for pod in listed["items"]
            if str(pod["spec"].get("nodeName", "")).startswith("gpu-l4")
            or pod["spec"].get("nodeSelector", {}).get("pipelines.inference.dev/pool") == "gpu-l4"
        ]

    wait_for(free, 120, "the gpu-l4 pool to be free of other tests' pods")


def min_replicas(cluster: Cluster, namespace: str, revision: str) -> int:
    isvc = kubectl_json(cluster, "get", "isvc", f"clf-classify-{revision}", "-n", namespace)
    return int(isvc["spec"]["predictor"]["minReplicas"])


def deploy(cluster: Cluster, namespace: str, rollout: dict[str, Any]) -> str:
    wait_for_a_free_pool(cluster)
    p.apply(cluster, pipeline(namespace, "bert-v1", rollout))
    st = p.wait_status(cluster, namespace, "clf", "six replicas Healthy", 90, phase="Healthy")
    return str(st["stableRevision"])


def test_a_canary_follows_its_weight_and_gpus_it_cannot_get_are_reported(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    steps = [{"setWeight": 30}, {"pause": {"duration": "1s"}}, {"setWeight": 50}, {"pause": {}}]
    rollout = {"canary": {"steps": steps}, "progressDeadlineSeconds": 45}
    stable = deploy(cluster, namespace, rollout)
    p.apply(cluster, pipeline(namespace, "bert-v2", rollout))

    # 30% of 6 replicas is 2 (with the stable's 6: the pool's 8 GPUs); 50% needs a third.
    def stuck() -> dict[str, Any] | None:
        st = p.status(cluster, namespace, "clf")
        stages = [s for r in st.get("revisions", []) for s in r["stages"]]
        return st if any(NO_GPU in s.get("unschedulable", "") for s in stages) else None

    st = wait_for(stuck, 120, "the canary's third replica to be reported unschedulable")
    canary = st["canaryRevision"]
    assert st["canaryWeight"] == 30, "traffic waits for the replicas it would need"
    assert st["traffic"] == [
        {"revision": stable, "weight": 70},
        {"revision": canary, "weight": 30},
    ]
    assert (min_replicas(cluster, namespace, stable), min_replicas(cluster, namespace, canary)) == (
        6,
        3,
    )
    [stage] = next(r for r in st["revisions"] if r["name"] == canary)["stages"]
    assert (stage["replicas"], stage["readyReplicas"], stage["pending"]) == (3, 2, 1)
    assert NO_GPU in stage["message"] and NO_GPU in st["message"]
    assert "Unschedulable" in p.events(cluster, namespace, "clf")
    shown = plugin("status", "clf", "-n", namespace, kubeconfig=cluster.kubeconfig).stdout
    assert "2/3 (1 Pending)" in shown and NO_GPU in shown

    st = p.wait_status(cluster, namespace, "clf", "the deadline abort", 90, phase="Aborted")
    assert NO_GPU in st["abortReason"]


def test_dynamic_stable_scale_rolls_out_on_a_pool_with_room_for_one_copy(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    steps = [
        {"setWeight": 30},
        {"pause": {"duration": "1s"}},
        {"setWeight": 50},
        {"pause": {"duration": "1s"}},
        {"setWeight": 80},
        {"pause": {"duration": "1s"}},
    ]
    rollout = {"canary": {"steps": steps, "dynamicStableScale": True}}
    stable = deploy(cluster, namespace, rollout)
    p.apply(cluster, pipeline(namespace, "bert-v2", rollout))
    shrunk = wait_for(
        lambda: (st := p.status(cluster, namespace, "clf")).get("stableScale") == 50 and st,
        240,
        "the stable to shrink to half once the router serves the canary half of the traffic",
    )
    assert shrunk["canaryWeight"] == 50
    assert min_replicas(cluster, namespace, stable) == 3
    st = wait_for(
        lambda: (
            (st := p.status(cluster, namespace, "clf")).get("phase") == "Healthy"
            and st["stableRevision"] != stable
            and st
        ),
        240,
        "the new revision to become stable on all six replicas",
    )
    assert min_replicas(cluster, namespace, st["stableRevision"]) == 6


def test_a_pool_with_room_for_one_more_replica_is_rolled_through(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """3 replicas of 2 GPUs on the pool's 8: room for one canary replica beside the stable.
    Steps of 20% and 50% need a second and a third: traffic moves onto the canary's ready
    pods, the stable frees a replica, the canary's Pending pod takes its GPUs."""
    rollout = {
        "canary": {"steps": [{"setWeight": 20}, {"setWeight": 50}], "dynamicStableScale": True},
        "progressDeadlineSeconds": 60,
    }

    def three_of_two(model: str) -> dict[str, Any]:
        obj = pipeline(namespace, model, rollout)
        stage = obj["spec"]["stages"][0]
        stage["scaling"] = {"minReplicas": 3, "maxReplicas": 3}
        stage["resources"] = {"gpus": 2, "cpu": "1", "memory": "4Gi"}
        return obj

    wait_for_a_free_pool(cluster)
    p.apply(cluster, three_of_two("bert-v1"))
    stable = p.wait_status(cluster, namespace, "clf", "stable Healthy", 90, phase="Healthy")[
        "stableRevision"
    ]
    p.apply(cluster, three_of_two("bert-v2"))

    def settled() -> dict[str, Any] | None:
        st = p.status(cluster, namespace, "clf")
        done = st.get("phase") == "Healthy" and st["stableRevision"] != stable
        return st if done or st.get("phase") == "Aborted" else None

    st = wait_for(settled, 240, "the rollout to complete")
    assert st["phase"] == "Healthy", st.get("abortReason")
    assert min_replicas(cluster, namespace, st["stableRevision"]) == 3
    events = p.events(cluster, namespace, "clf")
    assert "Aborted" not in events
    messages = kubectl_json(
        cluster, "get", "events", "-n", namespace, "--field-selector", "reason=WeightChanged"
    )["items"]
    assert any("on its ready pods, toward 50%" in e["message"] for e in messages)
