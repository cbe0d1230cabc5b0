"""``python -m pipeline_predictors.aggregator``: combine Ensemble responses (mean or vote)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline_serving.server import serve, stage_parser

from .model import EnsembleAggregator


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("Combine the responses of an InferenceGraph Ensemble node.")
    group = parser.add_argument_group("aggregation")
    group.add_argument("--method", choices=["mean", "vote"], default="mean")
    group.add_argument(
        "--field",
        choices=["probabilities", "logits"],
        default="probabilities",
        help="Which per-instance scores of the members to combine.",
    )
    group.add_argument(
        "--labels", default=None, help="Comma-separated label names, by index (optional)."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    model = EnsembleAggregator(
        args.model_name, args.method, args.field, labels, revision=args.revision
    )
    model.load()
    serve(args, [model], f"aggregator/{args.model_name}")


if __name__ == "__main__":
    main()
