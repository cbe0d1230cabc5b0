"""The options of an encoder predictor's runtime (every one has a command-line flag)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline_serving.server import DEFAULT_MODEL_DIR

from ..batching import BatchingConfig


@dataclass(frozen=True)
class EncoderOptions:
    """Runtime options shared by the encoder predictors (all have command-line flags)."""

    model_dir: str = DEFAULT_MODEL_DIR
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    device: str = "auto"
    gpus: int = 0  # GPUs this replica was given: with device auto, it must serve on CUDA
    dtype: str = "auto"
    max_length: int | None = None
    num_threads: int | None = None
    revision: str | None = None
