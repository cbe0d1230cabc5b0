"""Operator benchmark on the local control plane with KServe (``make bench``).

Measures, against a real kube-apiserver with KServe's controller manager and webhooks (every
child goes through them, and KServe starts a Deployment and a pod per stage and per router):
  1. the raw limit: the children of N pipelines server-side applied by a plain client loop;
  2. N pipelines (3 stages each) applied at once: the operator's child-write throughput, as
     a ratio of that limit, and the time until they converge (children + status);
  3. the same for a large batch (2,000), then apply -> all children written, one pipeline at
     a time, with them all present;
  4. an operator restart over them all: time until every pipeline is reconciled, and the
     API writes it makes (must be 0);
  5. a leader handover: two replicas, the leader killed, time until the standby leads;
  6. the operator's peak RSS, its RSS after each step against the pipelines present, its
     API requests per reconcile, and what KServe's manager cost;
  7. the operator's heap by term (``bench/memory.py``, synthetic pipelines of the same shape).
``--pipelines``, ``--large`` and ``--stages`` set the scale and the shape (``--large 9450``:
10,000 pipelines in all). Prints a table with the targets (those for 10,000 pipelines past
2,550), writes bench-results/operator.json and operator.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config

from bench import memory
from bench.progress import Progress
from pipeline_operator.api.v1alpha1 import GROUP, PLURAL, VERSION, InferencePipelineSpec
from pipeline_operator.api.v1alpha1 import InferencePipelineStatus as Status
from pipeline_operator.core.naming import revision_of
from pipeline_operator.core.planner import Owner, plan
from pipeline_operator.k8s.client import Kube
from pipeline_operator.settings import OperatorSettings
from tests.harness import LocalCluster, ToolSet, Topology
from tests.harness.cluster import CRD_DIR
from tests.harness.operator_process import OperatorProcess
from tests.harness.processes import ProcessFigures
from tests.harness.topology import FAKE_TOLERATION

RESULTS = Path("bench-results")
TOPOLOGY = Path(__file__).with_name("topology.yaml")
NAMESPACE = "bench"
RAW_NAMESPACE = "bench-raw"  # where the plain client loop writes, apart from the operator
POOL = "pipelines.inference.dev/pool"
TARGETS = {
    "throughput_ratio": 0.8,
    "apply_to_children_p95_s": 0.5,
    "restart_api_writes": 0,
    "restart_ready_s": 120,
    "peak_rss_mib": 250,
    "handover_s": 30,
}
LARGE_SCALE, LARGE_PEAK_RSS_MIB = 2550, 800
"""Past this many pipelines, the peak RSS target is the one for 10,000."""
BENCH_DEADLINE = 86400
"""progressDeadlineSeconds of the benchmark's pipelines (the most the API allows)."""
HEAP_PIPELINES = 200
"""Synthetic pipelines ``bench/memory.py`` attributes the heap over."""


# Thousands of pipelines' pods go to kwok's fake nodes (their routers too: OperatorProcess
# places them there); the real node runs KServe's controller manager alone.
FAKE_CPU = {"nodeSelector": {POOL: "cpu", "type": "kwok"}, "tolerations": [FAKE_TOLERATION]}


def pipeline(name: str, namespace: str = NAMESPACE, stages: int = 3) -> dict[str, Any]:
    """Tokenizer (CPU) -> classifier (one GPU) -> post-processing (CPU); with ``stages`` other
    than 3, as many classifiers in sequence between them (1: the classifier alone)."""
    taint = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}
    gpu = {
        "name": "gpu",
        "nodeSelector": {POOL: "gpu-h100", "type": "kwok"},
        "tolerations": [{**taint, "effect": "NoSchedule"}, FAKE_TOLERATION],
    }
    model = {"modelFormat": {"name": "huggingface"}, "storageUri": f"pvc://models/{name}"}
    classify = {
        "predictor": {"model": model},
        "nodePool": "gpu",
        "resources": {"gpus": 1},
    }
    models = max(1, stages - 2)
    steps = [
        {"name": "classify" if models == 1 else f"classify-{i}", **classify} for i in range(models)
    ]
    if stages >= 2:
        tok = {"name": "tokenize", "predictor": {"container": {"image": "tok:1"}}}
        steps.insert(0, {**tok, "nodePool": "cpu"})
    if stages >= 3:
        post = {"name": "label", "predictor": {"container": {"image": "post:1"}}}
        steps.append({**post, "nodePool": "cpu"})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodePools": [gpu, {"name": "cpu", **FAKE_CPU}],
            "stages": steps,
            # KServe's manager, on cores it shares with the apiserver and the benchmark, can
            # take far longer than the default 600 s to make thousands of InferenceServices
            # Ready (it reconciles them one after another). The benchmark measures the
            # operator: a deadline passed mid-run would mark every pipeline Degraded and turn
            # the restart and handover into a burst of status writes.
            "rollout": {"progressDeadlineSeconds": BENCH_DEADLINE},
        },
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load() -> str:
    """The machine's load averages (1, 5, 15 minutes)."""
    return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])


