"""Every numbered example and the README's snippet, served for real: the operator makes its
KServe objects, KServe's controller its Deployments, the real nodes' kubelets start the kit's
images, and requests go through the InferenceGraph's Service, KServe's router pod, the
transformer pod and the predictor pods. Their answers are checked against the models."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests import pipelines as p
from tests.dataplane.harness import Baseline
from tests.e2e.labelled import TEXTS
from tests.harness import Cluster
from tests.harness.models import CORPUS
from tests.harness.pod_serving import fit_to_machine, graph_url, install_models
from tests.support import kubectl_json, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.local_only]

ROOT = Path(__file__).parents[2]


def through_gateway(example: Path) -> bool:
    """Whether an example routes through a Gateway (test_experiments.py runs it, with one)."""
    rollout = yaml.safe_load(example.read_text())["spec"].get("rollout", {})
    return "gatewayAPI" in rollout.get("trafficRouting", {})


EXAMPLES = [
    e
    for e in sorted((ROOT / "manifests" / "examples").glob("*/pipeline.yaml"))
    if not through_gateway(e)
]
README = ROOT / "README.md"
# Pods start from images on a 2-core machine: a torch server takes tens of seconds to load.
READY_TIMEOUT = 600


def readme_pipeline() -> dict:
    """The pipeline of the README's first YAML snippet."""
    snippet = README.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    return dict(yaml.safe_load(snippet))


