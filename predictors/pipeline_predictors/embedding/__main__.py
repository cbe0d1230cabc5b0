"""``python -m pipeline_predictors.embedding``: serve mean-pooled sentence embeddings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline_serving.server import serve, stage_parser, str2bool

from ..flags import add_encoder_args, encoder_options


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("Serve mean-pooled sentence embeddings (KServe v1 and v2).")
    add_encoder_args(parser)
    parser.add_argument(
        "--normalize", type=str2bool, default=True, help="L2-normalize the embeddings."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from .model import SentenceEmbedder

    model = SentenceEmbedder(args.model_name, encoder_options(args), normalize=args.normalize)
    model.load()
    serve(args, [model], f"embedding/{args.model_name}")


if __name__ == "__main__":
    main()
