"""A Hugging Face sequence classifier served by KServe, with dynamic batching.

The model is a ``from_pretrained`` directory (torch) or an ONNX export of one whose output is
``logits`` (ONNX Runtime, no torch needed).

Input: raw text (v1 ``{"instances": ["..."]}`` or ``[{"text": "..."}]``; v2 BYTES ``text``)
and/or pre-tokenized ids (v1 ``[{"input_ids": [...], "attention_mask": [...]}]``; v2 INT64
``input_ids`` + ``attention_mask``, what the tokenizer transformer sends).
Output: v1 ``{"predictions": [{"label", "score", "probabilities", "logits"}]}``; v2 tensors
``logits`` and ``probabilities`` (FP32 ``[n, labels]``) and ``label`` (BYTES ``[n]``). With a
confidence threshold, each prediction also says ``confident`` (v2: BOOL ``[n]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from kserve.protocol.infer_type import InferRequest, InferResponse
from transformers import PretrainedConfig

from pipeline_serving.codecs import (
    Instance,
    merge_revisions,
    softmax,
    tensor_metadata,
    v2_response,
)

from ..encoder import EncoderModel
from ..runtime.options import EncoderOptions

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

LOGITS = "logits"
PROBABILITIES = "probabilities"
LABEL = "label"
CONFIDENT = "confident"


class SequenceClassifier(EncoderModel):
    """Serves ``AutoModelForSequenceClassification`` (or its ONNX export) from a directory."""

    onnx_output = LOGITS

    def __init__(
        self, name: str, options: EncoderOptions, confidence_threshold: float | None = None
    ) -> None:
        super().__init__(name, options)
        self.labels: list[str] = []
        self.confidence_threshold = confidence_threshold

    def load_model(self, model_dir: Path, dtype: torch.dtype) -> PreTrainedModel:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(  # type: ignore[no-any-return]
            str(model_dir), local_files_only=True, torch_dtype=dtype
        )

    def forward(
        self, model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits  # type: ignore[no-any-return]

    def configure(self, config: PretrainedConfig) -> None:
        id2label = config.id2label or {}
        self.labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(config.num_labels)]
        self.declare_labels(self.labels)

    def observe_rows(self, rows: np.ndarray) -> None:
        self.count_predictions(self.labels[int(i)] for i in np.argmax(rows, axis=-1))

    def get_output_types(self) -> list[dict[str, Any]]:
        """v2 metadata: ``logits``, ``probabilities``, ``label`` and, with a confidence
        threshold, ``confident``."""
        labels = len(self.labels) or -1  # known once loaded
        outputs = [
            tensor_metadata(LOGITS, "FP32", [-1, labels]),
            tensor_metadata(PROBABILITIES, "FP32", [-1, labels]),
            tensor_metadata(LABEL, "BYTES", [-1]),
        ]
        if self.confidence_threshold is not None:
            outputs.append(tensor_metadata(CONFIDENT, "BOOL", [-1]))
        return outputs

    def format_v1(self, rows: np.ndarray, instances: Sequence[Instance]) -> dict[str, Any]:
        probs = softmax(rows)
        predictions = []
        for logits, p, inst in zip(rows, probs, instances, strict=True):
            best = int(np.argmax(p))
            item: dict[str, Any] = {
                "label": self.labels[best],
                "score": float(p[best]),
                "probabilities": [float(v) for v in p],
                "logits": [float(v) for v in logits],
            }
            if self.confidence_threshold is not None:
                item["confident"] = bool(p[best] >= self.confidence_threshold)
            revisions = merge_revisions(inst.revisions, self.lineage_key, self.revision)
            if revisions:
                item["revisions"] = revisions
            predictions.append(item)
        return {"predictions": predictions}

    def format_v2(self, rows: np.ndarray, request: InferRequest) -> InferResponse:
        probs = softmax(rows)
        labels = np.array([self.labels[int(i)] for i in np.argmax(probs, axis=-1)], dtype=object)
        outputs = {LOGITS: rows, PROBABILITIES: probs, LABEL: labels}
        if self.confidence_threshold is not None:
            outputs[CONFIDENT] = probs.max(axis=-1) >= self.confidence_threshold
        return v2_response(
            self.name,
            outputs,
            request_id=request.id,
            parameters={"revision": self.revision} if self.revision else None,
            binary=request.use_binary_outputs,
            requested=request.request_outputs,
        )
