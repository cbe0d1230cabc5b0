"""The local control plane itself: each test fails if the piece it names is broken."""

from __future__ import annotations

import json
import socket

import pytest

from pipeline_operator.api import v1alpha1 as api
from tests.harness import Cluster, LocalCluster, Topology, running_cluster
from tests.harness import cluster as harness_cluster
from tests.harness.cluster import process_running
from tests.harness.processes import ClusterError
from tests.harness.topology import FAKE_TAINT, FAKE_TOLERATION
from tests.support import kubectl_json, wait_for

pytestmark = pytest.mark.cluster


def test_kubectl_reaches_the_pinned_apiserver(cluster: Cluster) -> None:
    version = kubectl_json(cluster, "version")
    expected = cluster.tools.versions()["KUBERNETES_VERSION"]
    assert version["serverVersion"]["gitVersion"] == expected
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


@pytest.mark.local_only
def _taints(node: dict) -> list[dict]:
    return [{k: t[k] for k in ("key", "value", "effect")} for t in node["spec"].get("taints", [])]


def _ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


@pytest.mark.local_only
def test_node_pools_come_from_the_topology_file(cluster: Cluster) -> None:
    topology = Topology.load()
    nodes = kubectl_json(cluster, "get", "nodes", "-l", "type=kwok")["items"]
    pools: dict[str, list[dict]] = {}
    for node in nodes:
        pools.setdefault(node["metadata"]["labels"].get(topology.pool_label, ""), []).append(node)
    for pool in topology.pools:
        assert len(pools[pool.name]) == pool.count
        for node in pools[pool.name]:
            assert node["status"]["allocatable"] == pool.capacity
            # kwok's own taint keeps every pod that does not ask for a fake node off it.
            assert _taints(node) == [t.model_dump() for t in [*pool.taints, FAKE_TAINT]]
            assert _ready(node)


@pytest.mark.local_only
def test_real_nodes_are_kubelets_with_the_topologys_pools_taints_and_gpus(
    cluster: Cluster,
) -> None:
    topology = Topology.load()
    nodes = {
        n["metadata"]["name"]: n
        for n in kubectl_json(cluster, "get", "nodes", "-l", "type=real")["items"]
    }
    assert sorted(nodes) == sorted(n.name for n in topology.real_nodes)
    for real in topology.real_nodes:
        node = nodes[real.name]
        assert node["metadata"]["labels"][topology.pool_label] == real.pool
        assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.")
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        assert _taints(node) == [t.model_dump() for t in real.taints]
        for resource, amount in real.extended_resources.items():
            assert node["status"]["allocatable"][resource] == amount
        assert _ready(node)


def test_crd_schema_rejects_an_invalid_pipeline_with_the_field_named(
    cluster: Cluster, namespace: str
) -> None:
    pipeline = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {
            "stages": [
                {
                    "name": "Not_A_DNS_Label",
                    "predictor": {"container": {"image": "example/model:1"}},
                    "scaling": {"minReplicas": 3, "maxReplicas": 1},
                }
            ]
        },
    }
    result = cluster.kubectl("create", "-f", "-", stdin=json.dumps(pipeline), check=False)
    assert result.returncode != 0
    assert "spec.stages[0].name" in result.stderr
    assert "should match" in result.stderr
    assert "spec.stages[0].scaling: Invalid value" in result.stderr
    assert "minReplicas must not exceed maxReplicas" in result.stderr
    assert cluster.kubectl("get", api.PLURAL, "-n", namespace, "-o", "name").stdout == ""


def test_garbage_collector_deletes_owned_objects(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = kubectl_json(cluster, "get", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ],
        },
    }
    cluster.kubectl("create", "-f", "-", stdin=json.dumps(child))
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    def child_gone() -> bool:
        got = cluster.kubectl("get", "configmap", "child", "-n", namespace, check=False)
        return got.returncode != 0 and "NotFound" in got.stderr

    wait_for(child_gone, 60, "the garbage collector to delete the owned ConfigMap")


def _deployment(name: str, namespace: str, replicas: int, gpus: int, tolerate: bool) -> dict:
    """Pods for kwok's fake nodes (an image that exists nowhere), GPU ones tolerating the GPU
    taint when ``tolerate``."""
    container: dict = {"name": "main", "image": "example/server:1"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    pod_spec: dict = {
        "containers": [container],
        "nodeSelector": {"type": "kwok"},
        "tolerations": [FAKE_TOLERATION],
    }
    if tolerate:
        pod_spec["tolerations"].append(
            {
                "key": "nvidia.com/gpu",
                "operator": "Equal",
                "value": "present",
                "effect": "NoSchedule",
            }
        )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def _pods(cluster: Cluster, namespace: str, app: str) -> list[dict]:
    return kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", f"app={app}")["items"]


def _pool_of(cluster: Cluster, node: str) -> str:
    labels = kubectl_json(cluster, "get", "node", node)["metadata"]["labels"]
    return str(labels[Topology.load().pool_label])


@pytest.mark.local_only
def test_gpu_pods_land_on_gpu_nodes_and_others_stay_off(cluster: Cluster, namespace: str) -> None:
    for deployment in (
        _deployment("gpu-job", namespace, replicas=2, gpus=4, tolerate=True),
        _deployment("cpu-job", namespace, replicas=4, gpus=0, tolerate=False),
        _deployment("untolerated-gpu-job", namespace, replicas=1, gpus=1, tolerate=False),
    ):
        cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(deployment))

    def running(app: str, count: int) -> list[dict]:
        pods = _pods(cluster, namespace, app)
        ok = [p for p in pods if p["status"].get("phase") == "Running"]
        return ok if len(ok) == count else []

    for pod in wait_for(lambda: running("gpu-job", 2), 90, "2 GPU pods Running"):
        assert _pool_of(cluster, pod["spec"]["nodeName"]).startswith("gpu-")
    for pod in wait_for(lambda: running("cpu-job", 4), 90, "4 CPU pods Running"):
        assert _pool_of(cluster, pod["spec"]["nodeName"]) == "cpu"

    def unschedulable() -> dict | None:
        for pod in _pods(cluster, namespace, "untolerated-gpu-job"):
            for cond in pod["status"].get("conditions", []):
                if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    return pod
        return None

    pod = wait_for(unschedulable, 90, "the untolerated GPU pod to be reported Unschedulable")
    assert "nodeName" not in pod["spec"]
    message = next(c["message"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert "untolerated taint" in message


def _isvc(namespace: str, scale_metric: str = "concurrency") -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "classifier", "namespace": namespace},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "scaleMetric": scale_metric,
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "pvc://models/bert",
                },
            }
        },
    }


