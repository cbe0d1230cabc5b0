"""What an encoder predictor needs of a runtime (ONNX Runtime or torch)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from transformers import PretrainedConfig


class ModelRuntime(Protocol):
    """A loaded model: padded token ids and masks in, one float32 row per instance out."""

    @property
    def config(self) -> PretrainedConfig: ...

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...
