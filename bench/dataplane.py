"""Data-plane benchmark on loopback (``make bench-dataplane``).

(a) What each hop adds: one-process baseline (tokenizer + model in this process) vs the
    predictor over HTTP, the transformer in front of it, and KServe's router in front of
    both; p50/p99 latency at concurrency 1 and throughput at concurrency 8.
(b) Dynamic batching on vs off, straight to the predictor, at concurrency 1, 8 and 32:
    throughput, the on/off ratio, and p99.
(c) GPU (only when CUDA is present): batching on/off and float32 vs float16.
(d) The hops again at concurrency 1 with a model 10x larger, where the tax should shrink.

The models are BERT classifiers built locally from a config (no hub). Results: the tables and
the targets beside what was measured on stdout, ``bench-results/dataplane.json`` and
``bench-results/dataplane.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ would be first on sys.path, where another benchmark's operator.py
# would shadow the standard library's operator module: import from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from pipeline_serving.server import frozen_heap  # noqa: E402
from tests.dataplane.harness import (  # noqa: E402
    CORPUS,
    Baseline,
    Stage,
    build_classifier,
    build_tokenizer,
    router,
    stage,
    start_all,
)

TEXTS = [f"{a} and {b}" for a in CORPUS for b in CORPUS[:4]]
PER_WORKER = ", client per worker"


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    # CPU time of this process while the point ran: the load generator's (for a point over
    # HTTP), so that a point bound by its client shows.
    client_cpu_s: float = 0.0

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def client_cores(self) -> float:
        """CPUs the load generator kept busy on average (1.0: one core, all the time)."""
        return self.client_cpu_s / self.seconds if self.seconds else 0.0


def summarize(
    name: str,
    concurrency: int,
    latencies: list[float],
    errors: int,
    seconds: float,
    cpu_seconds: float = 0.0,
) -> Result:
    ms = np.array(latencies) * 1000.0 if latencies else np.array([np.nan])
    return Result(
        name,
        concurrency,
        len(latencies),
        errors,
        seconds,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        cpu_seconds,
    )


Body = Callable[[str], dict[str, Any]]


def v1_body(text: str) -> dict[str, Any]:
    """A v1 request of one text."""
    return {"instances": [text]}


def v2_body(text: str) -> dict[str, Any]:
    """A v2 JSON request of one text (a BYTES input ``text`` of shape [1])."""
    return {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}


async def load(
    url: str,
    concurrency: int,
    seconds: float,
    per_worker: bool = False,
    warmup: int = 10,
    body: Body = v1_body,
) -> tuple[list[float], int, float]:
    """Closed-loop load: ``concurrency`` workers post one-text requests for ``seconds``.

    The workers share one httpx client (a pool of ``concurrency`` connections), or with
    ``per_worker`` each has its own client and connection, as separate callers would.
    httpcore's pool scans every connection whenever a request starts or a response ends
    (checking idle ones for expiry with a socket poll each), so when many responses end
    together, as a batch's do, a shared pool costs the load generator several times more CPU
    per request, on the cores the servers use.
    """
    async with contextlib.AsyncExitStack() as stack:
        sizes = [1] * concurrency if per_worker else [concurrency]
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=60.0,
                    limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                )
            )
            for n in sizes
        ]
        for i in range(max(warmup, len(clients))):
            await clients[i % len(clients)].post(url, json=body(TEXTS[i % len(TEXTS)]))
        latencies: list[float] = []
        errors = 0
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            client = clients[offset % len(clients)]
            i = offset
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, json=body(TEXTS[i % len(TEXTS)]))
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return latencies, errors, time.perf_counter() - started


Measurement = tuple[list[float], int, float]  # latencies (s), errors, elapsed (s)


def over_http(
    url: str, concurrency: int, per_worker: bool = False, body: Body = v1_body
) -> Callable[[float], Measurement]:
    return lambda seconds: asyncio.run(load(url, concurrency, seconds, per_worker, body=body))


def in_process(fn: Callable[[str], Any]) -> Callable[[float], Measurement]:
    def run(seconds: float) -> Measurement:
        for text in TEXTS[:10]:
            fn(text)
        latencies: list[float] = []
        started = time.perf_counter()
        i = 0
        while time.perf_counter() < started + seconds:
            t0 = time.perf_counter()
            fn(TEXTS[i % len(TEXTS)])
            latencies.append(time.perf_counter() - t0)
            i += 1
        return latencies, 0, time.perf_counter() - started

    return run


@dataclass(frozen=True)
class Point:
    name: str
    concurrency: int
    run: Callable[[float], Measurement]


def measure(points: list[Point], seconds: float, turns: int) -> list[Result]:
    """Each point for ``seconds`` in all, in ``turns`` turns that go round the points.

    Points compared with each other (a path and the next longer one, batching on and off)
    thus share whatever else the machine is doing while they run, instead of each getting a
    different slice of it.
    """
    latencies: list[list[float]] = [[] for _ in points]
    errors = [0] * len(points)
    elapsed = [0.0] * len(points)
    cpu = [0.0] * len(points)
    for _ in range(turns):
        for i, point in enumerate(points):
            cpu_before = time.process_time()
            got, failed, took = point.run(seconds / turns)
            cpu[i] += time.process_time() - cpu_before
            latencies[i] += got
            errors[i] += failed
            elapsed[i] += took
    return [
        summarize(p.name, p.concurrency, latencies[i], errors[i], elapsed[i], cpu[i])
        for i, p in enumerate(points)
    ]


@contextmanager
def servers(stages: list[Stage]) -> Iterator[None]:
    start_all(stages)
    try:
        yield
    finally:
        for s in stages:
            s.stop()


def classifier(name: str, model_dir: Path, log_dir: Path, batch: int, extra: list[str]) -> Stage:
    args = ["--model_dir", str(model_dir), "--max_batch_size", str(batch), *extra]
    return stage(name, "pipeline_predictors.classifier", args, log_dir, model_name="clf")


def baseline(model_dir: Path, threads: str) -> Baseline:
    """Tokenizer and model in this process, on ``threads`` torch threads."""
    import torch

    torch.set_num_threads(int(threads))
    return Baseline(model_dir)


def baseline_point(base: Baseline, label: str = "") -> Point:
    """The floor: tokenizer and model in this process, one text at a time."""
    return Point(f"in-process baseline{label}", 1, in_process(lambda t: base.probabilities([t])))


@contextmanager
def kit_pipeline(
    model_dir: Path, log_dir: Path, threads: str, batch: int = 1
) -> Iterator[list[tuple[str, str]]]:
    """KServe's router -> the tokenizer transformer -> the classifier, as local processes.

    Yields (path, v1 URL) for the predictor alone, the transformer in front of it, and the
    router in front of both.
    """
    clf = classifier("bench-clf", model_dir, log_dir, batch, ["--num_threads", threads])
    tf = stage(
        "bench-transformer",
        "pipeline_transformers.tokenizer",
        [
            "--model_dir",
            str(model_dir),
            "--predictor_host",
            f"127.0.0.1:{clf.port}",
            "--predictor_protocol",
            "v2",
        ],
        log_dir,
        model_name="clf",
    )
    from tests.harness import ToolSet

    router_bin = Path(os.environ.get("PIPELINE_ROUTER_BIN") or ToolSet.ensure().binary("router"))
    graph = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [{"name": "classify", "serviceUrl": tf.v1_url, "dependency": "Hard"}],
            }
        }
    }
    with servers([clf, tf]), router(router_bin, graph, log_dir) as router_url:
        yield [
            ("predictor", clf.v1_url),
            ("transformer -> predictor", tf.v1_url),
            ("router -> transformer -> predictor", router_url),
        ]


def hops(
    model_dir: Path,
    log_dir: Path,
    seconds: float,
    turns: int,
    threads: str,
    concurrencies: tuple[int, ...],
) -> list[Result]:
    floor = baseline_point(baseline(model_dir, threads))
    # This process holds torch too: its own full collections would stall the load generator
    # and the baseline, and be counted as latency. Frozen as the stages freeze theirs.
    with frozen_heap(), kit_pipeline(model_dir, log_dir, threads) as paths:
        results = []
        for concurrency in concurrencies:
            points = [Point(name, concurrency, over_http(url, concurrency)) for name, url in paths]
            if concurrency == 1:
                points.insert(0, floor)
            results += measure(points, seconds, turns)
    return results


def batching(
    model_dir: Path, log_dir: Path, seconds: float, turns: int, extra: list[str], label: str = ""
) -> list[Result]:
    on = classifier("bench-batch-on", model_dir, log_dir, 32, [*extra, "--max_latency_ms", "5"])
    off = classifier("bench-batch-off", model_dir, log_dir, 1, extra)
    results = []
    with servers([on, off]):
        for c in (1, 8, 32):
            points = [
                Point(f"batching off{label}", c, over_http(off.v1_url, c)),
                Point(f"batching on{label}", c, over_http(on.v1_url, c)),
            ]
            results += measure(points, seconds, turns)
        points = [
            Point(f"batching off{label}{PER_WORKER}", 32, over_http(off.v1_url, 32, True)),
            Point(f"batching on{label}{PER_WORKER}", 32, over_http(on.v1_url, 32, True)),
        ]
        results += measure(points, seconds, turns)
    return results


def table(results: list[Result]) -> str:
    head = f"{'path':44} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.name:44} {r.concurrency:>4} {r.throughput:>9.1f} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.errors:>6}"
        )
    return "\n".join(rows)


def hop_deltas(results: list[Result]) -> list[tuple[str, float, float]]:
    """(hop, p50 added, p99 added) at concurrency 1, from each path to the next longer one."""
    seq = [r for r in results if r.concurrency == 1]
    return [
        (cur.name.split(" -> ")[0] + " hop", cur.p50_ms - prev.p50_ms, cur.p99_ms - prev.p99_ms)
        for prev, cur in itertools.pairwise(seq)
    ]


def hop_table(results: list[Result]) -> str:
    rows = [f"{'hop added':44} {'p50 ms':>8} {'p99 ms':>8}"]
    for hop, p50, p99 in hop_deltas(results):
        rows.append(f"{hop:44} {p50:>8.2f} {p99:>8.2f}")
    return "\n".join(rows)


def on_off(results: list[Result], concurrency: int, clients: str = "") -> tuple[Result, Result]:
    by = {(r.name, r.concurrency): r for r in results}
    return (
        by[(f"batching off{clients}", concurrency)],
        by[(f"batching on{clients}", concurrency)],
    )


def ratio_table(results: list[Result]) -> str:
    head = f"{'concurrency':>24} {'on/off throughput':>18} {'p99 off ms':>11} {'p99 on ms':>10}"
    rows = [head]
    cases = [(c, "") for c in sorted({r.concurrency for r in results})] + [(32, PER_WORKER)]
    for c, clients in cases:
        off, on = on_off(results, c, clients)
        ratio = on.throughput / off.throughput if off.throughput else float("nan")
        rows.append(f"{str(c) + clients:>24} {ratio:>18.2f} {off.p99_ms:>11.2f} {on.p99_ms:>10.2f}")
    return "\n".join(rows)


@dataclass(frozen=True)
class Target:
    """One target: what was measured beside the goal; ``met`` is None for a figure reported
    without a goal or not measured."""

    what: str
    measured: str
    goal: str
    met: bool | None


def full_path_ratio(results: list[Result]) -> float:
    """p50 of router -> transformer -> predictor over the one-process baseline, concurrency 1."""
    by = {r.name: r for r in results if r.concurrency == 1}
    return by["router -> transformer -> predictor"].p50_ms / by["in-process baseline"].p50_ms


def targets(
    hop_results: list[Result],
    batch_results: list[Result],
    large_results: list[Result],
    gpu_measured: bool,
) -> list[Target]:
    out = []
    for c, clients, goal in ((1, "", 0.95), (32, "", 2.0), (32, PER_WORKER, None)):
        off, on = on_off(batch_results, c, clients)
        ratio = on.throughput / off.throughput if off.throughput else float("nan")
        out.append(
            Target(
                f"batching on/off throughput, c={c}{clients}",
                f"{ratio:.2f}x",
                "(reported)" if goal is None else f">= {goal}x",
                None if goal is None else ratio >= goal,
            )
        )
        out.append(
            Target(
                f"batching p99 on vs off, c={c}{clients}",
                f"{on.p99_ms:.1f} vs {off.p99_ms:.1f} ms",
                "(reported)" if goal is None else "on <= off",
                None if goal is None else on.p99_ms <= off.p99_ms,
            )
        )
    for hop, p50, p99 in hop_deltas(hop_results):
        out.append(Target(f"{hop} p50, c=1", f"{p50:+.2f} ms", "<= 2 ms", p50 <= 2.0))
        out.append(Target(f"{hop} p99, c=1", f"{p99:+.2f} ms", "<= 4 ms", p99 <= 4.0))
    small = full_path_ratio(hop_results)
    out.append(Target("full path / baseline p50, c=1", f"{small:.2f}x", "<= 2x", small <= 2.0))
    large = full_path_ratio(large_results)
    out.append(
        Target("full path / baseline p50, c=1, 10x model", f"{large:.2f}x", "(reported)", None)
    )
    out.append(
        Target(
            "GPU: batching, float32 vs float16",
            "measured, see (c)" if gpu_measured else "not measured",
            "(reported)",
            None,
        )
    )
    return out


def target_table(rows: list[Target]) -> str:
    head = f"{'target':62} {'measured':>22} {'goal':>11} {'met':>4}"
    lines = [head, "-" * len(head)]
    for t in rows:
        met = "-" if t.met is None else ("yes" if t.met else "NO")
        lines.append(f"{t.what:62} {t.measured:>22} {t.goal:>11} {met:>4}")
    return "\n".join(lines)


def latency_bars(ax: Any, results: list[Result], title: str) -> None:
    seq = [r for r in results if r.concurrency == 1]
    x = np.arange(len(seq))
    ax.bar(x - 0.2, [r.p50_ms for r in seq], 0.4, label="p50")
    ax.bar(x + 0.2, [r.p99_ms for r in seq], 0.4, label="p99")
    ax.set_xticks(x, [r.name.replace(" -> ", "\n-> ") for r in seq], fontsize=7)
    ax.set_ylabel("latency (ms), concurrency 1")
    ax.set_title(title)
    ax.legend()


def plot(
    hop_results: list[Result],
    batch_results: list[Result],
    large_results: list[Result],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(18, 4.8))
    latency_bars(ax1, hop_results, "(a) latency per path")
    for name, marker in (
        ("batching off", "o"),
        ("batching on", "s"),
        (f"batching off{PER_WORKER}", "x"),
        (f"batching on{PER_WORKER}", "+"),
    ):
        pts = sorted((r.concurrency, r.throughput) for r in batch_results if r.name == name)
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=name)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("concurrency")
    ax2.set_ylabel("requests / s")
    ax2.set_title("(b) dynamic batching, predictor on CPU")
    ax2.legend()
    latency_bars(ax3, large_results, "(d) latency per path, 10x model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parameters(model_dir: Path) -> int:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    return sum(p.numel() for p in model.parameters())


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the benchmarks' two models, their timing and threads."""
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results")
    parser.add_argument("--seconds", type=float, default=5.0, help="Measurement time per point.")
    parser.add_argument(
        "--turns",
        type=int,
        default=2,
        help="Turns each point's time is split into, going round the points compared.",
    )
    parser.add_argument("--threads", default="1", help="torch threads per server process.")
    parser.add_argument("--hidden", type=int, default=256, help="BERT hidden size.")
    parser.add_argument("--layers", type=int, default=4, help="BERT layers.")
    parser.add_argument(
        "--large_hidden", type=int, default=512, help="Hidden size of the 10x model."
    )
    parser.add_argument("--large_layers", type=int, default=10, help="Layers of the 10x model.")


