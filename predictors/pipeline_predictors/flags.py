"""Command-line flags of the encoder predictors (classifier, embedding): model and batching.

The rest of the command line (KServe's flags, revision, tracing) and the server's start-up
are :mod:`pipeline_serving.server`'s.
"""

from __future__ import annotations

import argparse
import os

from pipeline_serving.server import DEFAULT_MODEL_DIR, non_negative_int

from .batching import BatchingConfig
from .runtime.device import GPUS_ENV
from .runtime.options import EncoderOptions


def add_batching_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dynamic batching")
    group.add_argument(
        "--max_batch_size",
        type=int,
        default=32,
        help="Most instances in one forward pass; 1 turns batching off.",
    )
    group.add_argument(
        "--max_latency_ms",
        type=float,
        default=5.0,
        help="Longest time the first instance of a batch waits for more to arrive.",
    )


def batching_config(args: argparse.Namespace) -> BatchingConfig:
    return BatchingConfig(
        max_batch_size=args.max_batch_size, max_latency_s=args.max_latency_ms / 1000.0
    )


def add_encoder_args(parser: argparse.ArgumentParser) -> None:
    """Model flags of the encoder predictors (classifier, embedding)."""
    group = parser.add_argument_group("model")
    group.add_argument("--model_dir", default=DEFAULT_MODEL_DIR, help="Local model directory.")
    group.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA if present; required when --gpus is above 0), cpu, cuda[:N].",
    )
    group.add_argument(
        "--gpus",
        type=non_negative_int,
        default=non_negative_int(os.environ.get(GPUS_ENV, "0")),
        help=f"GPUs this replica was given (env {GPUS_ENV}, which the operator sets for a "
        "stage that requests GPUs): with --device auto it then serves on CUDA or fails at load.",
    )
    group.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "float16", "bfloat16"],
        help="auto is float16 on CUDA, float32 on CPU (torch); an ONNX export keeps its own.",
    )
    group.add_argument("--max_length", type=int, default=None, help="Most tokens per instance.")
    group.add_argument(
        "--num_threads", type=int, default=None, help="CPU threads of torch or ONNX Runtime."
    )
    add_batching_args(parser)


def encoder_options(args: argparse.Namespace) -> EncoderOptions:
    return EncoderOptions(
        model_dir=args.model_dir,
        batching=batching_config(args),
        device=args.device,
        gpus=args.gpus,
        dtype=args.dtype,
        max_length=args.max_length,
        num_threads=args.num_threads,
        revision=args.revision,
    )
