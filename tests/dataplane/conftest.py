"""Fixtures of the data-plane tests: tiny local models, stage processes, KServe's router.

All tests here carry the ``dataplane`` marker (``pytest -m dataplane``); the ones that start
the router also carry ``router``. Stage processes are started once per session, in parallel,
and always killed at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import Baseline, Stage, build_models, stage, start_all

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

BATCH_LATENCY_MS = "40"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dataplane: data-plane stages as local processes")
    config.addinivalue_line("markers", "router: needs KServe's InferenceGraph router (port 8080)")


@dataclass(frozen=True)
class Models:
    root: Path
    model_r1: Path
    model_r2: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("models")
    r1, r2 = build_models(root, seeds=(1, 2))
    return Models(root, r1, r2)


@pytest.fixture(scope="session")
def baseline(models: Models) -> Baseline:
    return Baseline(models.model_r1)


@pytest.fixture(scope="session")
def baseline_r2(models: Models) -> Baseline:
    return Baseline(models.model_r2)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@dataclass(frozen=True)
class Stages:
    """The session's stage processes (revision r1 uses seed-1 weights, r2 seed-2)."""

    classifier_r1: Stage  # batching on: up to 16 instances, 40 ms window
    classifier_r2: Stage  # batching off
    transformer_r1: Stage  # tokenizer + softmax/top-k in front of classifier_r1 (v2)
    tokenizer_r1: Stage  # tokenize-only (Sequence step before the classifier)
    tokenizer_r2: Stage
    aggregator: Stage
    trace_dir: Path


@pytest.fixture(scope="session")
def stages(models: Models, log_dir: Path) -> Iterator[Stages]:
    trace_dir = log_dir / "traces"
    trace_dir.mkdir()

    def traced(name: str) -> list[str]:
        return ["--trace_exporter", "file", "--trace_file", str(trace_dir / f"{name}.jsonl")]

    common = ["--num_threads", "1"]
    clf_r1 = stage(
        "classifier-r1",
        "pipeline_predictors.classifier",
        [
            "--model_dir",
            str(models.model_r1),
            "--revision",
            "r1",
            *common,
            *traced("classifier-r1"),
            "--max_batch_size",
            "16",
            "--max_latency_ms",
            BATCH_LATENCY_MS,
        ],
        log_dir,
        model_name="clf",
    )
    clf_r2 = stage(
        "classifier-r2",
        "pipeline_predictors.classifier",
        ["--model_dir", str(models.model_r2), "--revision", "r2", *common, "--max_batch_size", "1"],
        log_dir,
        model_name="clf",
    )
    tf_r1 = stage(
        "transformer-r1",
        "pipeline_transformers.tokenizer",
        [
            "--model_dir",
            str(models.model_r1),
            "--revision",
            "r1",
            "--top_k",
            "2",
            "--predictor_host",
            f"127.0.0.1:{clf_r1.port}",
            "--predictor_protocol",
            "v2",
            *traced("transformer-r1"),
        ],
        log_dir,
        model_name="clf",
    )
    tok_r1 = stage(
        "tokenizer-r1",
        "pipeline_transformers.tokenizer",
        ["--model_dir", str(models.model_r1), "--revision", "r1"],
        log_dir,
        model_name="tok",
    )
    tok_r2 = stage(
        "tokenizer-r2",
        "pipeline_transformers.tokenizer",
        ["--model_dir", str(models.model_r2), "--revision", "r2"],
        log_dir,
        model_name="tok",
    )
    agg = stage(
        "aggregator",
        "pipeline_predictors.aggregator",
        ["--method", "mean"],
        log_dir,
        model_name="agg",
    )
    everything = [clf_r1, clf_r2, tf_r1, tok_r1, tok_r2, agg]
    start_all(everything)
    try:
        yield Stages(clf_r1, clf_r2, tf_r1, tok_r1, tok_r2, agg, trace_dir)
    finally:
        for s in everything:
            s.stop()


@pytest.fixture(scope="session")
def router_binary() -> Path:
    """KServe's router from the project's tool set (built once, then cached)."""
    override = os.environ.get("PIPELINE_ROUTER_BIN")
    if override:
        return Path(override)
    from tests.harness import ToolSet

    return ToolSet.ensure().binary("router")
