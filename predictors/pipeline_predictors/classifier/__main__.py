"""``python -m pipeline_predictors.classifier``: serve a sequence classifier."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline_serving.server import serve, stage_parser

from ..flags import add_encoder_args, encoder_options


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("Serve a Hugging Face sequence classifier (KServe v1 and v2).")
    add_encoder_args(parser)
    parser.add_argument(
        "--confidence_threshold",
        type=float,
        default=None,
        help="Mark each prediction confident (true) when its top score reaches this, else "
        "false: a cascade's next step can run only for the unsure ones.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from .model import SequenceClassifier

    model = SequenceClassifier(args.model_name, encoder_options(args), args.confidence_threshold)
    model.load()
    serve(args, [model], f"classifier/{args.model_name}")


if __name__ == "__main__":
    main()
