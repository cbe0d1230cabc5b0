"""Mean-pooled sentence embeddings from a local Hugging Face encoder (e.g. all-MiniLM-L6-v2).

Input as for the classifier (text or token ids). Output: v1 ``{"predictions": [[floats]]}``;
v2 FP32 ``embedding`` of shape ``[n, dim]``. Embeddings are L2-normalized unless
``--normalize false``. The encoder runs on torch (an ONNX export is refused at load).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kserve.protocol.infer_type import InferRequest, InferResponse
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

from pipeline_serving.codecs import Instance, tensor_metadata, v2_response

from ..encoder import EncoderModel
from ..runtime.options import EncoderOptions

EMBEDDING = "embedding"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that the attention mask keeps."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class SentenceEmbedder(EncoderModel):
    """Serves ``AutoModel`` hidden states, mean-pooled (and normalized) per sentence."""

    def __init__(self, name: str, options: EncoderOptions, normalize: bool = True) -> None:
        super().__init__(name, options)
        self.normalize = normalize
        self.dim = -1  # the encoder's hidden size, known once loaded

    def load_model(self, model_dir: Path, dtype: torch.dtype) -> PreTrainedModel:
        return AutoModel.from_pretrained(str(model_dir), local_files_only=True, torch_dtype=dtype)  # type: ignore[no-any-return]

    def forward(
        self, model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden.float(), attention_mask)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def configure(self, config: PretrainedConfig) -> None:
        self.dim = int(getattr(config, "hidden_size", None) or -1)

    def get_output_types(self) -> list[dict[str, Any]]:
        """v2 metadata: FP32 ``embedding``, ``[n, dim]``."""
        return [tensor_metadata(EMBEDDING, "FP32", [-1, self.dim])]

    def format_v1(self, rows: np.ndarray, instances: Sequence[Instance]) -> dict[str, Any]:
        return {"predictions": [[float(v) for v in row] for row in rows]}

    def format_v2(self, rows: np.ndarray, request: InferRequest) -> InferResponse:
        return v2_response(
            self.name,
            {EMBEDDING: rows},
            request_id=request.id,
            parameters={"revision": self.revision} if self.revision else None,
            binary=request.use_binary_outputs,
            requested=request.request_outputs,
        )
