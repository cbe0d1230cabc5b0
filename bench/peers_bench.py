"""The kit's data plane beside the systems users would otherwise pick (``make bench-peers``).

One run, the same two-stage pipeline (tokenizer -> classifier), the same models (the data-plane
benchmark's BERT and its 10x model, from the same files on disk), the same texts and the same
load generator, with the points compared measured in turns that go round them:

(a) the pipeline: one process (the floor); the kit (KServe's router -> the tokenizer
    transformer -> the classifier, local processes); Ray Serve (``bench/peers/ray_serve.py``:
    two deployments composed with a DeploymentHandle, behind Ray's HTTP proxy). v1 JSON.
(b) the predictor alone: the kit's classifier against MLServer with a custom runtime
    (``bench/peers/mlserver_runtime.py``), both with adaptive batching of 32 instances and a
    5 ms window; and the kit's classifier with batching off. v2 JSON (a BYTES ``text``).

p50/p99 at concurrency 1, throughput and p99 at 8 and 32, each as a ratio to the kit, with the
load generator's CPU (cores it kept busy). Prints the targets beside the figures and writes
``bench-results/peers.json`` and ``bench-results/peers.png``. MLServer runs from its own
environment (``make peers``, see ``bench/peers/env.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from dataplane import (
    TEXTS,
    Body,
    Point,
    Result,
    Target,
    add_model_arguments,
    baseline,
    baseline_point,
    bench_models,
    classifier,
    hop_deltas,
    kit_pipeline,
    measure,
    over_http,
    servers,
    target_table,
    v1_body,
    v2_body,
)

from pipeline_serving.server import frozen_heap
from tests.dataplane.harness import REPO_ROOT, Process, Stage, wait_until
from tests.harness.processes import free_port

PEERS = REPO_ROOT / "bench" / "peers"
sys.path.insert(0, str(PEERS))
from env import ensure  # noqa: E402  (bench/peers/env.py)

BATCH, WINDOW_MS = 32, 5
KIT = "router -> transformer -> predictor (kit)"
RAY = "Ray Serve: proxy -> tokenizer -> classifier"
KIT_PREDICTOR = "kit predictor"
KIT_UNBATCHED = "kit predictor, batching off"
MLSERVER = "MLServer (parallel_workers 1, its default)"
MLSERVER_INLINE = "MLServer (parallel_workers 0)"


@contextmanager
def ray_serve(model_dir: Path, log_dir: Path) -> Iterator[str]:
    """The pipeline on Ray Serve (a local Ray cluster the process starts); yields its URL."""
    port = free_port()
    proc = Process(
        "ray-serve",
        [
            sys.executable,
            str(PEERS / "ray_serve.py"),
            "--model_dir",
            str(model_dir),
            "--port",
            str(port),
        ],
        log_dir / "ray-serve.log",
    )
    url = f"http://127.0.0.1:{port}/"
    proc.start()
    try:
        wait_until(
            lambda: httpx.post(url, json=v1_body("ready?"), timeout=5).status_code == 200,
            300,
            "Ray Serve to answer",
            proc.died,
        )
        yield url
    finally:
        proc.stop()


def mlserver(model_dir: Path, log_dir: Path, parallel_workers: int | None) -> Stage:
    """MLServer serving the custom runtime on free ports (not started).

    ``parallel_workers`` None leaves MLServer's default (inference in one worker process).
    """
    env = ensure("mlserver")
    name = (
        f"mlserver-{model_dir.name}-{'default' if parallel_workers is None else parallel_workers}"
    )
    root = log_dir / name
    (root / "clf").mkdir(parents=True)
    http = free_port()
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
    }
    if parallel_workers is not None:
        settings["parallel_workers"] = parallel_workers
    (root / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": "clf",
        "implementation": "mlserver_runtime.Classifier",
        "max_batch_size": BATCH,
        "max_batch_time": WINDOW_MS / 1000,
        "parameters": {"uri": str(model_dir)},
    }
    (root / "clf" / "model-settings.json").write_text(json.dumps(model))
    return Stage(
        name=name,
        argv=[str(env / "bin" / "mlserver"), "start", str(root)],
        log_path=log_dir / f"{name}.log",
        env={"PYTHONPATH": str(PEERS)},
        model_name="clf",
        port=http,
    )


def v1_label(answer: dict[str, Any]) -> str:
    return str(answer["predictions"][0]["label"])


def v2_label(answer: dict[str, Any]) -> str:
    (output,) = [o for o in answer["outputs"] if o["name"] == "label"]
    return str(output["data"][0])


def check_labels(
    name: str, url: str, body: Body, label_of: Callable[[dict[str, Any]], str], expected: list[str]
) -> None:
    """Fail unless ``url`` labels every benchmark text as the in-process model does."""
    with httpx.Client(timeout=60) as client:
        got = [label_of(client.post(url, json=body(t)).raise_for_status().json()) for t in TEXTS]
    if got != expected:
        wrong = sum(g != e for g, e in zip(got, expected, strict=True))
        raise RuntimeError(f"{name} labels {wrong} of {len(TEXTS)} texts unlike the model itself")


def pipeline(model_dir: Path, log_dir: Path, args: argparse.Namespace, label: str) -> list[Result]:
    """(a): the floor, the kit's three hops (for the hop costs), the kit and Ray Serve."""
    base = baseline(model_dir, args.threads)
    expected = [name for name, _ in base.top1(TEXTS)]
    results: list[Result] = []
    with (
        frozen_heap(),
        kit_pipeline(model_dir, log_dir, args.threads, BATCH) as paths,
        ray_serve(model_dir, log_dir) as ray_url,
    ):
        kit_url = paths[-1][1]
        check_labels("the kit's pipeline", kit_url, v1_body, v1_label, expected)
        check_labels("Ray Serve", ray_url, v1_body, v1_label, expected)
        for c in (1, 8, 32):
            points = [
                Point(KIT + label, c, over_http(kit_url, c)),
                Point(RAY + label, c, over_http(ray_url, c)),
            ]
            if c == 1:
                hops = [Point(name + label, 1, over_http(url, 1)) for name, url in paths[:-1]]
                points = [baseline_point(base, label), *hops, *points]
            results += measure(points, args.seconds, args.turns)
    return results