def predict(url: str, instances: list) -> dict:
    response = httpx.post(url, json={"instances": instances}, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def check_text_classifier(url: str, models: dict[str, Path]) -> None:
    baseline = Baseline(models["pvc://models/sentiment-v1"])
    answer = predict(url, TEXTS)["predictions"]
    for prediction, (label, score) in zip(answer, baseline.top1(TEXTS), strict=True):
        assert (prediction["label"], len(prediction["labels"])) == (label, 3)
        assert prediction["score"] == pytest.approx(score, abs=1e-4)


def check_ensemble(url: str, models: dict[str, Path]) -> None:
    bert = Baseline(models["pvc://models/bert-sentiment"]).probabilities(TEXTS)
    roberta = Baseline(models["pvc://models/roberta-sentiment"]).probabilities(TEXTS)
    answer = predict(url, TEXTS)
    assert answer["members"] == ["bert", "roberta"]
    for prediction, a, b in zip(answer["predictions"], bert, roberta, strict=True):
        mean = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
        assert prediction["probabilities"] == pytest.approx(mean, abs=1e-4)


def check_cascade(url: str, models: dict[str, Path]) -> None:
    small = Baseline(models["pvc://models/distilbert"])
    large = Baseline(models["pvc://models/deberta-large"])
    escalated = 0
    for text, (small_label, small_score), (large_label, large_score) in zip(
        TEXTS, small.top1(TEXTS), large.top1(TEXTS), strict=True
    ):
        [prediction] = predict(url, [text])["predictions"]
        answered_by = {key.split("/")[0].split("-")[1] for key in prediction["revisions"]}
        if small_score < 0.9:  # unsure: the large model answers, from the original text
            escalated += 1
            assert answered_by == {"large"}, (text, prediction)
            assert (prediction["label"], prediction["score"]) == (
                large_label,
                pytest.approx(large_score, abs=1e-4),
            )
        else:
            assert answered_by == {"small"}, (text, prediction)
            assert prediction["confident"] is True and prediction["label"] == small_label
    assert 0 < escalated < len(TEXTS), "the cascade needs both kinds of answers to test"


def check_retrieval(url: str, models: dict[str, Path]) -> None:
    questions = [CORPUS[3], CORPUS[7]]
    answer = predict(url, questions)["predictions"]
    for question, prediction in zip(questions, answer, strict=True):
        [best, *rest] = prediction["documents"]
        assert best["text"] == question and best["score"] == pytest.approx(1.0, abs=1e-4)
        assert len(rest) == 2 and all(d["score"] < best["score"] for d in rest)


CHECKS = {
    "01-text-classifier": check_text_classifier,
    "02-ensemble": check_ensemble,
    "03-cascade": check_cascade,
    "04-retrieval": check_retrieval,
}


def stage_pods(cluster: Cluster, namespace: str) -> list[dict]:
    """The pods serving the namespace's InferenceServices and graphs."""
    pods = kubectl_json(cluster, "get", "pods", "-n", namespace)["items"]
    return [
        pod
        for pod in pods
        if {"serving.kserve.io/inferenceservice", "serving.kserve.io/inferencegraph"}
        & set(pod["metadata"].get("labels", {}))
    ]


def check_placement(cluster: Cluster, body: dict, pods: list[dict]) -> None:
    """Each predictor on its stage's pool, each transformer on a CPU node off the GPU pools."""
    pool_label = "pipelines.inference.dev/pool"
    pool_of_node = {
        n["metadata"]["name"]: n["metadata"]["labels"].get(pool_label)
        for n in kubectl_json(cluster, "get", "nodes")["items"]
    }
    selectors = {
        pool["name"]: pool.get("nodeSelector", {}).get(pool_label)
        for pool in body["spec"].get("nodePools", [])
    }
    gpu_pools = {
        selectors[s["nodePool"]]
        for s in body["spec"]["stages"]
        if s.get("resources", {}).get("gpus") and s.get("nodePool")
    }
    stages = {s["name"]: s for s in body["spec"]["stages"]}
    for pod in pods:
        labels = pod["metadata"]["labels"]
        stage = stages.get(labels.get("pipelines.inference.dev/stage", ""))
        if stage is None:
            continue  # the router
        where = pool_of_node[pod["spec"]["nodeName"]]
        if labels.get("component") == "transformer":
            assert where not in gpu_pools, (pod["metadata"]["name"], where)
        elif stage.get("nodePool"):
            assert where == selectors[stage["nodePool"]], (pod["metadata"]["name"], where)


@pytest.mark.parametrize(
    "example", [*EXAMPLES, README], ids=lambda e: "README" if e == README else e.parent.name
)
def test_example_serves_through_pods(
    cluster: Cluster,
    namespace: str,
    operator_release: str,
    example: Path,
    example_models: dict[str, Path],
) -> None:
    body = readme_pipeline() if example == README else yaml.safe_load(example.read_text())
    body["metadata"]["namespace"] = namespace
    install_models(namespace, example_models)
    p.apply(cluster, fit_to_machine(body))
    name = body["metadata"]["name"]
    st = p.wait_status(
        cluster, namespace, name, f"{name} Healthy", timeout=READY_TIMEOUT, phase="Healthy"
    )
    stages = len(body["spec"]["stages"])
    assert st["ready"] == f"{stages}/{stages}"
    # Every serving pod is a container the real nodes started from the kit's (or KServe's)
    # images, none a kwok pod.
    pods = stage_pods(cluster, namespace)
    nodes = {pod["spec"]["nodeName"] for pod in pods}
    real = {
        n["metadata"]["name"]
        for n in kubectl_json(cluster, "get", "nodes", "-l", "type=real")["items"]
    }
    assert pods and nodes <= real, f"pods on {nodes}, real nodes are {real}"
    for pod in pods:
        statuses = pod["status"].get("containerStatuses") or []
        assert statuses and all(
            s.get("containerID", "").startswith("containerd://") for s in statuses
        )
    check_placement(cluster, body, pods)
    url = wait_for(lambda: graph_url(cluster, namespace, name), 60, f"the Service of {name}")
    # Ready pods are not yet routable Services: kube-proxy programs a new Service's rules on
    # its own time (seconds on this 2-core machine), and the router's first calls may go out
    # before. Wait for a first answer, then check every answer.
    wait_for(lambda: answers(url), 90, f"{name} to answer through its Services")
    check = check_text_classifier if example == README else CHECKS[example.parent.name]
    check(url, example_models)


def answers(url: str) -> bool:
    try:
        return httpx.post(url, json={"instances": TEXTS[:1]}, timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


def one_stage(namespace: str, name: str, container: dict) -> dict:
    """A pipeline of one custom container on the real ``cpu`` node."""
    return {
        "apiVersion": "pipelines.inference.dev/v1alpha1",
        "kind": "InferencePipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodePools": [{"name": "cpu", "nodeSelector": {"pipelines.inference.dev/pool": "cpu"}}],
            "stages": [
                {
                    "name": "m",
                    "predictor": {"container": container},
                    "resources": {"cpu": "100m", "memory": "512Mi"},
                    "nodePool": "cpu",
                }
            ],
        },
    }


def test_a_container_that_cannot_start_is_named_in_status_and_an_event(
    cluster: Cluster, namespace: str, operator_release: str
) -> None:
    """No registry is reachable: an image no node holds never pulls. The kubelet's reason
    reaches the stage's status message and a Warning Event, as a scheduling failure does."""
    p.apply(cluster, one_stage(namespace, "stuck", {"image": "example.invalid/server:1"}))

    def stuck() -> dict | None:
        revisions = p.status(cluster, namespace, "stuck").get("revisions") or [{}]
        stage = (revisions[0].get("stages") or [{}])[0]
        return stage if "ImagePull" in stage.get("containerError", "") else None

    stage = wait_for(stuck, 240, "the stage's container error in status")
    assert stage["containerError"].startswith("kserve-container: ")
    assert stage["containerError"] in stage["message"]
    wait_for(
        lambda: "ContainersFailing" in p.events(cluster, namespace, "stuck"),
        60,
        "a ContainersFailing Event",
    )


def test_a_container_may_be_told_to_run_as_root(
    cluster: Cluster, namespace: str, operator_release: str
) -> None:
    """A third-party server image that needs root: securityContext says so, and the kubelet
    starts it as root (the restricted profile's other settings stay)."""
    container = {
        "image": "ghcr.io/inference-pipelines/predictors:0.1.0-onnx",
        "command": [
            "python",
            "-c",
            "import os, time; print(os.getuid(), flush=True); time.sleep(3600)",
        ],
        "securityContext": {"runAsNonRoot": False, "runAsUser": 0},
    }
    p.apply(cluster, one_stage(namespace, "root", container))

    def started() -> list[dict] | None:
        pods = kubectl_json(
            cluster, "get", "pods", "-n", namespace, "-l", "serving.kserve.io/inferenceservice"
        )["items"]
        running = [
            pod
            for pod in pods
            if any(
                (s.get("state") or {}).get("running")
                for s in pod["status"].get("containerStatuses") or []
            )
        ]
        return running or None

    [pod] = wait_for(started, 240, "the root container running")
    [main] = [c for c in pod["spec"]["containers"] if c["name"] == "kserve-container"]
    assert main["securityContext"]["runAsUser"] == 0
    assert "runAsNonRoot" not in main["securityContext"]
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}

    def printed_uid() -> str | None:
        # Until the runtime has opened the container's log file, the kubelet answers with
        # its own message ("failed to try resolving symlinks ...") in place of the log.
        logs = cluster.kubectl(
            "logs", "-n", namespace, pod["metadata"]["name"], "-c", "kserve-container"
        ).stdout.split()
        return logs[0] if logs and logs[0].isdigit() else None

    assert wait_for(printed_uid, 60, "the container's uid in its log") == "0"
