"""The demo (``make demo``): pipeline-atomic canaries on the local cluster, decided by metrics.

Starts the local control plane with its GPU node pools and KServe's own controller manager
and webhooks, runs the operator (with the chart's RBAC), applies the text-classifier example
with an analysis step, and serves it: every stage runs from the Deployment KServe made for
it (as a local process, kwok runs no containers) behind KServe's router, and a steady stream
of requests flows through it while Prometheus scrapes the stages. The classifiers are ONNX
exports, which the kit's classifier serves on ONNX Runtime: the demo needs no torch. Then two
rollouts:

1. a new model as a canary: 20% -> pause -> 50% -> analysis of its error rate -> promoted;
2. a broken model (it refuses texts over 16 tokens): analysis aborts it on its own.

Every few seconds it prints the share of requests each revision answered, measured from the
responses, beside the weights the operator set, and the analysis measurements.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipeline_operator.api.v1alpha1 import PLURAL
from tests.harness.chart_identity import ChartIdentity
from tests.harness.cluster import CRD_DIR, DEFAULT_HOME, LocalCluster
from tests.harness.models import CORPUS, build_demo_models
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import Prometheus
from tests.harness.serving import LocalServing
from tests.harness.tools import REPO_ROOT, ToolSet
from tests.harness.topology import Topology
from tests.harness.traffic import Traffic

EXAMPLE = REPO_ROOT / "manifests" / "examples" / "01-text-classifier" / "pipeline.yaml"
NAMESPACE = "demo"
DRAIN_SECONDS = 5.0
WORKDIR = DEFAULT_HOME / "demo"
TEXTS = [*CORPUS, *(f"{a} but {b}" for a in CORPUS[:4] for b in CORPUS[8:])]
ERROR_RATE = (
    '(sum(rate(pipeline_stage_requests_total{pipeline="{{pipeline}}",revision="{{revision}}",'
    'outcome=~"internal|invalid_input"}[20s])) or vector(0)) / max(sum by (stage, component) '
    '(rate(pipeline_stage_requests_total{pipeline="{{pipeline}}",revision="{{revision}}"}[20s])))'
)


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


class Demo:
    def __init__(self, cluster: LocalCluster, prometheus: Prometheus) -> None:
        self.cluster = cluster
        self.prometheus = prometheus
        self.started = time.monotonic()
        self.last_line = ""
        self.shown: set[str] = set()

    def run(self, *args: str) -> None:
        """Run kubectl as a user would, echoing the command and its output."""
        print(f"$ kubectl {' '.join(args)}", flush=True)
        print(self.cluster.kubectl(*args).stdout.rstrip(), flush=True)

    def pipeline(self, model: str) -> dict[str, Any]:
        """The example, with its model at ``model`` and an analysis of the canary."""
        body = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        body["metadata"]["namespace"] = NAMESPACE
        stage = body["spec"]["stages"][0]
        stage["transformer"]["storageUri"] = stage["predictor"]["container"]["storageUri"] = model
        analysis = {
            "address": self.prometheus.address,
            "metrics": [
                {
                    "name": "error-rate",
                    "query": ERROR_RATE,
                    "successCondition": "result < 0.05",
                    "interval": "20s",
                    "count": 2,
                }
            ],
        }
        steps = [
            {"setWeight": 20},
            {"pause": {"duration": "20s"}},
            {"setWeight": 50},
            {"analysis": analysis},
        ]
        body["spec"]["rollout"] = {"canary": {"steps": steps}}
        return dict(body)

    def apply(self, body: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(body))

    def status(self, name: str) -> dict[str, Any]:
        got = self.cluster.kubectl("get", PLURAL, name, "-n", NAMESPACE, "-o", "json")
        return dict(json.loads(got.stdout).get("status") or {})

    def show(self, st: dict[str, Any], traffic: Traffic | None) -> None:
        """One line when the rollout moves, one every 5 s with the measured traffic."""
        elapsed = time.monotonic() - self.started
        weights = ", ".join(f"{t['revision']}={t['weight']}%" for t in st.get("traffic", []))
        line = f"phase={st.get('phase', '-'):<11} weights[{weights}] | {st.get('message', '')}"
        if line != self.last_line:
            print(f"[{elapsed:6.1f}s] {line}", flush=True)
            self.last_line = line
        for m in (st.get("analysis") or {}).get("measurements", []):
            key = f"{m['metric']}@{m['at']}"
            if key not in self.shown:
                self.shown.add(key)
                verdict = "ok" if m["success"] else "FAILED"
                print(f"[{elapsed:6.1f}s]   analysis {m['metric']}: {m.get('message')} [{verdict}]")
        window = traffic.since(time.monotonic() - 5) if traffic else []
        if int(elapsed) % 5 == 0 and window and f"t{int(elapsed)}" not in self.shown:
            self.shown.add(f"t{int(elapsed)}")
            shares = ", ".join(
                f"{rev}={share:.0%}" for rev, share in sorted(Traffic.shares(window).items())
            )
            failed = sum(a.status != 200 for a in window)
            print(
                f"[{elapsed:6.1f}s]   measured over the last 5s: answered by [{shares}] "
                f"of {len(window)} requests, {failed} failed"
            )

    def watch(
        self,
        name: str,
        traffic: Traffic | None,
        done: Callable[[dict[str, Any]], bool],
        timeout: float,
        what: str,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(name)
            self.show(st, traffic)
            if done(st):
                return st
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the cluster running at the end (make cluster-down stops it)",
    )
    args = parser.parse_args(argv)

    cluster = LocalCluster(ToolSet.ensure(), name="demo")
    say(
        "Starting the local cluster (kube-apiserver, etcd, scheduler, controller-manager, "
        "kwok node pools, KServe's controller manager and webhooks)"
    )
    cluster.up(Topology.load(), sorted(CRD_DIR.glob("*.yaml")))
    operator: OperatorProcess | None = None
    prometheus = Prometheus(cluster.tools, WORKDIR / "prometheus")
    try:
        cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        cluster.provide_claim(NAMESPACE)
        say("Building the example's models locally (a tokenizer and small ONNX classifiers)")
        models = build_demo_models(WORKDIR / "models")
        prometheus.start()
        say("Starting the operator, watching namespace demo, as the chart's ServiceAccount")
        identity = ChartIdentity(cluster, NAMESPACE, WORKDIR)
        operator = OperatorProcess(
            cluster,
            NAMESPACE,
            WORKDIR / "operator.log",
            drain_seconds=DRAIN_SECONDS,
            kubeconfig=identity.create(),
        )
        operator.start()
        print(f"operator log: {operator.log_path}")
        walk(Demo(cluster, prometheus), cluster, models, prometheus)
    finally:
        if operator is not None:
            operator.stop()
        prometheus.stop()
        if args.keep:
            print(f"\nThe cluster is still up: export KUBECONFIG={cluster.kubeconfig}")
        else:
            say("Stopping the local cluster")
            cluster.down()


def walk(
    demo: Demo, cluster: LocalCluster, models: dict[str, Path], prometheus: Prometheus
) -> None:
    body = demo.pipeline("pvc://models/sentiment-v1")
    name = body["metadata"]["name"]
    say(f"Applying {EXAMPLE.relative_to(REPO_ROOT)}: tokenizer -> classifier on gpu-h100")
    demo.apply(body)
    stable = demo.watch(
        name, None, lambda s: s.get("phase") == "Healthy", 120, "the first revision"
    )
    demo.run("get", "inferencepipelines,inferenceservices,inferencegraphs", "-n", NAMESPACE)
    demo.run("get", "pods", "-n", NAMESPACE, "-o", "wide")

    say(
        "Serving it: each stage from the Deployment KServe made, KServe's router in front, "
        "requests flowing, Prometheus scraping the stages"
    )
    serving = LocalServing(
        cluster, NAMESPACE, models, WORKDIR / "serving", name, on_change=prometheus.scrape
    )
    with serving, Traffic(serving, TEXTS) as traffic:
        say(
            "Rollout 1: a new model (sentiment-v2) as a canary: 20% -> pause 20s -> 50% -> "
            "analysis of its error rate (Prometheus, every 20s) -> promoted"
        )
        demo.apply(demo.pipeline("pvc://models/sentiment-v2"))

        def ended(st: dict[str, Any]) -> bool:
            promoted = st.get("stableRevision") != stable["stableRevision"]
            return st.get("phase") == "Aborted" or (st.get("phase") == "Healthy" and promoted)

        first = demo.watch(name, traffic, ended, 300, "the first rollout to end")
        say(f"Rollout 1 ended: {first.get('phase')}: {first.get('message')}")

        say(
            "Rollout 2: a broken model (trained on 16-token texts, it refuses longer ones) as a "
            "canary: analysis should abort it on its own"
        )
        demo.apply(demo.pipeline("pvc://models/sentiment-short"))
        second = demo.watch(
            name, traffic, lambda s: s.get("phase") == "Aborted", 300, "the broken canary's abort"
        )
        say(f"Rollout 2 ended: Aborted: {second.get('abortReason')}")
        demo.watch(
            name,
            traffic,
            lambda s: all(r.get("rolledOut") for r in s.get("routers", [])),
            60,
            "the router to serve stable alone",
        )
        settle = time.monotonic() + 10
        while time.monotonic() < settle:
            demo.show(demo.status(name), traffic)
            time.sleep(0.5)
    demo.run(
        "get",
        "events",
        "-n",
        NAMESPACE,
        "--field-selector",
        f"involvedObject.kind=InferencePipeline,involvedObject.name={name}",
        "--sort-by=.metadata.creationTimestamp",
    )


if __name__ == "__main__":
    main()