def predictor(model_dir: Path, log_dir: Path, args: argparse.Namespace, label: str) -> list[Result]:
    """(b): the kit's predictor against MLServer's, both batching; the kit's unbatched."""
    expected = [name for name, _ in baseline(model_dir, args.threads).top1(TEXTS)]
    threads = ["--num_threads", args.threads]
    on = classifier("bench-peer-on", model_dir, log_dir, BATCH, threads)
    off = classifier("bench-peer-off", model_dir, log_dir, 1, threads)
    peers = [mlserver(model_dir, log_dir, None), mlserver(model_dir, log_dir, 0)]
    results: list[Result] = []
    with servers([on, off, *peers]):
        targets = [(KIT_PREDICTOR, on), (MLSERVER, peers[0]), (MLSERVER_INLINE, peers[1])]
        for name, server in [*targets, (KIT_UNBATCHED, off)]:
            check_labels(name, server.v2_url, v2_body, v2_label, expected)
        for c in (1, 8, 32):
            points = [
                Point(name + label, c, over_http(s.v2_url, c, body=v2_body)) for name, s in targets
            ]
            if c == 32:
                points.insert(
                    1, Point(KIT_UNBATCHED + label, c, over_http(off.v2_url, c, body=v2_body))
                )
            results += measure(points, args.seconds, args.turns)
    return results


def by_key(results: list[Result]) -> dict[tuple[str, int], Result]:
    return {(r.name, r.concurrency): r for r in results}


def ratio_rows(results: list[Result], kit: str, label: str) -> list[dict[str, Any]]:
    """Each point beside the kit's at the same concurrency: its figures over the kit's."""
    by = by_key(results)
    rows = []
    for r in results:
        base = by.get((kit + label, r.concurrency))
        if base is None:
            continue
        rows.append(
            {
                "path": r.name,
                "concurrency": r.concurrency,
                "throughput": r.throughput,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "errors": r.errors,
                "client_cores": r.client_cores,
                "throughput_vs_kit": r.throughput / base.throughput if base.throughput else None,
                "p50_vs_kit": r.p50_ms / base.p50_ms,
                "p99_vs_kit": r.p99_ms / base.p99_ms,
            }
        )
    return rows


def ratio_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'path':52} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>4} "
        f"{'client cores':>12} {'req/s /kit':>10} {'p50 /kit':>9} {'p99 /kit':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['path']:52} {r['concurrency']:>4} {r['throughput']:>8.1f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['errors']:>4} {r['client_cores']:>12.2f} "
            f"{r['throughput_vs_kit']:>10.2f} {r['p50_vs_kit']:>9.2f} {r['p99_vs_kit']:>9.2f}"
        )
    return "\n".join(lines)


def faster(kit: Result, peer: Result, what: str) -> list[Target]:
    """Throughput >= the peer's with a p99 no worse, at the same concurrency."""
    return [
        Target(
            f"{what}: throughput, c={kit.concurrency}",
            f"{kit.throughput:.0f} vs {peer.throughput:.0f}/s",
            ">= peer",
            kit.throughput >= peer.throughput,
        ),
        Target(
            f"{what}: p99, c={kit.concurrency}",
            f"{kit.p99_ms:.1f} vs {peer.p99_ms:.1f} ms",
            "<= peer",
            kit.p99_ms <= peer.p99_ms,
        ),
    ]