def wait(probe: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Operator(OperatorProcess):
    """The operator process, with what the benchmark reads of its metrics."""

    def start_and_serve(self) -> float:
        """Start it; return when its /metrics answers (monotonic start time)."""
        started = time.monotonic()
        self.start()
        wait(lambda: self.serving(), 60, "the operator's /metrics")
        return started

    def serving(self) -> bool:
        try:
            self.counter("pipeline_operator_api_writes_total")
        except OSError:
            return False
        return True

    def totals(self) -> dict[str, float]:
        names = ("api_writes_total", "api_reads_total", "reconciles_total", "leader")
        return {n: self.counter(f"pipeline_operator_{n}") for n in names}

    def idle(self, quiet: float = 5.0, timeout: float = 900.0) -> None:
        """Wait until it has made no API write for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = self.counter("pipeline_operator_api_writes_total"), time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator kept writing for {timeout:.0f}s")
            time.sleep(0.5)
            now = self.counter("pipeline_operator_api_writes_total")
            if now != last:
                last, since = now, time.monotonic()

    def peak_rss_mib(self) -> float:
        figures = self.figures()
        return figures.peak_rss_mib if figures else 0.0


class Bench:
    def __init__(self, cluster: LocalCluster, stages: int) -> None:
        self.cluster = cluster
        self.stages = stages
        self.children = stages + 1  # its InferenceServices and the InferenceGraph
        self.api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = client.CustomObjectsApi(self.api)
        self.progress = Progress(self.api, NAMESPACE, self.children)
        self.peak_rss = 0.0
        self.memory: list[dict[str, Any]] = []
        """The operator's RSS after each step, with the pipelines present."""
        self.logs = 0

    def operator(self, *args: str) -> Operator:
        self.logs += 1
        log_path = RESULTS / f"operator-{self.logs}.log"
        log_path.unlink(missing_ok=True)
        return Operator(self.cluster, NAMESPACE, log_path, extra_args=args)

    def stop(self, operator: Operator) -> None:
        self.peak_rss = max(self.peak_rss, operator.peak_rss_mib())
        operator.stop()

    def sample(self, operator: Operator, step: str, present: int) -> None:
        """Record the operator's RSS now and its peak so far, after ``step``."""
        figures = operator.figures()
        if figures is not None:
            self.memory.append(
                {
                    "step": step,
                    "pipelines": present,
                    "rss_mib": figures.rss_mib,
                    "peak_rss_mib": figures.peak_rss_mib,
                }
            )

    def create(self, names: list[str]) -> None:
        """Create pipelines as several clients applying at once would."""

        def one(name: str) -> None:
            body = pipeline(name, stages=self.stages)
            self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, names))

    # -- measurements ----------------------------------------------------------------------

    def raw(self, count: int) -> dict[str, Any]:
        """Server-side apply the planned children of ``count`` pipelines, one at a time."""
        kube = Kube(self.api, "bench-raw")
        batches = []
        for i in range(count):
            name = f"raw-{i:04d}"
            body = pipeline(name, RAW_NAMESPACE, self.stages)
            spec = InferencePipelineSpec.model_validate(body["spec"])
            rev = revision_of(spec)
            status = Status.model_validate(
                {"stableRevision": rev, "traffic": [{"revision": rev, "weight": 100}]}
            )
            owner = Owner(name, RAW_NAMESPACE, "00000000-0000-0000-0000-000000000000")
            objects = plan(owner, {rev: spec}, status)
            for obj in objects:
                obj["metadata"].pop("ownerReferences")
            batches.append(objects)
        started = time.monotonic()
        done = []
        for objects in batches:
            for obj in objects:
                kube.apply(obj)
            done.append(time.monotonic() - started)
        seconds = time.monotonic() - started
        return {"objects": count * self.children, "seconds": seconds, "done": done}

    def converge(self, operator: Operator, names: list[str], what: str) -> dict[str, Any]:
        """Create ``names`` at once; children written per second, and time to converge."""
        before = operator.totals()
        started = time.monotonic()
        self.create(names)
        created = time.monotonic() - started
        self.progress.wait(names, 1800, what)
        converged = time.monotonic() - started
        firsts = [self.progress.children_at[n] for n in names]
        with self.progress.lock:
            times = [t for t in self.progress.child_times if t >= started]
        window = max(firsts) - min(times)
        after = operator.totals()
        reconciles = after["reconciles_total"] - before["reconciles_total"]
        return {
            "pipelines": len(names),
            "create_s": created,
            "converge_s": converged,
            "children_per_s": len(names) * self.children / window,
            "reconciles": reconciles,
            "writes_per_reconcile": (after["api_writes_total"] - before["api_writes_total"])
            / reconciles,
            "reads_per_reconcile": (after["api_reads_total"] - before["api_reads_total"])
            / reconciles,
            "done": sorted(t - started for t in map(self.progress.converged_at, names) if t),
        }

    def latency(self, count: int) -> list[float]:
        """Apply pipelines one at a time; time until all their children exist."""
        samples = []
        for i in range(count):
            name = f"lat-{i:04d}"
            started = time.monotonic()
            self.create([name])
            wait(lambda n=name: n in self.progress.children_at, 60, f"{name}'s children", 0.005)
            samples.append(self.progress.children_at[name] - started)
        return samples

    def restart(self, operator: Operator, total: int) -> tuple[Operator, dict[str, Any]]:
        """Restart over ``total`` converged pipelines: time until all reconciled, writes."""
        self.stop(operator)
        self.progress.mark()
        operator = self.operator()
        started = operator.start_and_serve()
        wait(
            lambda: operator.counter("pipeline_operator_reconciles_total") >= total,
            600,
            "every pipeline to be reconciled after the restart",
            0.1,
        )
        ready = time.monotonic() - started
        time.sleep(5)
        return operator, {
            "ready_s": ready,
            "api_writes": operator.counter("pipeline_operator_api_writes_total"),
            "api_writes_by": operator.samples("pipeline_operator_api_writes_total"),
            "objects_changed": self.progress.changes,
            "api_reads": operator.counter("pipeline_operator_api_reads_total"),
        }

    def handover(self, total: int) -> dict[str, Any]:
        """Two replicas; the leader is killed; time until the standby leads and has
        reconciled every pipeline."""
        lease = ("--lease", "bench-leader", "--lease-namespace", NAMESPACE)
        first, second = self.operator(*lease), self.operator(*lease)
        first.start_and_serve()
        wait(lambda: first.counter("pipeline_operator_leader") == 1, 60, "a leader")
        second.start_and_serve()
        wait(
            lambda: first.counter("pipeline_operator_reconciles_total") >= total,
            600,
            "the leader to reconcile every pipeline",
        )
        first.idle()  # what the cluster still changes shows in the leader's writes, not after
        standby_writes = second.counter("pipeline_operator_api_writes_total")
        self.progress.mark()
        self.peak_rss = max(self.peak_rss, first.peak_rss_mib(), second.peak_rss_mib())
        first.kill()
        killed = time.monotonic()
        wait(lambda: second.counter("pipeline_operator_leader") == 1, 120, "the standby to lead")
        led = time.monotonic() - killed
        wait(
            lambda: second.counter("pipeline_operator_reconciles_total") >= total,
            600,
            "the new leader to reconcile every pipeline",
            0.1,
        )
        reconciled = time.monotonic() - killed
        time.sleep(3)
        result = {
            "standby_writes_while_standing_by": standby_writes,
            "standby_leads_s": led,
            "standby_reconciled_all_s": reconciled,
            "new_leader_api_writes": second.counter("pipeline_operator_api_writes_total"),
            "new_leader_api_writes_by": second.samples("pipeline_operator_api_writes_total"),
            "new_leader_api_reads": second.counter("pipeline_operator_api_reads_total"),
            "objects_changed": self.progress.changes,
        }
        self.stop(second)
        return result