def bench_models(root: Path, args: argparse.Namespace) -> tuple[Path, Path, int, int]:
    """The tokenizer and both models under ``root``: (model, 10x model, their parameters)."""
    build_tokenizer(root / "tokenizer")
    model_dir, large_dir = root / "model", root / "model-large"
    build_classifier(model_dir, 0, root / "tokenizer", args.hidden, args.layers, heads=4)
    build_classifier(
        large_dir, 0, root / "tokenizer", args.large_hidden, args.large_layers, heads=8
    )
    size, large_size = parameters(model_dir), parameters(large_dir)
    print(
        f"model: BERT hidden {args.hidden}, {args.layers} layers ({size / 1e6:.1f}M "
        f"parameters); 10x model: hidden {args.large_hidden}, {args.large_layers} layers "
        f"({large_size / 1e6:.1f}M, {large_size / size:.1f}x); built locally; "
        f"{args.seconds:g}s per point in {args.turns} turns; torch threads per server "
        f"{args.threads}",
        flush=True,
    )
    return model_dir, large_dir, size, large_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-dataplane-") as tmp:
        root = Path(tmp)
        log_dir = root / "logs"
        log_dir.mkdir()
        model_dir, large_dir, size, large_size = bench_models(root, args)
        load_before = os.getloadavg()[0]
        hop_results = hops(model_dir, log_dir, args.seconds, args.turns, args.threads, (1, 8))
        cpu = ["--num_threads", args.threads, "--device", "cpu"]
        batch_results = batching(model_dir, log_dir, args.seconds, args.turns, cpu)
        gpu_results: list[Result] = []
        if torch.cuda.is_available():
            for dtype in ("float32", "float16"):
                gpu_results += batching(
                    model_dir,
                    log_dir,
                    args.seconds,
                    args.turns,
                    ["--device", "cuda", "--dtype", dtype],
                    label=f" (cuda {dtype})",
                )
        large_results = hops(large_dir, log_dir, args.seconds, args.turns, args.threads, (1,))

    print("\n(a) hops: router -> transformer -> predictor vs one process")
    print(table(hop_results))
    print()
    print(hop_table(hop_results))
    print("\n(b) dynamic batching (max 32 instances, 5 ms window) vs off, CPU")
    print(table(batch_results))
    print()
    print(ratio_table(batch_results))
    if gpu_results:
        print("\n(c) GPU")
        print(table(gpu_results))
    else:
        print("\n(c) GPU: not measured (CUDA is not available on this machine)")
    print(f"\n(d) hops with the 10x model ({large_size / 1e6:.1f}M parameters), concurrency 1")
    print(table(large_results))
    print()
    print(hop_table(large_results))
    goals = targets(hop_results, batch_results, large_results, bool(gpu_results))
    load_after = os.getloadavg()[0]
    print(
        f"\nmachine load (1-minute average, {os.cpu_count()} CPUs): {load_before:.1f} before, "
        f"{load_after:.1f} after; the load generator and every server share these CPUs"
    )
    print("\ntargets (ratios from this run)")
    print(target_table(goals))
    report = {
        "parameters": {"model": size, "large_model": large_size},
        "load_average": {"before": load_before, "after": load_after, "cpus": os.cpu_count()},
        "hops": [asdict(r) | {"throughput": r.throughput} for r in hop_results],
        "batching": [asdict(r) | {"throughput": r.throughput} for r in batch_results],
        "gpu": [asdict(r) | {"throughput": r.throughput} for r in gpu_results]
        or "not measured: CUDA not available",
        "large_model_hops": [asdict(r) | {"throughput": r.throughput} for r in large_results],
        "targets": [asdict(t) for t in goals],
    }
    (args.out / "dataplane.json").write_text(json.dumps(report, indent=2))
    plot(hop_results, batch_results, large_results, args.out / "dataplane.png")
    print(f"\nwrote {args.out / 'dataplane.json'} and {args.out / 'dataplane.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