def targets(pipe: list[Result], pred: list[Result], label: str) -> list[Target]:
    p, q = by_key(pipe), by_key(pred)
    kit1, ray1 = p[(KIT + label, 1)], p[(RAY + label, 1)]
    out = [
        Target(
            f"kit vs Ray Serve{label}: pipeline p50, c=1",
            f"{kit1.p50_ms:.2f} vs {ray1.p50_ms:.2f} ms",
            "<= Ray",
            kit1.p50_ms <= ray1.p50_ms,
        ),
        *faster(p[(KIT + label, 32)], p[(RAY + label, 32)], f"kit vs Ray Serve{label}"),
    ]
    kit32 = q[(KIT_PREDICTOR + label, 32)]
    # The better MLServer of the two settings: the one a user tuning it would keep.
    best = max(
        (q[(MLSERVER + label, 32)], q[(MLSERVER_INLINE + label, 32)]), key=lambda r: r.throughput
    )
    out += faster(kit32, best, f"kit predictor vs {best.name}")
    # The floor, the predictor, the transformer in front of it, the router in front of both.
    path = [r for r in pipe if r.concurrency == 1][:4]
    for hop, p50, p99 in hop_deltas(path):
        out.append(Target(f"{hop}{label} p50, c=1", f"{p50:+.2f} ms", "<= 2 ms", p50 <= 2.0))
        out.append(Target(f"{hop}{label} p99, c=1", f"{p99:+.2f} ms", "<= 4 ms", p99 <= 4.0))
    off, on = q[(KIT_UNBATCHED + label, 32)], kit32
    ratio = on.throughput / off.throughput if off.throughput else float("nan")
    out.append(
        Target(
            f"kit batching on/off throughput{label}, c=32 (shared client)",
            f"{ratio:.2f}x",
            ">= 2x",
            ratio >= 2.0,
        )
    )
    return out


def plot(rows: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(6 * len(rows), 4.8), squeeze=False)
    for ax, (title, section) in zip(axes[0], rows.items(), strict=True):
        for name in dict.fromkeys(r["path"] for r in section):
            pts = sorted((r["concurrency"], r["throughput"]) for r in section if r["path"] == name)
            if len(pts) > 1:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_ylabel("requests / s")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--small_only", action="store_true", help="Skip the 10x model.")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ensure("mlserver")
    loads: list[list[float]] = []
    sections: dict[str, list[dict[str, Any]]] = {}
    goals: list[Target] = []
    raw: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        root = Path(tmp)
        log_dir = root / "logs"
        log_dir.mkdir()
        model_dir, large_dir, size, large_size = bench_models(root, args)
        models = [("", model_dir)] + ([] if args.small_only else [(", 10x model", large_dir)])
        for label, directory in models:
            loads.append(list(os.getloadavg()))
            pipe = pipeline(directory, log_dir, args, label)
            loads.append(list(os.getloadavg()))
            pred = predictor(directory, log_dir, args, label)
            loads.append(list(os.getloadavg()))
            sections[f"(a) pipeline{label}"] = ratio_rows(pipe, KIT, label)
            sections[f"(b) predictor alone{label}"] = ratio_rows(pred, KIT_PREDICTOR, label)
            raw[f"pipeline{label}"] = [asdict(r) for r in pipe]
            raw[f"predictor{label}"] = [asdict(r) for r in pred]
            goals += targets(pipe, pred, label)
            print(f"\n(a) pipeline{label}: v1 JSON, ratios to the kit's full path")
            print(ratio_table(sections[f"(a) pipeline{label}"]))
            print(f"\n(b) predictor alone{label}: v2 JSON, ratios to the kit's predictor")
            print(ratio_table(sections[f"(b) predictor alone{label}"]))
    one_minute = [sample[0] for sample in loads]
    print(
        f"\nmachine load (1-minute average, {os.cpu_count()} CPUs) at each section's start and "
        f"end: {', '.join(f'{x:.1f}' for x in one_minute)}; the load generator, every server "
        "and whatever else runs on this machine share these CPUs"
    )
    print("\nGPU: not measured (CUDA is not available on this machine)")
    print("\ntargets (from this run)")
    print(target_table(goals))
    report = {
        "version": 1,
        "parameters": {"model": size, "large_model": large_size},
        "settings": {
            "seconds_per_point": args.seconds,
            "turns": args.turns,
            "torch_threads": args.threads,
            "batch": BATCH,
            "window_ms": WINDOW_MS,
        },
        "load_average": {"samples": loads, "cpus": os.cpu_count()},
        "gpu": "not measured: CUDA not available",
        "sections": sections,
        "results": raw,
        "targets": [asdict(t) for t in goals],
    }
    (args.out / "peers.json").write_text(json.dumps(report, indent=2))
    plot(sections, args.out / "peers.png")
    print(f"\nwrote {args.out / 'peers.json'} and {args.out / 'peers.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
