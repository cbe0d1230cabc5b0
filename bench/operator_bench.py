"""Operator benchmark on the local control plane (``make bench``).

Measures, against a real kube-apiserver started for the run:
  1. apply -> all children written, per pipeline (median, p95), pipelines applied one by one;
  2. time for N pipelines applied at once to converge (children + status written);
  3. API writes made by a no-op resync of all of them (operator restarted: must be 0);
  4. operator peak RSS;
  5. the raw limit: the same child objects server-side applied by a plain client loop, so the
     operator's throughput is a ratio of what the apiserver takes.
Prints a table and writes bench-results/operator.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from pipeline_operator.api.v1alpha1 import GROUP, PLURAL, VERSION, InferencePipelineSpec
from pipeline_operator.api.v1alpha1 import InferencePipelineStatus as Status
from pipeline_operator.kube import Kube
from pipeline_operator.naming import revision_of
from pipeline_operator.planner import Owner, plan
from tests.harness import LocalCluster, ToolSet, Topology
from tests.harness.cluster import CRD_DIR
from tests.harness.operator_process import OperatorProcess

RESULTS = Path("bench-results")
NAMESPACE = "bench"
RAW_NAMESPACE = "bench-raw"  # where the plain client loop writes, apart from the operator


def pipeline(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePipeline",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "nodePools": [{"name": "gpu", "nodeSelector": {"pool": "gpu-h100"}}],
            "stages": [
                {"name": "tokenize", "predictor": {"container": {"image": "tok:1"}}},
                {
                    "name": "classify",
                    "predictor": {
                        "model": {
                            "modelFormat": {"name": "huggingface"},
                            "storageUri": f"pvc://models/{name}",
                        }
                    },
                    "resources": {"gpus": 1},
                    "nodePool": "gpu",
                },
            ],
        },
    }


CHILDREN_PER_PIPELINE = 3  # two InferenceServices and the InferenceGraph


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Bench:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = client.CustomObjectsApi(api)
        self.kube = Kube(api, "bench-raw")
        self.operator = OperatorProcess(cluster, NAMESPACE, RESULTS / "operator.log")

    # -- operator process ------------------------------------------------------------------

    def start_operator(self) -> None:
        self.operator.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.counter("pipeline_operator_api_writes_total")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the operator's /metrics did not come up within 30s")

    def stop_operator(self) -> int:
        """Stop the operator; return its peak RSS in KiB."""
        figures = self.operator.figures()
        self.operator.stop()
        return int(figures.peak_rss_mib * 1024) if figures else 0

    def wait_idle(self, quiet: float = 5.0, timeout: float = 300.0) -> None:
        """Wait until the operator has made no API write for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = self.counter("pipeline_operator_api_writes_total"), time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator kept writing for {timeout:.0f}s")
            time.sleep(0.5)
            now = self.counter("pipeline_operator_api_writes_total")
            if now != last:
                last, since = now, time.monotonic()

    def counter(self, name: str) -> float:
        return self.operator.counter(name)

    # -- observations ----------------------------------------------------------------------

    def children_by_pipeline(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for group, version, plural in (
            ("serving.kserve.io", "v1beta1", "inferenceservices"),
            ("serving.kserve.io", "v1alpha1", "inferencegraphs"),
        ):
            items = self.custom.list_namespaced_custom_object(group, version, NAMESPACE, plural)
            for item in items["items"]:
                owner = item["metadata"]["ownerReferences"][0]["name"]
                counts[owner] = counts.get(owner, 0) + 1
        return counts

    def converged(self, names: list[str]) -> int:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
        observed = {
            i["metadata"]["name"]
            for i in listed["items"]
            if (i.get("status") or {}).get("observedGeneration") == 1
        }
        children = self.children_by_pipeline()
        return sum(
            1 for n in names if n in observed and children.get(n, 0) == CHILDREN_PER_PIPELINE
        )

    def resource_versions(self) -> dict[str, str]:
        out = {}
        for group, version, plural in (
            ("serving.kserve.io", "v1beta1", "inferenceservices"),
            ("serving.kserve.io", "v1alpha1", "inferencegraphs"),
            (GROUP, VERSION, PLURAL),
        ):
            for item in self.custom.list_namespaced_custom_object(
                group, version, NAMESPACE, plural
            )["items"]:
                out[f"{plural}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
        return out

    def create(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)

    # -- measurements ----------------------------------------------------------------------

    def latency(self, count: int) -> list[float]:
        """Apply pipelines one at a time; time until all their children exist."""
        samples = []
        for i in range(count):
            name = f"lat-{i:04d}"
            started = time.perf_counter()
            self.create(pipeline(name))
            while self.children_by_pipeline().get(name, 0) < CHILDREN_PER_PIPELINE:
                if time.perf_counter() - started > 60:
                    raise RuntimeError(f"{name}: children not written within 60s")
                time.sleep(0.01)
            samples.append(time.perf_counter() - started)
        return samples

    def converge(self, count: int) -> tuple[float, float]:
        """Create ``count`` pipelines at once; return (seconds to apply, seconds to converge)."""
        names = [f"conv-{i:04d}" for i in range(count)]
        started = time.perf_counter()
        for name in names:
            self.create(pipeline(name))
        applied = time.perf_counter() - started
        last_report = 0.0
        while (done := self.converged(names)) < count:
            elapsed = time.perf_counter() - started
            if elapsed - last_report > 5:
                log(f"  {done}/{count} converged after {elapsed:.0f}s")
                last_report = elapsed
            if elapsed > 900:
                raise RuntimeError(f"only {done}/{count} converged within 900s")
            time.sleep(0.5)
        return applied, time.perf_counter() - started

    def raw_writes(self, count: int) -> float:
        """Server-side apply the planned children of ``count`` pipelines; objects per second."""
        objects = []
        for i in range(count):
            spec = InferencePipelineSpec.model_validate(pipeline(f"raw-{i:04d}")["spec"])
            rev = revision_of(spec)
            status = Status.model_validate(
                {"stableRevision": rev, "traffic": [{"revision": rev, "weight": 100}]}
            )
            owner = Owner(f"raw-{i:04d}", RAW_NAMESPACE, "00000000-0000-0000-0000-000000000000")
            for obj in plan(owner, {rev: spec}, status):
                obj["metadata"].pop("ownerReferences")
                objects.append(obj)
        started = time.perf_counter()
        for obj in objects:
            self.kube.apply(obj)
        return len(objects) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-pipelines", type=int, default=50)
    parser.add_argument("--pipelines", type=int, default=500)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "operator.log").unlink(missing_ok=True)
    cluster = LocalCluster(ToolSet.ensure(), name="bench")
    cluster.down()
    try:
        cluster.up(Topology.load(), sorted(CRD_DIR.glob("*.yaml")))
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.kubectl("create", "namespace", RAW_NAMESPACE)
        bench = Bench(cluster)

        log(f"raw limit: server-side apply of {args.pipelines} pipelines' children")
        raw_rate = bench.raw_writes(args.pipelines)

        bench.start_operator()
        log(f"latency: {args.latency_pipelines} pipelines applied one at a time")
        latency = bench.latency(args.latency_pipelines)
        log(f"convergence: {args.pipelines} pipelines applied at once")
        applied_s, converge_s = bench.converge(args.pipelines)
        total = args.latency_pipelines + args.pipelines
        bench.wait_idle()
        peak_kib = bench.stop_operator()

        log(f"no-op resync: restarting the operator over {total} converged pipelines")
        before = bench.resource_versions()
        bench.start_operator()
        deadline = time.monotonic() + 300
        while bench.counter("pipeline_operator_reconciles_total") < total:
            if time.monotonic() > deadline:
                raise RuntimeError("the resync did not reconcile every pipeline within 300s")
            time.sleep(0.5)
        time.sleep(2)
        resync_writes = bench.counter("pipeline_operator_api_writes_total")
        changed = sum(1 for k, v in bench.resource_versions().items() if before.get(k) != v)
        resync_peak_kib = bench.stop_operator()
    finally:
        cluster.down()

    operator_rate = args.pipelines * CHILDREN_PER_PIPELINE / converge_s
    results = {
        "apply_to_children_median_s": statistics.median(latency),
        "apply_to_children_p95_s": percentile(latency, 0.95),
        "pipelines": args.pipelines,
        "create_all_s": applied_s,
        "converge_s": converge_s,
        "operator_children_per_s": operator_rate,
        "raw_apply_objects_per_s": raw_rate,
        "operator_vs_raw_ratio": operator_rate / raw_rate,
        "noop_resync_api_writes": resync_writes,
        "noop_resync_objects_changed": changed,
        "operator_peak_rss_mib": max(peak_kib, resync_peak_kib) / 1024,
    }
    (RESULTS / "operator.json").write_text(json.dumps(results, indent=2))
    width = max(len(k) for k in results)
    print("\noperator benchmark (local kube-apiserver, 2 cores)")
    for key, value in results.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")


if __name__ == "__main__":
    main()
