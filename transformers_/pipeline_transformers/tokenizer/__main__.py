"""``python -m pipeline_transformers.tokenizer``: serve the tokenizer transformer."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline_serving.server import DEFAULT_MODEL_DIR, serve, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser(
        "Tokenize text for a predictor and turn its logits into top-k labels (KServe "
        "transformer; --predictor_host names the predictor, --predictor_protocol v2 or v1)."
    )
    group = parser.add_argument_group("tokenizer")
    group.add_argument(
        "--model_dir",
        default=DEFAULT_MODEL_DIR,
        help="Local directory with the tokenizer (and config.json for label names).",
    )
    group.add_argument("--top_k", type=int, default=1, help="Labels returned per instance.")
    group.add_argument(
        "--max_length", type=int, default=None, help="Most tokens per instance (longer: 400)."
    )
    group.add_argument(
        "--labels", default=None, help="Comma-separated label names (default: config.json)."
    )
    group.add_argument(
        "--predictor_model_name",
        default=None,
        help="Model name on the predictor (default: --model_name, as KServe deploys it).",
    )
    group.add_argument(
        "--tokens_key",
        choices=["instances", "predictions"],
        default="instances",
        help="Tokenize-only mode (no --predictor_host): the key of the v1 answer. 'instances' "
        "is the next Sequence step's request as it is; 'predictions' suits a next step with "
        "mapPredictionsToInstances.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from .model import TokenizerTransformer

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    model = TokenizerTransformer(
        args.model_name,
        args.model_dir,
        top_k=args.top_k,
        max_length=args.max_length,
        labels=labels,
        predictor_model_name=args.predictor_model_name,
        revision=args.revision,
        tokens_key=args.tokens_key,
    )
    model.load()
    serve(args, [model], f"transformer/{args.model_name}")


if __name__ == "__main__":
    main()