def plot(results: dict[str, Any], path: Path) -> None:
    """Convergence against the plain client, and the operator's memory against the pipelines
    present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw, operator, stages = results["raw"], results["converge_small"], results["stages"]
    fig, (ax, mem) = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = (
        ("operator (children and status written)", operator["done"]),
        ("plain client loop (children applied)", raw["done"]),
    )
    for label, done in curves:
        ax.step(done, range(1, len(done) + 1), where="post", label=label)
    ax.set_xlabel("seconds since the first apply")
    ax.set_ylabel("pipelines converged")
    ax.set_title(f"{len(raw['done'])} pipelines, {stages} stages each, with KServe")
    ax.grid(alpha=0.3)
    ax.legend()
    points = results["memory"]
    for key, label in (("rss_mib", "RSS after the step"), ("peak_rss_mib", "peak RSS so far")):
        mem.plot([p["pipelines"] for p in points], [p[key] for p in points], "o-", label=label)
    mem.axhline(TARGETS["peak_rss_mib"], ls="--", c="grey", label="target at 2,550")
    mem.set_xlabel("pipelines present")
    mem.set_ylabel("operator memory (MiB)")
    mem.set_title(f"operator memory ({os.cpu_count()} cores)")
    mem.grid(alpha=0.3)
    mem.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(results: dict[str, Any]) -> str:
    small, large, restart, handover = (
        results[k] for k in ("converge_small", "converge_large", "restart", "handover")
    )
    raw = results["raw"]["objects_per_s"]
    ratio = small["children_per_s"] / raw
    latency = results["apply_to_children"]
    kserve = results["kserve"]
    peak_target = results["peak_rss_target_mib"]
    per_reconcile = large["writes_per_reconcile"], large["reads_per_reconcile"]
    rows = [
        ("plain client server-side apply", f"{raw:.1f} objects/s", "", ""),
        (
            f"operator child writes ({small['pipelines']} at once)",
            f"{small['children_per_s']:.1f} objects/s",
            f">= {TARGETS['throughput_ratio']}x raw",
            f"{ratio:.2f}x",
        ),
        (f"{small['pipelines']} pipelines converge", f"{small['converge_s']:.1f} s", "", ""),
        (
            f"{large['pipelines']} pipelines converge",
            f"{large['converge_s']:.1f} s ({large['children_per_s']:.1f} children/s)",
            "converge",
            f"{large['children_per_s'] / raw:.2f}x raw",
        ),
        (
            f"apply -> children, {results['present']} present",
            f"p50 {latency['p50_s']:.3f} s, p95 {latency['p95_s']:.3f} s",
            f"p95 < {TARGETS['apply_to_children_p95_s']} s",
            f"{latency['p95_s'] / TARGETS['apply_to_children_p95_s']:.2f}x target",
        ),
        (
            f"restart over {results['present']}: ready / writes",
            f"{restart['ready_s']:.1f} s / {restart['api_writes']:.0f} writes, "
            f"{restart['objects_changed']} objects changed",
            f"< {TARGETS['restart_ready_s']} s, 0 writes",
            "ok"
            if restart["api_writes"] == 0 == restart["objects_changed"]
            and restart["ready_s"] < TARGETS["restart_ready_s"]
            else "MISSED",
        ),
        (
            f"peak RSS ({results['present']} pipelines)",
            f"{results['operator_peak_rss_mib']:.0f} MiB",
            f"< {peak_target} MiB",
            f"{results['operator_peak_rss_mib'] / peak_target:.2f}x target",
        ),
        (
            "memory per 1,000 pipelines",
            f"{results['mib_per_1000']:.1f} MiB (RSS after the restart, less "
            f"{results['baseline_rss_mib']:.0f} MiB at rest)",
            "",
            f"heap {results['heap_mib_per_1000']:.1f} MiB",
        ),
        (
            "requests per reconcile (converging)",
            "{:.2f} writes + {:.3f} reads".format(*per_reconcile),
            "",
            "",
        ),
        (
            "handover: standby leads / reconciled all",
            f"{handover['standby_leads_s']:.1f} s / {handover['standby_reconciled_all_s']:.1f} s, "
            f"{handover['new_leader_api_writes']:.0f} writes",
            f"< {TARGETS['handover_s']} s",
            f"{handover['standby_leads_s'] / TARGETS['handover_s']:.2f}x target",
        ),
        (
            "KServe manager during the bench",
            f"{kserve['cpu_seconds']:.0f} CPU s, peak {kserve['peak_rss_mib']:.0f} MiB",
            "",
            f"operator {results['operator_cpu_seconds']:.0f} CPU s",
        ),
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    machine = f"{os.cpu_count()} cores, load {results['load_before']} -> {results['load_after']}"
    lines = [f"operator benchmark (local kube-apiserver + KServe; {machine})"]
    header = ("figure", "measured", "target", "ratio")
    for row in (header, *rows):
        lines.append("  " + "  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines) + "\n\n" + results["heap_table"]


def heap(stages: int, results: dict[str, Any]) -> dict[str, Any]:
    """The heap by term over synthetic pipelines of this shape (``bench/memory.py``), and the
    memory per 1,000 pipelines the restart's RSS gives."""
    log(f"heap by term: {HEAP_PIPELINES} synthetic pipelines of {stages} stages")
    settings = OperatorSettings()
    history = settings.revision_history_limit
    pipelines = [
        (f"p{i:05d}", memory.converge(f"p{i:05d}", stages, history, settings))
        for i in range(HEAP_PIPELINES)
    ]
    terms = memory.measure(pipelines, settings)
    baseline = memory.baseline_rss_mib()
    restarted = next(p for p in results["memory"] if p["step"] == "restarted")
    caught_up = sum(t.bytes for t in terms if not t.name.startswith("own writes"))
    return {
        "heap": [
            {"term": t.name, "objects": t.objects, "bytes_per_pipeline": t.bytes / HEAP_PIPELINES}
            for t in terms
        ],
        "heap_table": memory.table(terms, HEAP_PIPELINES, stages, history, baseline),
        "baseline_rss_mib": baseline,
        "mib_per_1000": (restarted["rss_mib"] - baseline) * 1000 / results["present"],
        "heap_mib_per_1000": caught_up / HEAP_PIPELINES * 1000 / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=500)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--latency-pipelines", type=int, default=50)
    parser.add_argument("--stages", type=int, default=3, help="stages per pipeline (3)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    cluster = LocalCluster(ToolSet.ensure(), name="bench")
    cluster.down()
    results: dict[str, Any] = {"load_before": load()}
    bench: Bench | None = None
    try:
        cluster.up(Topology.load(TOPOLOGY), sorted(CRD_DIR.glob("*.yaml")))
        for namespace in (NAMESPACE, RAW_NAMESPACE):
            cluster.kubectl("create", "namespace", namespace)
            cluster.provide_claim(namespace)
        assert cluster.kserve is not None
        kserve_pid = cluster.kserve.pid
        assert kserve_pid is not None
        kserve_before = ProcessFigures.of(kserve_pid)
        bench = Bench(cluster, args.stages)

        log(f"raw limit: server-side apply of {args.pipelines} pipelines' children")
        raw = bench.raw(args.pipelines)
        raw["objects_per_s"] = raw["objects"] / raw["seconds"]
        results["raw"] = raw

        operator = bench.operator()
        operator.start_and_serve()
        cpu = 0.0
        log(f"convergence: {args.pipelines} pipelines applied at once")
        small = [f"small-{i:04d}" for i in range(args.pipelines)]
        results["converge_small"] = bench.converge(operator, small, "small batch")
        bench.sample(operator, "small batch converged", args.pipelines)
        log(f"convergence: {args.large} more pipelines applied at once")
        large = [f"large-{i:04d}" for i in range(args.large)]
        results["converge_large"] = bench.converge(operator, large, "large batch")
        operator.idle()
        present = args.pipelines + args.large
        bench.sample(operator, "large batch converged", present)
        log(f"latency: {args.latency_pipelines} pipelines applied one by one ({present} present)")
        latency = bench.latency(args.latency_pipelines)
        present += args.latency_pipelines
        results["present"] = present
        results["apply_to_children"] = {
            "p50_s": statistics.median(latency),
            "p95_s": percentile(latency, 0.95),
            "samples": latency,
        }
        operator.idle()
        figures = operator.figures()
        cpu += figures.cpu_seconds if figures else 0.0
        log(f"restart over {present} converged pipelines")
        operator, results["restart"] = bench.restart(operator, present)
        bench.sample(operator, "restarted", present)
        figures = operator.figures()
        cpu += figures.cpu_seconds if figures else 0.0
        bench.stop(operator)
        log("handover: two replicas, the leader killed")
        results["handover"] = bench.handover(present)
        results["operator_peak_rss_mib"] = bench.peak_rss
        results["operator_cpu_seconds"] = cpu
        kserve_after = ProcessFigures.of(kserve_pid)
        results["kserve"] = {
            "cpu_seconds": (kserve_after.cpu_seconds if kserve_after else 0.0)
            - (kserve_before.cpu_seconds if kserve_before else 0.0),
            "peak_rss_mib": kserve_after.peak_rss_mib if kserve_after else 0.0,
        }
    finally:
        if bench is not None:
            bench.progress.close()
        cluster.down()
    results["load_after"] = load()
    results["targets"] = TARGETS
    results["stages"] = args.stages
    results["memory"] = bench.memory if bench is not None else []
    large_scale = results["present"] > LARGE_SCALE
    results["peak_rss_target_mib"] = LARGE_PEAK_RSS_MIB if large_scale else TARGETS["peak_rss_mib"]
    results.update(heap(args.stages, results))
    plot(results, RESULTS / "operator.png")
    (RESULTS / "operator.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
