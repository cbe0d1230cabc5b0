"""The torch runtime: a Hugging Face ``from_pretrained`` model on CPU or CUDA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .device import DRIVER_FLOOR, resolve_device

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

    from .options import EncoderOptions

LoadModel = Callable[[Path, torch.dtype], "PreTrainedModel"]
Forward = Callable[["PreTrainedModel", torch.Tensor, torch.Tensor], torch.Tensor]


def no_cuda_reason() -> str:
    """Why torch sees no CUDA device, with what to check."""
    built = torch.version.cuda
    if not built:
        return f"CUDA is not available: torch {torch.__version__} is a CPU build"
    return (
        f"CUDA is not available to torch {torch.__version__} (built for CUDA {built}): check "
        f"that the GPU is visible in the container and the NVIDIA driver is {DRIVER_FLOOR} "
        "or newer"
    )


def pick_device(device: str = "auto", gpus: int = 0) -> torch.device:
    """``auto`` is CUDA when available, else the CPU unless the replica was given GPUs
    (:func:`~pipeline_predictors.runtime.device.resolve_device`)."""
    cuda = torch.cuda.is_available()
    return torch.device(resolve_device(device, gpus, cuda, "" if cuda else no_cuda_reason()))


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is float16 on CUDA and float32 elsewhere."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; one of auto, {', '.join(table)}")
    return table[dtype]


@dataclass
class TorchRuntime:
    """A model in eval mode on its device; ``forward`` turns its output into rows."""

    model: PreTrainedModel
    device: torch.device
    dtype: torch.dtype
    forward: Forward

    @classmethod
    def load(
        cls, model_dir: Path, options: EncoderOptions, load_model: LoadModel, forward: Forward
    ) -> TorchRuntime:
        if options.num_threads:
            torch.set_num_threads(options.num_threads)
        device = pick_device(options.device, options.gpus)
        dtype = pick_dtype(options.dtype, device)
        model = load_model(model_dir, dtype)
        model.to(device)  # type: ignore[arg-type]
        return cls(model.eval(), device, dtype, forward)  # type: ignore[no-untyped-call]

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.forward(
                self.model,
                torch.from_numpy(input_ids).to(self.device),
                torch.from_numpy(attention_mask).to(self.device),
            )
        return np.asarray(out.float().cpu().numpy())

    def __str__(self) -> str:
        return f"torch on {self.device} ({str(self.dtype).removeprefix('torch.')})"
