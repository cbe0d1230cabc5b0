"""``python -m pipeline_predictors.retriever``: serve top-k document retrieval."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline_serving.server import DEFAULT_MODEL_DIR, serve, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("Serve the documents nearest to query embeddings (KServe v1).")
    group = parser.add_argument_group("retrieval")
    group.add_argument(
        "--model_dir",
        default=DEFAULT_MODEL_DIR,
        help="Directory with documents.jsonl and embeddings.npy.",
    )
    group.add_argument("--top_k", type=int, default=3, help="Documents returned per query.")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from .model import Retriever

    model = Retriever(args.model_name, args.model_dir, args.top_k, revision=args.revision)
    model.load()
    serve(args, [model], f"retriever/{args.model_name}")


if __name__ == "__main__":
    main()
