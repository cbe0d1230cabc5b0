"""Nearest documents to query embeddings: the retrieval stage of a RAG pipeline.

Loads ``documents.jsonl`` (one ``{"id", "text"}`` per line) and ``embeddings.npy`` (float32
``[documents, dim]``, L2-normalized by the same embedder the queries come from) from the
model directory. Input: v1 ``{"instances": [[floats]]}``, or the embedding stage's answer
``{"predictions": [[floats]]}`` as a Sequence passes it on. Output: ``{"predictions":
[{"documents": [{"id", "text", "score"}]}]}``, the ``top_k`` documents by cosine similarity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from kserve.errors import InvalidInput

from pipeline_serving.codecs import REVISIONS, require_finite
from pipeline_serving.observability import ObservedModel

DOCUMENTS = "documents.jsonl"
EMBEDDINGS = "embeddings.npy"


def query_matrix(payload: object, dim: int) -> np.ndarray:
    """The request's query vectors as a finite ``[queries, dim]`` float32 matrix."""
    if not isinstance(payload, Mapping):
        raise InvalidInput("expected a JSON object with 'instances' (or 'predictions')")
    rows = payload.get("instances", payload.get("predictions"))
    if not isinstance(rows, list) or not rows:
        raise InvalidInput("expected a non-empty 'instances' (or 'predictions') list of vectors")
    for i, row in enumerate(rows):
        if (
            not isinstance(row, list)
            or len(row) != dim
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
        ):
            raise InvalidInput(f"instance {i}: expected {dim} numbers")
    with np.errstate(over="ignore"):  # a number beyond float32's range becomes inf: refused
        return require_finite(np.asarray(rows, dtype=np.float32), "instances (as float32)")


class Retriever(ObservedModel):
    """Cosine top-k over an in-memory document index."""

    stage_kind = "retriever"

    def __init__(
        self, name: str, model_dir: str, top_k: int = 3, revision: str | None = None
    ) -> None:
        super().__init__(name, revision=revision)
        self.model_dir = Path(model_dir)
        self.top_k = top_k
        self.documents: list[dict[str, Any]] = []
        self.embeddings = np.zeros((0, 0), dtype=np.float32)

    def load(self) -> bool:
        lines = (self.model_dir / DOCUMENTS).read_text(encoding="utf-8").splitlines()
        self.documents = [json.loads(line) for line in lines if line.strip()]
        self.embeddings = np.load(self.model_dir / EMBEDDINGS).astype(np.float32)
        if self.embeddings.shape[0] != len(self.documents):
            raise ValueError(
                f"{EMBEDDINGS} has {self.embeddings.shape[0]} rows for "
                f"{len(self.documents)} documents"
            )
        self.ready = True
        return True

    async def predict(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        queries = query_matrix(payload, self.embeddings.shape[1])
        scores = queries @ self.embeddings.T  # cosine: both sides are normalized
        k = min(self.top_k, len(self.documents))
        predictions = []
        for row in scores:
            best = np.argsort(-row)[:k]
            item: dict[str, Any] = {
                "documents": [{**self.documents[int(j)], "score": float(row[int(j)])} for j in best]
            }
            if self.revision:
                item[REVISIONS] = {self.lineage_key: self.revision}
            predictions.append(item)
        return {"predictions": predictions}
