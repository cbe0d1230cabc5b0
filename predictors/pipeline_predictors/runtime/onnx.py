"""ONNX Runtime for the encoder predictors: a Hugging Face ONNX export, served without torch.

The directory is what an ONNX export of a Hugging Face model holds: ``model.onnx`` (inputs
``input_ids``, ``attention_mask`` and optionally ``token_type_ids``), ``config.json`` and the
tokenizer's files. The precision is the export's; CUDA needs the ``onnxruntime-gpu`` build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from transformers import AutoConfig

from .device import DRIVER_FLOOR, DeviceUnavailableError, resolve_device

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from .options import EncoderOptions

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


Provider = str | tuple[str, dict[str, str]]


NO_CUDA_PROVIDER = "this ONNX Runtime has no CUDA provider (a CPU build; onnxruntime-gpu has it)"


def pick_providers(device: str, available: list[str], gpus: int = 0) -> list[Provider]:
    """``auto`` is CUDA when this build of ONNX Runtime has it, else the CPU unless the replica
    was given GPUs; ``cuda:N`` is GPU N."""
    resolved = resolve_device(device, gpus, CUDA in available, NO_CUDA_PROVIDER)
    if resolved == "cpu":
        return [CPU]
    _, _, index = resolved.partition(":")
    return [(CUDA, {"device_id": index or "0"}), CPU]


def require_provider(providers: list[Provider], running: list[str]) -> None:
    """ONNX Runtime falls back to the CPU when its CUDA provider fails to start (missing CUDA
    libraries, an old driver): a session asked to run on CUDA must run on it."""
    if providers[0] != CPU and (not running or running[0] != CUDA):
        raise DeviceUnavailableError(
            f"ONNX Runtime could not start its CUDA provider (the session runs on {running}): "
            f"check the CUDA libraries and that the NVIDIA driver is {DRIVER_FLOOR} or newer"
        )


@dataclass
class OnnxRuntime:
    """An inference session that returns one named output of the export as rows."""

    session: Any  # onnxruntime.InferenceSession (untyped)
    config: PretrainedConfig
    output: str
    inputs: tuple[str, ...]

    @classmethod
    def load(cls, path: Path, options: EncoderOptions, output: str) -> OnnxRuntime:
        """The session for ``path``, with the config and tokenizer of its directory."""
        if options.dtype not in ("auto", "float32"):
            raise ValueError(
                f"--dtype {options.dtype}: {path} runs in the precision it was exported in; "
                "leave --dtype auto"
            )
        settings = ort.SessionOptions()
        if options.num_threads:
            settings.intra_op_num_threads = options.num_threads
        providers = pick_providers(options.device, ort.get_available_providers(), options.gpus)
        session = ort.InferenceSession(str(path), settings, providers=providers)
        require_provider(providers, session.get_providers())
        outputs = [o.name for o in session.get_outputs()]
        if output not in outputs:
            raise ValueError(f"{path} has no output {output!r}; it has {outputs}")
        inputs = tuple(i.name for i in session.get_inputs())
        unknown = sorted(set(inputs) - set(INPUTS))
        if unknown or "input_ids" not in inputs:
            raise ValueError(f"{path} takes inputs {list(inputs)}; served: {list(INPUTS)}")
        config = AutoConfig.from_pretrained(str(path.parent), local_files_only=True)
        return cls(session, config, output, inputs)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        (rows,) = self.session.run([self.output], {name: given[name] for name in self.inputs})
        return np.asarray(rows, dtype=np.float32)

    def __str__(self) -> str:
        return f"onnxruntime on {self.session.get_providers()[0]}"
