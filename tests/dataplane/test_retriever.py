"""The retriever: nearest documents by cosine similarity, from the embedding stage's answer."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest
from kserve.errors import InvalidInput

from pipeline_predictors.retriever.model import Retriever

pytestmark = pytest.mark.dataplane


@pytest.fixture
def index(tmp_path: Path) -> Path:
    docs = [{"id": f"d{i}", "text": text} for i, text in enumerate(["north", "east", "south"])]
    (tmp_path / "documents.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    np.save(tmp_path / "embeddings.npy", np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32))
    return tmp_path


def retrieve(model: Retriever, payload: object) -> dict:
    return asyncio.run(model.predict(payload))


def test_nearest_documents_in_order_from_a_previous_steps_predictions(index: Path) -> None:
    model = Retriever("docs", str(index), top_k=2, revision="r1")
    model.load()
    answer = retrieve(model, {"predictions": [[0.8, 0.6], [-1.0, 0.0]]})
    first, second = answer["predictions"]
    assert [d["id"] for d in first["documents"]] == ["d0", "d1"]
    assert first["documents"][0]["score"] == pytest.approx(0.8)
    assert [d["id"] for d in second["documents"]] == ["d2", "d1"]
    assert first["revisions"] == {"docs/retriever": "r1"}
    assert (
        retrieve(model, {"instances": [[0.0, 1.0]]})["predictions"][0]["documents"][0]["text"]
        == "east"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instances": []}, "non-empty"),
        ({"instances": [[1.0]]}, "instance 0: expected 2 numbers"),
        (
            {"instances": [[0.0, 1.0], [1e39, 0.0]]},
            "instances (as float32) has a non-finite value: inf at [1, 0]",
        ),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_queries_are_refused_with_the_reason(
    index: Path, payload: object, message: str
) -> None:
    model = Retriever("docs", str(index))
    model.load()
    with pytest.raises(InvalidInput, match=re.escape(message)):
        retrieve(model, payload)


def test_an_index_whose_files_disagree_does_not_load(index: Path) -> None:
    np.save(index / "embeddings.npy", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="2 rows for 3 documents"):
        Retriever("docs", str(index)).load()
