"""The demo (``make demo``): a canary rollout of a pipeline on the local cluster, end to end.

Starts the local control plane with its GPU node pools and KServe's own controller manager
and webhooks, runs the operator against it (with the chart's RBAC), applies the text-classifier
example, then changes its model and walks the canary to the end (timed pause, then a promote),
printing the rollout's progress as it happens. KServe makes the Deployments; kwok runs their
pods on the node pools (no containers run).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import yaml

from pipeline_operator.api.v1alpha1 import PLURAL
from pipeline_operator.commands import command_patch
from pipeline_operator.localcluster.chart_identity import ChartIdentity
from pipeline_operator.localcluster.cluster import CRD_DIR, DEFAULT_HOME, LocalCluster
from pipeline_operator.localcluster.operator_process import OperatorProcess
from pipeline_operator.localcluster.tools import REPO_ROOT, ToolSet
from pipeline_operator.localcluster.topology import Topology

EXAMPLE = REPO_ROOT / "manifests" / "examples" / "01-text-classifier" / "pipeline.yaml"
NAMESPACE = "demo"
DRAIN_SECONDS = 5.0


class Demo:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.started = time.monotonic()
        self.last_line = ""

    def say(self, message: str) -> None:
        print(f"\n==> {message}", flush=True)

    def run(self, *args: str) -> None:
        """Run kubectl as a user would, echoing the command and its output."""
        print(f"$ kubectl {' '.join(args)}", flush=True)
        print(self.cluster.kubectl(*args).stdout.rstrip(), flush=True)

    def status(self, name: str) -> dict[str, Any]:
        got = self.cluster.kubectl("get", PLURAL, name, "-n", NAMESPACE, "-o", "json")
        return dict(json.loads(got.stdout).get("status") or {})

    def show(self, st: dict[str, Any]) -> None:
        """Print one line of progress when something changed."""
        traffic = ", ".join(f"{t['revision']}={t['weight']}%" for t in st.get("traffic", []))
        line = (
            f"phase={st.get('phase', '-'):<11} stable={st.get('stableRevision') or '-'} "
            f"canary={st.get('canaryRevision') or '-'} traffic[{traffic}] "
            f"ready={st.get('ready', '-')} | {st.get('message', '')}"
        )
        if line != self.last_line:
            print(f"[{time.monotonic() - self.started:6.1f}s] {line}", flush=True)
            self.last_line = line

    def watch(self, name: str, done: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(name)
            self.show(st)
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
    demo = Demo(cluster)
    demo.say(
        "Starting the local cluster (kube-apiserver, etcd, scheduler, controller-manager, "
        "kwok node pools, KServe's controller manager and webhooks)"
    )
    cluster.up(Topology.load(), sorted(CRD_DIR.glob("*.yaml")))
    operator: OperatorProcess | None = None
    try:
        demo.run("get", "nodes", "-L", "pipelines.inference.dev/pool")
        cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        cluster.provide_claim(NAMESPACE)

        demo.say(
            "Starting the operator (python -m pipeline_operator), watching namespace demo, "
            "as the chart's ServiceAccount"
        )
        identity = ChartIdentity(cluster, NAMESPACE, DEFAULT_HOME)
        operator = OperatorProcess(
            cluster,
            NAMESPACE,
            DEFAULT_HOME / "demo-operator.log",
            drain_seconds=DRAIN_SECONDS,
            kubeconfig=identity.create(),
        )
        operator.start()
        print(f"operator log: {operator.log_path}")
        walk(demo, cluster)
    finally:
        if operator is not None:
            operator.stop()
        if args.keep:
            print(f"\nThe cluster is still up: export KUBECONFIG={cluster.kubeconfig}")
        else:
            demo.say("Stopping the local cluster")
            cluster.down()


def walk(demo: Demo, cluster: LocalCluster) -> None:
    body = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    body["metadata"]["namespace"] = NAMESPACE
    name = body["metadata"]["name"]
    demo.say(f"Applying {EXAMPLE.relative_to(REPO_ROOT)}: tokenizer -> classifier on gpu-h100")
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    stable = demo.watch(name, lambda s: s.get("phase") == "Healthy", 120, "the first revision")
    demo.run("get", "inferencepipelines,inferenceservices,inferencegraphs", "-n", NAMESPACE)
    demo.say("KServe's Deployments for them, and where the scheduler put their pods")
    demo.run("get", "deployments,pods", "-n", NAMESPACE, "-o", "wide")

    demo.say(
        "Rolling out a new model (storageUri sentiment-v1 -> sentiment-v2) as a canary: "
        "20% -> pause 30s -> 50% -> pause until promote"
    )
    model = body["spec"]["stages"][0]["predictor"]["model"]
    model["storageUri"] = model["storageUri"].replace("v1", "v2")
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    demo.watch(
        name,
        lambda s: s.get("phase") == "Paused" and s.get("canaryWeight") == 50,
        180,
        "the canary to reach 50% and wait for promote",
    )
    demo.run("get", "inferencegraph", name, "-n", NAMESPACE, "-o", "jsonpath={.spec.nodes.root}")
    print()

    demo.say(
        f"Promoting: kubectl pipeline promote {name} (the annotation "
        "pipelines.inference.dev/command)"
    )
    patch = command_patch("promote")
    cluster.kubectl("patch", PLURAL, name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
    final = demo.watch(
        name,
        lambda s: (
            s.get("phase") == "Healthy" and s.get("stableRevision") != stable["stableRevision"]
        ),
        120,
        "the canary to become stable",
    )
    demo.say(
        f"Rollout complete: revision {final['stableRevision']} serves 100% "
        f"(was {stable['stableRevision']})"
    )
    demo.run("get", "inferencepipelines,inferenceservices", "-n", NAMESPACE)
    demo.say(
        "The old revision's services stay until KServe has rolled the router out, then "
        f"{DRAIN_SECONDS:.0f}s more (retired) for requests in flight, then go"
    )
    old = f"pipelines.inference.dev/revision={stable['stableRevision']}"
    deadline = time.monotonic() + 60
    while cluster.kubectl(
        "get", "inferenceservices", "-n", NAMESPACE, "-l", old, "-o", "name"
    ).stdout.strip():
        if time.monotonic() > deadline:
            raise SystemExit("demo: the retired services were not deleted within 60s")
        time.sleep(0.5)
    demo.run("get", "inferencepipelines,inferenceservices", "-n", NAMESPACE)
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
