"""The demo (``make demo``): pipeline-atomic canaries on the local cluster, decided by metrics.

Starts the local control plane with its real nodes (kubelets that run the kit's images) and
kwok's GPU pools, KServe installed by its chart, and the operator by ``helm install`` of the
kit's chart; applies the text-classifier example with an analysis step, and serves it: the
kubelets start the transformer and predictor pods from the images ``make images`` built,
KServe's router pod routes the revisions, a steady stream of requests flows through the
InferenceGraph's Service, and a Prometheus that finds the stage pods through Kubernetes
service discovery scrapes them. The classifiers are ONNX exports, served on ONNX Runtime by
the predictor image built without torch: the demo's own process needs no torch either. Then
two rollouts:

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
from typing import Any

import yaml

from pipeline_operator.api.v1alpha1 import PLURAL
from tests.harness.cluster import CRD_DIR, DEFAULT_HOME, LocalCluster
from tests.harness.helm import Helm
from tests.harness.models import CORPUS, build_demo_models
from tests.harness.node import NODE_IP
from tests.harness.pod_serving import fit_to_machine, graph_url, install_models
from tests.harness.prometheus import Prometheus
from tests.harness.tools import REPO_ROOT, ToolSet
from tests.harness.topology import Topology
from tests.harness.traffic import Traffic

EXAMPLE = REPO_ROOT / "manifests" / "examples" / "01-text-classifier" / "pipeline.yaml"
NAMESPACE = "demo"
RELEASE = "demo-operator"
DRAIN_SECONDS = 5
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
        body = fit_to_machine(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
        body["metadata"]["namespace"] = NAMESPACE
        stage = body["spec"]["stages"][0]
        stage["transformer"]["storageUri"] = stage["predictor"]["container"]["storageUri"] = model
        # The ONNX exports need no torch: the predictor image built without it serves them.
        stage["predictor"]["container"]["image"] += "-onnx"
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
    parser.add_argument(
        "--cluster",
        help="run on this running local cluster (left up; the demo removes what it added)",
    )
    args = parser.parse_args(argv)

    cluster = LocalCluster(ToolSet.ensure(), name=args.cluster or "demo")
    say(
        "Starting the local cluster (kube-apiserver, etcd, scheduler, controller-manager; "
        "real nodes: kubelets, containerd, kube-proxy, CoreDNS; kwok GPU pools; KServe by "
        "its Helm chart)"
    )
    cluster.up(Topology.load(), sorted(CRD_DIR.glob("*.yaml")))
    helm = Helm(cluster.tools, cluster.kubeconfig, WORKDIR / "helm")
    prometheus = Prometheus(
        cluster.tools, WORKDIR / "prometheus", kubeconfig=cluster.kubeconfig, host=NODE_IP
    )
    try:
        cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        cluster.provide_claim(NAMESPACE)
        say("Building the example's models (a tokenizer and small ONNX classifiers) on its claim")
        install_models(NAMESPACE, build_demo_models(WORKDIR / "models"))
        prometheus.start()
        say("helm install of the operator chart, watching namespace demo")
        installed = helm.install_operator(
            RELEASE,
            NAMESPACE,
            "--set-json",
            f'watch.namespaces=["{NAMESPACE}"]',
            "--set",
            f"settings.drainSeconds={DRAIN_SECONDS}",
        )
        print(installed.stdout.rstrip(), flush=True)
        walk(Demo(cluster, prometheus), cluster)
    finally:
        prometheus.stop()
        if args.cluster:
            helm.run("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
            cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        elif args.keep:
            print(f"\nThe cluster is still up: export KUBECONFIG={cluster.kubeconfig}")
        else:
            say("Stopping the local cluster")
            cluster.down()


def walk(demo: Demo, cluster: LocalCluster) -> None:
    body = demo.pipeline("pvc://models/sentiment-v1")
    name = body["metadata"]["name"]
    say(f"Applying {EXAMPLE.relative_to(REPO_ROOT)}: tokenizer -> classifier on gpu-h100")
    demo.apply(body)
    stable = demo.watch(
        name, None, lambda s: s.get("phase") == "Healthy", 600, "the first revision"
    )
    demo.run("get", "inferencepipelines,inferenceservices,inferencegraphs", "-n", NAMESPACE)
    demo.run("get", "pods", "-n", NAMESPACE, "-o", "wide")

    url = graph_url(cluster, NAMESPACE, name)
    say(
        f"Serving it: requests to the InferenceGraph's Service ({url}), KServe's router pod, "
        "the transformer and predictor pods; Prometheus scraping the pods it discovered"
    )
    with Traffic(url, TEXTS) as traffic:
        say(
            "Rollout 1: a new model (sentiment-v2) as a canary: 20% -> pause 20s -> 50% -> "
            "analysis of its error rate (Prometheus, every 20s) -> promoted"
        )
        demo.apply(demo.pipeline("pvc://models/sentiment-v2"))

        def ended(st: dict[str, Any]) -> bool:
            promoted = st.get("stableRevision") != stable["stableRevision"]
            return st.get("phase") == "Aborted" or (st.get("phase") == "Healthy" and promoted)

        first = demo.watch(name, traffic, ended, 600, "the first rollout to end")
        say(f"Rollout 1 ended: {first.get('phase')}: {first.get('message')}")

        say(
            "Rollout 2: a broken model (trained on 16-token texts, it refuses longer ones) as a "
            "canary: analysis should abort it on its own"
        )
        demo.apply(demo.pipeline("pvc://models/sentiment-short"))
        second = demo.watch(
            name, traffic, lambda s: s.get("phase") == "Aborted", 600, "the broken canary's abort"
        )
        say(f"Rollout 2 ended: Aborted: {second.get('abortReason')}")
        demo.watch(
            name,
            traffic,
            lambda s: all(r.get("rolledOut") for r in s.get("routers", [])),
            120,
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
