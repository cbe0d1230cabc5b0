"""Entry point of ``kubectl-pipeline``: the verbs, the shared flags, errors and exit codes.

Exit codes: 0 success, 1 an error (printed as one ``error: ...`` line on stderr), 2 a usage
error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline_operator.cli import (
    abort,
    completion,
    flags,
    history,
    listing,
    pause,
    promote,
    render,
    retry,
    status,
    undo,
)
from pipeline_operator.cli.errors import CliError

PROG = "kubectl pipeline"
VERBS = (listing, status, promote, abort, retry, pause, undo, history, render, completion)
EPILOG = """examples:
  kubectl pipeline list -A
  kubectl pipeline status clf --watch --timeout 300
  kubectl pipeline status clf -o json
  kubectl pipeline promote clf            # skip the current pause or analysis step
  kubectl pipeline promote clf --full     # make the canary stable now
  kubectl pipeline abort clf
  kubectl pipeline undo clf --to-revision 2
  kubectl pipeline render pipeline.yaml > children.yaml
  source <(kubectl pipeline completion bash)
"""


def build_parser() -> argparse.ArgumentParser:
    parent = flags.connection_parent()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Roll out InferencePipelines (pipelines.inference.dev) on KServe.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[parent],
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for module in VERBS:
        module.register(sub, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (usage errors exit 2 from argparse)."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == [completion.VERB]:
        return completion.complete(parser, words[1:])
    args = parser.parse_args(words)
    try:
        return int(args.func(args))
    except CliError as err:
        sys.stdout.flush()
        print(f"error: {err.message}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def complete() -> int:
    """``kubectl_complete-pipeline WORDS...``: what kubectl runs to complete ``kubectl
    pipeline`` (the same as ``kubectl-pipeline __complete WORDS...``)."""
    return main([completion.VERB, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