def _graph(namespace: str, router_type: str = "Sequence") -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "pipeline", "namespace": namespace},
        "spec": {
            "nodes": {
                "root": {
                    "routerType": router_type,
                    "steps": [{"name": "classify", "serviceName": "classifier"}],
                }
            }
        },
    }


@pytest.mark.parametrize(
    ("valid", "invalid", "field"),
    [
        (_isvc, lambda ns: _isvc(ns, scale_metric="latency"), "spec.predictor.scaleMetric"),
        (_graph, lambda ns: _graph(ns, router_type="RoundRobin"), "spec.nodes.root.routerType"),
    ],
    ids=["InferenceService", "InferenceGraph"],
)
def test_kserve_crds_accept_valid_objects_and_reject_wrong_enums(
    cluster: Cluster, namespace: str, valid, invalid, field: str
) -> None:
    ok = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=json.dumps(valid(namespace))
    )
    assert "created (server dry run)" in ok.stdout
    bad = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=json.dumps(invalid(namespace)), check=False
    )
    assert bad.returncode != 0
    assert field in bad.stderr
    assert "Unsupported value" in bad.stderr


@pytest.mark.local_only
def test_teardown_leaves_no_process_behind_even_when_the_block_fails(cluster: Cluster) -> None:
    if not isinstance(cluster, LocalCluster):
        pytest.skip("only a local cluster is started and stopped by the harness")
    # A control plane alone: the machine's real nodes (and so KServe's pods) are the session
    # cluster's.
    scratch = LocalCluster(
        cluster.tools, name=f"{cluster.name}-scratch", home=cluster.home, with_kserve=False
    )
    pids: list[int] = []

    def failing_test() -> None:
        with running_cluster(scratch):
            pids.extend(scratch.pids())
            assert scratch.healthy()
            raise RuntimeError("test failure")

    with pytest.raises(RuntimeError, match="test failure"):
        failing_test()
    # etcd, apiserver, controller-manager, scheduler, kwok-controller
    assert len(pids) >= 5
    alive = [pid for pid in pids if process_running(pid)]
    assert alive == []
    assert not scratch.exists()


def test_a_component_that_cannot_start_fails_the_start_at_once_with_its_log(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clusters started at once must not wait out a timeout when one loses a port: the
    harness gives each component a port free at start, and a component that exits while the
    cluster starts fails the start with the end of its log."""
    if not isinstance(cluster, LocalCluster):
        pytest.skip("only a local cluster is started by the harness")
    scratch = LocalCluster(
        cluster.tools, name=f"{cluster.name}-taken", home=cluster.home, with_kserve=False
    )
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Every component is handed the one port already in use, as a second cluster's
        # would be were both to pick the same.
        monkeypatch.setattr(harness_cluster, "free_port", lambda: port)
        with pytest.raises(ClusterError, match="exited while cluster") as failed:
            scratch.up(timeout=240)
    assert "address already in use" in str(failed.value)
    assert not scratch.exists()
    assert [pid for pid in scratch.pids() if process_running(pid)] == []


@pytest.mark.local_only
def test_kserve_webhooks_admit_and_refuse_and_its_runtimes_are_installed(
    cluster: Cluster, namespace: str
) -> None:
    """KServe's own validating webhook answers (a refusal is its message, not a schema's)."""
    runtimes = kubectl_json(cluster, "get", "clusterservingruntimes")["items"]
    huggingface = next(r for r in runtimes if r["metadata"]["name"] == "kserve-huggingfaceserver")
    image = huggingface["spec"]["containers"][0]["image"]
    assert image.startswith("kserve/huggingfaceserver:v0.")  # pinned, not :replace or :latest
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "scaled",
            "namespace": namespace,
            "annotations": {"serving.kserve.io/autoscalerClass": "hpa"},
        },
        "spec": {
            "predictor": {
                "scaleMetric": "rps",
                "containers": [{"name": "kserve-container", "image": "m:1"}],
            }
        },
    }
    refused = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=json.dumps(isvc), check=False
    )
    assert refused.returncode != 0
    assert "inferenceservice.kserve-webhook-server.validator" in refused.stderr
    assert "[rps] is not a supported metric" in refused.stderr
    isvc["spec"]["predictor"]["scaleMetric"] = "cpu"
    admitted = cluster.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(isvc)
    )
    # KServe's defaulting webhook filled in the deployment mode the cluster is configured for.
    annotations = json.loads(admitted.stdout)["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
