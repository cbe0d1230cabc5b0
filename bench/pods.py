"""The cost of real containers and networking: the text-classifier example served by pods on
the local cluster's real nodes against the same servers as local processes.

Starts the local cluster (``make cluster-up`` leaves one up; ``--cluster`` reuses it), installs
the operator with its chart, applies the example (ONNX classifier, scaled to the machine) and
records, per stage, the time from pod creation to Ready. Then the same tokenizer -> classifier
pipeline runs as local processes behind KServe's router binary, and both are sent the same
sequential requests in alternating turns: p50 and p99 of each, and their ratio. Prints a table
and writes ``bench-results/pods.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import httpx
import yaml

from pipeline_operator.core.rollout.clock import parse
from tests.dataplane.harness import router, stage, start_all
from tests.harness.cluster import CRD_DIR, DEFAULT_HOME, LocalCluster
from tests.harness.helm import Helm
from tests.harness.models import CORPUS, build_demo_models
from tests.harness.pod_serving import fit_to_machine, graph_url, install_models
from tests.harness.tools import REPO_ROOT, ToolSet
from tests.harness.topology import Topology

EXAMPLE = REPO_ROOT / "manifests" / "examples" / "01-text-classifier" / "pipeline.yaml"
NAMESPACE = "bench-pods"
WORKDIR = DEFAULT_HOME / "bench-pods"
RESULTS = REPO_ROOT / "bench-results"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stamp(value: str) -> float:
    return parse(value).timestamp()


def start_to_ready(cluster: LocalCluster) -> dict[str, float]:
    """Per pod (by component), seconds from creation to its Ready condition."""
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)
    out = {}
    for pod in pods["items"]:
        labels = pod["metadata"].get("labels", {})
        component = labels.get("component") or (
            "router" if "serving.kserve.io/inferencegraph" in labels else None
        )
        ready = next((c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"), None)
        if component and ready and ready["status"] == "True":
            out[component] = stamp(ready["lastTransitionTime"]) - stamp(
                pod["metadata"]["creationTimestamp"]
            )
    return out


def latencies(url: str, count: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as http:
        for i in range(count):
            began = time.perf_counter()
            response = http.post(url, json={"instances": [CORPUS[i % len(CORPUS)]]})
            response.raise_for_status()
            out.append((time.perf_counter() - began) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cluster", default="bench-pods", help="local cluster to use or start")
    parser.add_argument("--requests", type=int, default=200, help="requests per turn")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the cluster up at the end")
    args = parser.parse_args()
    tools = ToolSet.ensure()
    cluster = LocalCluster(tools, name=args.cluster)
    cluster.up(Topology.load(), sorted(CRD_DIR.glob("*.yaml")))
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    cluster.provide_claim(NAMESPACE)
    models = build_demo_models(WORKDIR / "models")
    install_models(NAMESPACE, models)
    helm = Helm(tools, cluster.kubeconfig, WORKDIR / "helm")
    helm.install_operator(
        "bench-operator", NAMESPACE, "--set-json", f'watch.namespaces=["{NAMESPACE}"]', replicas=1
    )
    body = fit_to_machine(yaml.safe_load(EXAMPLE.read_text()))
    body["metadata"]["namespace"] = NAMESPACE
    body["spec"]["stages"][0]["predictor"]["container"]["image"] += "-onnx"
    began = time.monotonic()
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    cluster.kubectl(
        "wait", "--for=jsonpath={.status.phase}=Healthy", "ipl/text-classifier",
        "-n", NAMESPACE, "--timeout=600s", timeout=620,
    )  # fmt: skip
    healthy = time.monotonic() - began
    ready = start_to_ready(cluster)
    pods_url = graph_url(cluster, NAMESPACE, "text-classifier")

    model = models["pvc://models/sentiment-v1"]
    logs = WORKDIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    clf = stage("clf", "pipeline_predictors.classifier", ["--model_dir", str(model)], logs)
    tf = stage(
        "tok", "pipeline_transformers.tokenizer",
        ["--model_dir", str(model), "--predictor_host", f"127.0.0.1:{clf.port}", "--top_k=3"],
        logs, model_name=clf.model_name,
    )  # fmt: skip
    graph = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [{"name": "classifier", "serviceUrl": tf.v1_url, "dependency": "Hard"}],
            }
        }
    }
    samples: dict[str, list[float]] = {"pods": [], "local processes": []}
    start_all([clf, tf])
    try:
        with router(tools.binary("router"), graph, logs) as local_url:
            paths = (("pods", pods_url), ("local processes", local_url))
            for _, url in paths:
                latencies(url, 20)  # warm-up
            for turn in range(args.turns):
                for where, url in paths:
                    log(f"turn {turn + 1}: {args.requests} requests to the {where}")
                    samples[where] += latencies(url, args.requests)
    finally:
        clf.stop()
        tf.stop()
    figures: dict[str, Any] = {
        "healthy_s": healthy,
        "pod_start_to_ready_s": ready,
        "latency_ms": {
            where: {"p50": percentile(v, 50), "p99": percentile(v, 99), "n": len(v)}
            for where, v in samples.items()
        },
    }
    local, pods = figures["latency_ms"]["local processes"], figures["latency_ms"]["pods"]
    figures["ratio"] = {"p50": pods["p50"] / local["p50"], "p99": pods["p99"] / local["p99"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pods.json").write_text(json.dumps(figures, indent=2))
    print(f"pipeline Healthy {healthy:.1f}s after apply")
    for component, seconds in sorted(ready.items()):
        print(f"  {component:<12} pod created -> Ready {seconds:5.1f}s")
    print(f"{'path':<18} {'p50 ms':>8} {'p99 ms':>8}")
    for where, row in figures["latency_ms"].items():
        print(f"{where:<18} {row['p50']:8.2f} {row['p99']:8.2f}")
    ratio = figures["ratio"]
    print(f"pods / local processes: p50 {ratio['p50']:.2f}x, p99 {ratio['p99']:.2f}x")
    helm.run("uninstall", "bench-operator", "--namespace", NAMESPACE, check=False)
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    if not args.keep:
        cluster.down()


if __name__ == "__main__":
    main()
