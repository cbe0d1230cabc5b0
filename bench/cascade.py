"""Cascade benchmark (run by ``make bench-dataplane``): a cheap model first, the large one only
for what the cheap one is unsure of, against sending every request to the large model.

Both pipelines run as the 03-cascade example plans them: the kit's classifiers as local
processes behind KServe's router, the graph rendered by the operator's planner (a Sequence
whose second step runs only when ``predictions.#(confident==false)``). The labelled set is the
benchmark's texts, labelled by the large model; the cascade's answers are scored against it.
Prints the share of requests that reach the large model, the agreement with it, and latency
and throughput of both pipelines, and writes bench-results/cascade.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
from dataplane import TEXTS, Point, measure, over_http, table

from tests.dataplane.harness import REPO_ROOT, rendered_graph, router, stage, start_all
from tests.harness import ToolSet
from tests.harness.models import build_classifier, build_tokenizer

THRESHOLD = 0.9
UNSURE = "predictions.#(confident==false)"
CASCADE = {
    "root": "main",
    "nodes": [
        {
            "name": "main",
            "steps": [
                {"stage": "small"},
                {
                    "stage": "large",
                    "condition": "predictions.#(confident==false)",
                    "data": "Request",
                },
            ],
        }
    ],
}


def answers(url: str) -> list[dict[str, Any]]:
    """The first prediction for each text of the labelled set, one request each."""
    with httpx.Client(timeout=60) as client:
        return [
            client.post(url, json={"instances": [text]}).json()["predictions"][0] for text in TEXTS
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results")
    parser.add_argument("--seconds", type=float, default=6.0, help="Measurement time per point.")
    parser.add_argument(
        "--decisiveness",
        type=float,
        default=1.5,
        help="Scale of the small model's head: lower, more answers under the threshold.",
    )
    parser.add_argument("--large_hidden", type=int, default=512)
    parser.add_argument("--large_layers", type=int, default=8)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    router_binary = ToolSet.ensure().binary("router")
    with tempfile.TemporaryDirectory(prefix="bench-cascade-") as tmp:
        root = Path(tmp)
        (root / "logs").mkdir()
        build_tokenizer(root / "tokenizer")
        build_classifier(
            root / "small", 1, root / "tokenizer", hidden_size=64, decisiveness=args.decisiveness
        )
        heads = args.large_hidden // 64
        build_classifier(
            root / "large",
            3,
            root / "tokenizer",
            hidden_size=args.large_hidden,
            layers=args.large_layers,
            heads=heads,
        )
        threads = ["--num_threads", "1"]
        small = stage(
            "small",
            "pipeline_predictors.classifier",
            ["--model_dir", str(root / "small"), f"--confidence_threshold={THRESHOLD}", *threads],
            root / "logs",
            model_name="small",
        )
        large = stage(
            "large",
            "pipeline_predictors.classifier",
            ["--model_dir", str(root / "large"), *threads],
            root / "logs",
            model_name="large",
        )
        start_all([small, large])
        try:
            urls = {"small": small.v1_url, "large": large.v1_url}
            cascade_graph = rendered_graph({"r1": urls}, {"r1": 100}, CASCADE)
            direct_graph = rendered_graph({"r1": {"large": large.v1_url}}, {"r1": 100})
            with router(router_binary, direct_graph, root / "logs") as url:
                truth = [p["label"] for p in answers(url)]
                direct = measure(
                    [Point("all to the large model", c, over_http(url, c)) for c in (1, 4)],
                    args.seconds,
                    1,
                )
            with router(router_binary, cascade_graph, root / "logs") as url:
                got = answers(url)
                cascade = measure(
                    [
                        Point("cascade (small, then large if unsure)", c, over_http(url, c))
                        for c in (1, 4)
                    ],
                    args.seconds,
                    1,
                )
        finally:
            small.stop()
            large.stop()
    escalated = sum(
        "large/predictor" in p.get("revisions", {}) or "confident" not in p for p in got
    )
    agree = sum(p["label"] == t for p, t in zip(got, truth, strict=True))
    n = len(TEXTS)
    results = [*direct, *cascade]
    print("\ncascade: a small classifier answers, the large one only when it is unsure")
    print(f"  labelled set: {n} texts (labels: the large model's answers)")
    print(f"  reach the large model: {escalated}/{n} = {escalated / n:.0%}")
    print(f"  agreement with the large model: {agree}/{n} = {agree / n:.0%}")
    print(table(results))
    for c, d, k in zip((1, 4), direct, cascade, strict=True):
        print(
            f"  concurrency {c}: cascade throughput {k.throughput / d.throughput:.2f}x, "
            f"p50 {k.p50_ms / d.p50_ms:.2f}x, p99 {k.p99_ms / d.p99_ms:.2f}x of all-to-large"
        )
    report = {
        "texts": n,
        "escalated": escalated,
        "agreement": agree,
        "results": [r.__dict__ | {"throughput": r.throughput} for r in results],
    }
    (args.out / "cascade.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
