"""The shared core of the torch predictors: load a local Hugging Face model, batch, forward.

A subclass says which ``AutoModel*`` class to load, what one forward pass returns per row
(logits, pooled embeddings) and how to format v1 and v2 responses. Loading never reaches a
hub (``local_files_only``); CUDA is used when present, in half precision by default.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from pipeline_serving.codecs import (
    Instance,
    TextInstance,
    instances_from_v1,
    instances_from_v2,
    pad,
)
from pipeline_serving.observability import ObservedModel
from pipeline_serving.server import DEFAULT_MODEL_DIR

from .batching import BatchingConfig, DynamicBatcher, length_buckets


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available")
    return resolved


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is float16 on CUDA and float32 elsewhere."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; one of auto, {', '.join(table)}")
    return table[dtype]


@dataclass(frozen=True)
class EncoderOptions:
    """Runtime options shared by the torch predictors (all have command-line flags)."""

    model_dir: str = DEFAULT_MODEL_DIR
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    device: str = "auto"
    dtype: str = "auto"
    max_length: int | None = None
    num_threads: int | None = None
    revision: str | None = None


class EncoderModel(ObservedModel):
    """A batched, torch-backed ``kserve.Model``; ready only after :meth:`load`."""

    def __init__(self, name: str, options: EncoderOptions) -> None:
        super().__init__(name, revision=options.revision)
        self.options = options
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.model: PreTrainedModel | None = None
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
        """Load the model class this predictor serves from a local directory."""

    @abstractmethod
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One forward pass: a ``[batch, features]`` tensor, one row per instance."""

    @abstractmethod
    def format_v1(self, rows: np.ndarray, instances: Sequence[Instance]) -> dict[str, Any]:
        """The v1 response body for these instances."""

    @abstractmethod
    def format_v2(self, rows: np.ndarray, request: InferRequest) -> InferResponse:
        """The v2 response for this request."""

    def load(self) -> bool:
        model_dir = Path(self.options.model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model directory {model_dir} does not exist")
        if self.options.num_threads:
            torch.set_num_threads(self.options.num_threads)
        self.device = pick_device(self.options.device)
        self.dtype = pick_dtype(self.options.dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
            str(model_dir), local_files_only=True
        )
        model = self.load_model(model_dir, self.dtype)
        model.to(self.device)  # type: ignore[arg-type]
        self.model = model.eval()  # type: ignore[no-untyped-call]
        config = self.model.config
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
        if self.options.batching.enabled:
            self.pass_cost = self.measure_pass_cost()
        self.ready = True
        return True

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
        ids, mask = pad(rows, self.pad_id)
        with torch.inference_mode():
            out = self.forward(
                torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)
            )
        return np.asarray(out.float().cpu().numpy())

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
        if isinstance(payload, InferRequest):
            return self.format_v2(matrix, payload)
        return self.format_v1(matrix, instances)

    def start(self) -> None:
        """Readiness stays what :meth:`load` made it (KServe's default would force it on)."""

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().stop()
