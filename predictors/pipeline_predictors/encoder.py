"""The shared core of the encoder predictors: load a local Hugging Face model, batch, run.

A subclass says what one pass returns per row (logits, pooled embeddings) and how to format
v1 and v2 responses. The model directory picks the runtime: a Hugging Face ONNX export
(``model.onnx`` beside ``config.json`` and the tokenizer) runs on ONNX Runtime and needs no
torch; any other directory is loaded by torch (``from_pretrained``; CUDA when present, in half
precision by default). Loading never reaches a hub.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse
from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from pipeline_serving.codecs import (
    ATTENTION_MASK,
    INPUT_IDS,
    TEXT_INPUT,
    Instance,
    TextInstance,
    instances_from_v1,
    instances_from_v2,
    pad,
    tensor_metadata,
)
from pipeline_serving.observability import ObservedModel

from .batching import DynamicBatcher, length_buckets
from .runtime.options import EncoderOptions
from .runtime.protocol import ModelRuntime

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

# What marks a model directory as a Hugging Face ONNX export.
ONNX_FILE = "model.onnx"


class EncoderModel(ObservedModel):
    """A batched ``kserve.Model`` over torch or ONNX Runtime; ready only after :meth:`load`."""

    # The output of an ONNX export this predictor serves as rows; None: torch models only.
    onnx_output: ClassVar[str | None] = None

    def __init__(self, name: str, options: EncoderOptions) -> None:
        super().__init__(name, revision=options.revision)
        self.options = options
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.runtime: ModelRuntime | None = None
        self.max_length = 0
        self.pad_id = 0
        self.vocab_size = 0
        # Fixed cost of a forward pass in token positions (length bucketing); inf: no split.
        self.pass_cost = math.inf
        self.batcher: DynamicBatcher[tuple[int, ...], np.ndarray] = DynamicBatcher(
            self._run_batch, options.batching, on_batch=self.observe_batch
        )
        # One forward pass at a time, off the event loop.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="forward")

    @abstractmethod
    def load_model(self, model_dir: Path, dtype: torch.dtype) -> PreTrainedModel:
        """Load the torch model class this predictor serves from a local directory."""

    @abstractmethod
    def forward(
        self, model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """One torch forward pass: a ``[batch, features]`` tensor, one row per instance."""

    def configure(self, config: PretrainedConfig) -> None:
        """Take what the predictor needs from the model's config (e.g. its labels)."""

    @abstractmethod
    def format_v1(self, rows: np.ndarray, instances: Sequence[Instance]) -> dict[str, Any]:
        """The v1 response body for these instances."""

    @abstractmethod
    def format_v2(self, rows: np.ndarray, request: InferRequest) -> InferResponse:
        """The v2 response for this request (its requested outputs only, when it names some)."""

    def get_input_types(self) -> list[dict[str, Any]]:
        """v2 metadata: BYTES ``text``, or INT64 ``input_ids`` with ``attention_mask``."""
        return [
            tensor_metadata(TEXT_INPUT, "BYTES", [-1]),
            tensor_metadata(INPUT_IDS, "INT64", [-1, -1]),
            tensor_metadata(ATTENTION_MASK, "INT64", [-1, -1]),
        ]

    def load(self) -> bool:
        model_dir = Path(self.options.model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model directory {model_dir} does not exist")
        self.tokenizer = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
            str(model_dir), local_files_only=True
        )
        self.runtime = self.open_runtime(model_dir)
        config = self.runtime.config
        limits = [
            n
            for n in (
                self.options.max_length,
                getattr(config, "max_position_embeddings", None),
                getattr(self.tokenizer, "model_max_length", None),
            )
            if isinstance(n, int) and 0 < n < 1_000_000
        ]
        self.max_length = min(limits) if limits else 512
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.vocab_size = int(getattr(config, "vocab_size", 0) or len(self.tokenizer))
        self.configure(config)
        if self.options.batching.enabled:
            self.pass_cost = self.measure_pass_cost()
        log.info("%s: %s from %s", self.name, self.runtime, model_dir)
        self.ready = True
        return True

    def open_runtime(self, model_dir: Path) -> ModelRuntime:
        """ONNX Runtime for an ONNX export, torch for anything else."""
        if (model_dir / ONNX_FILE).is_file():
            if self.onnx_output is None:
                raise ValueError(
                    f"{model_dir} holds an ONNX export; {type(self).__name__} serves torch "
                    "models only"
                )
            from .runtime.onnx import OnnxRuntime

            return OnnxRuntime.load(model_dir / ONNX_FILE, self.options, self.onnx_output)
        from .runtime.torch import TorchRuntime

        return TorchRuntime.load(model_dir, self.options, self.load_model, self.forward)

    def tokenize(self, text: str) -> tuple[int, ...]:
        assert self.tokenizer is not None
        ids: list[int] = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        return tuple(ids)

    def encode(self, instance: Instance, index: int) -> tuple[int, ...]:
        """Token ids for one instance, checked against the model's limits."""
        ids = (
            self.tokenize(instance.text)
            if isinstance(instance, TextInstance)
            else instance.input_ids
        )
        if len(ids) > self.max_length:
            raise InvalidInput(
                f"instance {index} has {len(ids)} tokens; this model takes at most "
                f"{self.max_length}"
            )
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise InvalidInput(
                f"instance {index} has token ids outside the vocabulary [0, {self.vocab_size}): "
                f"{bad[:5]}"
            )
        return ids

    def forward_padded(self, rows: Sequence[tuple[int, ...]]) -> np.ndarray:
        """Pad rows to one length and run one forward pass: ``[rows, features]`` float32."""
        assert self.runtime is not None
        return self.runtime.run(*pad(rows, self.pad_id))

    def forward_rows(self, rows: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """One result row per input row (float32), from one forward pass per length bucket."""
        result: list[np.ndarray] = [np.empty(0)] * len(rows)
        for bucket in length_buckets([len(r) for r in rows], self.pass_cost):
            for i, row in zip(bucket, self.forward_padded([rows[i] for i in bucket]), strict=True):
                result[i] = row
        return result

    def measure_pass_cost(self, tokens: int = 32, rows: int = 8, repeats: int = 7) -> float:
        """The fixed cost of one forward pass, in token positions, measured on this device.

        Times passes of one row and of ``rows`` rows of ``tokens`` tokens, alternately and
        after a warm-up (which also spares the first request the slow first pass), keeping the
        fastest of ``repeats`` of each: interference only ever adds time. A device on which
        more rows cost nothing measurable never splits a batch.
        """
        tokens = max(1, min(tokens, self.max_length))
        shapes = {n: [(self.pad_id,) * tokens] * n for n in (1, rows)}
        fastest = dict.fromkeys(shapes, math.inf)
        for batch in shapes.values():
            self.forward_padded(batch)
        for _ in range(repeats):
            for n, batch in shapes.items():
                started = time.perf_counter()
                self.forward_padded(batch)
                fastest[n] = min(fastest[n], time.perf_counter() - started)
        per_token = (fastest[rows] - fastest[1]) / ((rows - 1) * tokens)
        if per_token <= 0:
            return math.inf
        return max(0.0, fastest[1] / per_token - tokens)

    async def _run_batch(self, rows: list[tuple[int, ...]]) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.forward_rows, rows)

    async def predict(
        self,
        payload: Mapping[str, Any] | InferRequest,
        headers: Mapping[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        is_v2 = isinstance(payload, InferRequest)
        instances = instances_from_v2(payload) if is_v2 else instances_from_v1(payload)
        rows = [self.encode(inst, i) for i, inst in enumerate(instances)]
        matrix = np.stack(await self.batcher.submit_many(rows))
        self.observe_rows(matrix)
        if isinstance(payload, InferRequest):
            return self.format_v2(matrix, payload)
        return self.format_v1(matrix, instances)

    def observe_rows(self, rows: np.ndarray) -> None:
        """Record what the model answered (the classifier counts its labels)."""

    def start(self) -> None:
        """Readiness stays what :meth:`load` made it (KServe's default would force it on)."""

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().stop()
