"""The command line: flags, the evaluation's loop over batches, and its exit code.

Exit 0: every threshold is met; 1: one failed; 2: the evaluation could not be carried out.
Progress goes to stderr; the report (or the error) is the last line on stdout.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TextIO

from .answers import predicted_labels
from .client import RevisionClient
from .errors import EvaluationError, UsageError
from .labelled import Sample, read_labelled
from .report import Tally, Target, Thresholds, build_report, error_report, render

PASSED, FAILED, ERROR = 0, 1, 2
OFF = ("none", "off")
URL_VARIABLES = {"stable": "STABLE_URL", "canary": "CANARY_URL"}
CONTEXT_VARIABLES = {"pipeline": "PIPELINE", "namespace": "NAMESPACE"}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (reported as JSON, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _number(text: str, kind: type[int] | type[float], least: float, what: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= least):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def _positive_int(text: str) -> int:
    return int(_number(text, int, 1, "a whole number of at least 1"))


def _non_negative_int(text: str) -> int:
    return int(_number(text, int, 0, "a whole number of at least 0"))


def _positive_float(text: str) -> float:
    value = _number(text, float, 0, "a number above 0")
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0")
    return value


def _non_negative_float(text: str) -> float:
    return _number(text, float, 0, "a number of at least 0")


def threshold(text: str) -> float | None:
    """A share in [0, 1], or None for ``none``/``off`` (the threshold is disabled)."""
    if text.strip().lower() in OFF:
        return None
    value = _number(text, float, 0, "a number in [0, 1], or none/off")
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1], or none/off")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m pipeline_evaluation",
        description="Send a labelled set to the stable and the canary revision of a pipeline; "
        "report the accuracy of each and their agreement. Exit 0 when every threshold is met, "
        "1 when one is not, 2 on an error.",
    )
    p.add_argument(
        "--labelled",
        required=True,
        type=Path,
        metavar="PATH",
        help='JSONL file, one {"input": ..., "label": ...} per line',
    )
    p.add_argument(
        "--stable-url", metavar="URL", help="the stable revision's endpoint (default: $STABLE_URL)"
    )
    p.add_argument(
        "--canary-url", metavar="URL", help="the canary revision's endpoint (default: $CANARY_URL)"
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=16,
        metavar="N",
        help="instances per request (default: 16)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="time allowed for one request (default: 30)",
    )
    p.add_argument(
        "--retries",
        type=_non_negative_int,
        default=2,
        metavar="N",
        help="more attempts at a request that got no connection, no answer in time "
        "or a 5xx (default: 2)",
    )
    p.add_argument(
        "--backoff",
        type=_non_negative_float,
        default=0.5,
        metavar="SECONDS",
        help="wait before the first retry, doubled at each next one (default: 0.5)",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=threshold,
        default=0.01,
        metavar="SHARE",
        help="fail when canary accuracy < stable accuracy - SHARE (default: 0.01)",
    )
    p.add_argument(
        "--min-agreement",
        type=threshold,
        default=0.95,
        metavar="SHARE",
        help="fail when the share of samples the canary labels as the stable does "
        "is below SHARE (default: 0.95)",
    )
    p.add_argument(
        "--min-accuracy",
        type=threshold,
        default=None,
        metavar="SHARE",
        help="fail when canary accuracy < SHARE (default: none)",
    )
    return p


@dataclass(frozen=True)
class Side:
    """One revision under evaluation: its client and how the report names it."""

    name: str
    client: RevisionClient
    target: Target


def _side(name: str, args: argparse.Namespace, env: Mapping[str, str]) -> Side:
    """The ``stable`` or ``canary`` side: its URL from its flag, else its variable."""
    variable = URL_VARIABLES[name]
    url = (getattr(args, f"{name}_url") or env.get(variable) or "").strip()
    if not url:
        raise UsageError(
            f"no {name} URL: pass --{name}-url or set {variable}",
            flag=f"--{name}-url",
            env=variable,
        )
    client = RevisionClient(url, timeout=args.timeout, retries=args.retries, backoff=args.backoff)
    revision = env.get(f"{name.upper()}_REVISION") or None
    return Side(name, client, Target(client.shown_url, revision))


def _labels(side: Side, batch: Sequence[Sample]) -> list[str]:
    """The revision's label for each sample of the batch."""
    try:
        return predicted_labels(side.client.predict([s.input for s in batch]), len(batch))
    except EvaluationError as err:
        detail = err.message
        if not detail.startswith("POST "):
            detail = f"POST {side.client.shown_url}: {detail}"
        raise type(err)(
            f"{side.name}: {detail} (samples of lines {batch[0].line}-{batch[-1].line})",
            side=side.name,
            **err.details,
        ) from None


def evaluate(
    samples: Sequence[Sample],
    stable: Side,
    canary: Side,
    batch_size: int,
    progress: Callable[[str], None],
) -> Tally:
    """Send every batch to both revisions and count the answers."""
    tally = Tally()
    batches = math.ceil(len(samples) / batch_size)
    started = time.monotonic()
    for number in range(batches):
        batch = samples[number * batch_size : (number + 1) * batch_size]
        stable_labels, canary_labels = _labels(stable, batch), _labels(canary, batch)
        for sample, s, c in zip(batch, stable_labels, canary_labels, strict=True):
            tally.add(sample.line, sample.label, s, c)
        progress(
            f"batch {number + 1}/{batches}: {tally.samples}/{len(samples)} samples, "
            f"accuracy stable {tally.stable_accuracy:.4f} canary {tally.canary_accuracy:.4f}, "
            f"agreement {tally.agreement:.4f} ({time.monotonic() - started:.1f}s)"
        )
    return tally


def run(
    args: argparse.Namespace, env: Mapping[str, str], progress: Callable[[str], None]
) -> tuple[bool, str]:
    """The evaluation the flags describe: whether it passed, and its report, rendered."""
    stable, canary = (_side(name, args, env) for name in ("stable", "canary"))
    samples = read_labelled(args.labelled)
    thresholds = Thresholds(args.max_accuracy_drop, args.min_agreement, args.min_accuracy)
    progress(
        f"{len(samples)} samples from {args.labelled}, in batches of {args.batch_size}; "
        f"stable {stable.target.revision or '-'} at {stable.target.url}, "
        f"canary {canary.target.revision or '-'} at {canary.target.url}"
    )
    tally = evaluate(samples, stable, canary, args.batch_size, progress)
    context = {key: env.get(variable, "") for key, variable in CONTEXT_VARIABLES.items()}
    report = build_report(tally, stable.target, canary.target, thresholds, context)
    verdict = "passed" if report["passed"] else "failed: " + "; ".join(report["failed"])
    progress(verdict)
    return bool(report["passed"]), render(report)


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the evaluation; the exit code: 0 passed, 1 a threshold failed, 2 an error."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    environ = os.environ if env is None else env

    def progress(line: str) -> None:
        print(f"[evaluation] {line}", file=err, flush=True)

    try:
        args = parser().parse_args(argv)
        passed, line = run(args, environ, progress)
    except EvaluationError as failure:
        return _error(failure, out, progress)
    except Exception as bug:  # the last line is JSON whatever happened
        return _error(
            EvaluationError(f"internal error: {type(bug).__name__}: {bug}"), out, progress
        )
    print(line, file=out, flush=True)
    return PASSED if passed else FAILED


def _error(failure: EvaluationError, out: TextIO, progress: Callable[[str], None]) -> int:
    progress(f"error: {failure.message}")
    print(render(error_report(failure)), file=out, flush=True)
    return ERROR
