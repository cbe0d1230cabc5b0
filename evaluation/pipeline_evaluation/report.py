"""The metrics of an evaluation, its thresholds, and the JSON report it ends with.

Accuracy is the share of samples whose predicted label is the expected one; agreement the
share whose canary label is the stable's. The report is one line of compact JSON of at most
:data:`REPORT_LIMIT` bytes (what the operator keeps of a job's log): a report that would be
longer has its examples shortened, then dropped, then its strings and lists shortened, and
says ``"truncated": true``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import EvaluationError

REPORT_LIMIT = 1024
EXAMPLES = 3  # disagreements shown in the report, the first ones
EPSILON = 1e-9  # a metric this close to its bound meets it (float arithmetic)
DIGITS = 6


@dataclass(frozen=True)
class Thresholds:
    """The bounds the canary is held to; None disables one."""

    max_accuracy_drop: float | None = 0.01
    min_agreement: float | None = 0.95
    min_accuracy: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {
            "max_accuracy_drop": self.max_accuracy_drop,
            "min_agreement": self.min_agreement,
            "min_accuracy": self.min_accuracy,
        }


@dataclass(frozen=True)
class Target:
    """One revision as the report names it."""

    url: str
    revision: str | None = None


@dataclass
class Tally:
    """Counts of the samples answered so far, and the first disagreements."""

    samples: int = 0
    stable_correct: int = 0
    canary_correct: int = 0
    agreed: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, line: int, label: str, stable: str, canary: str) -> None:
        """Count one sample: its expected label and each revision's answer."""
        self.samples += 1
        self.stable_correct += stable == label
        self.canary_correct += canary == label
        self.agreed += stable == canary
        if stable != canary and len(self.examples) < EXAMPLES:
            self.examples.append({"line": line, "label": label, "stable": stable, "canary": canary})

    def _share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0

    @property
    def stable_accuracy(self) -> float:
        return self._share(self.stable_correct)

    @property
    def canary_accuracy(self) -> float:
        return self._share(self.canary_correct)

    @property
    def agreement(self) -> float:
        return self._share(self.agreed)


def number(value: float) -> str:
    """A share as the failure messages show it: at most 4 decimals, no trailing zeros."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def failures(tally: Tally, thresholds: Thresholds) -> list[str]:
    """What the canary falls short of, one message per threshold; empty when it passes."""
    failed = []
    stable, canary = tally.stable_accuracy, tally.canary_accuracy
    drop = thresholds.max_accuracy_drop
    if drop is not None and canary < stable - drop - EPSILON:
        failed.append(
            f"canary accuracy {number(canary)} < stable {number(stable)} - {number(drop)}"
        )
    floor = thresholds.min_accuracy
    if floor is not None and canary < floor - EPSILON:
        failed.append(f"canary accuracy {number(canary)} < {number(floor)}")
    agreement = thresholds.min_agreement
    if agreement is not None and tally.agreement < agreement - EPSILON:
        failed.append(f"agreement {number(tally.agreement)} < {number(agreement)}")
    return failed


def build_report(
    tally: Tally,
    stable: Target,
    canary: Target,
    thresholds: Thresholds,
    context: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The report of a finished evaluation (``context``: pipeline, namespace, when known)."""
    failed = failures(tally, thresholds)

    def side(target: Target, accuracy: float, correct: int) -> dict[str, Any]:
        return {
            "url": target.url,
            "revision": target.revision,
            "accuracy": round(accuracy, DIGITS),
            "correct": correct,
        }

    return {
        **{key: value for key, value in (context or {}).items() if value},
        "samples": tally.samples,
        "stable": side(stable, tally.stable_accuracy, tally.stable_correct),
        "canary": side(canary, tally.canary_accuracy, tally.canary_correct),
        "agreement": round(tally.agreement, DIGITS),
        "thresholds": thresholds.as_dict(),
        "passed": not failed,
        "failed": failed,
        "disagreements": list(tally.examples),
    }


def error_report(err: EvaluationError) -> dict[str, Any]:
    """The report of an evaluation that could not be carried out."""
    return {"error": err.message, **err.details}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _clip(value: Any, chars: int, items: int) -> Any:
    """``value`` with every string cut to ``chars`` and every list to ``items`` entries."""
    if isinstance(value, str):
        return value if len(value) <= chars else value[: max(chars - 3, 1)] + "..."
    if isinstance(value, list):
        kept = [_clip(v, chars, items) for v in value[:items]]
        return [*kept, f"... {len(value) - items} more"] if len(value) > items else kept
    if isinstance(value, dict):
        return {key: _clip(v, chars, items) for key, v in value.items()}
    return value


def _shrinking(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``report``, then ever shorter versions of it."""
    yield report
    examples = report.get("disagreements")
    if isinstance(examples, list):
        # The examples' labels shortened, then fewer examples, then none.
        clipped = _clip(examples, 40, EXAMPLES)
        for kept in range(len(clipped), 0, -1):
            yield {**report, "disagreements": clipped[:kept], "truncated": True}
        report = {key: value for key, value in report.items() if key != "disagreements"}
    for chars, items in ((240, 8), (120, 4), (64, 3), (32, 2), (16, 1)):
        yield {**_clip(report, chars, items), "truncated": True}
    # The verdict alone (or the error's start): always short enough.
    if "error" in report:
        yield {"error": _clip(report["error"], 200, 1), "truncated": True}
    else:
        failed = report.get("failed") or []
        yield {
            "samples": report.get("samples"),
            "passed": report.get("passed"),
            "failed": len(failed) if isinstance(failed, list) else failed,
            "truncated": True,
        }


def render(report: dict[str, Any], limit: int = REPORT_LIMIT) -> str:
    """``report`` as one line of compact JSON of at most ``limit`` bytes (UTF-8)."""
    text = ""
    for candidate in _shrinking(report):
        text = dumps(candidate)
        if len(text.encode("utf-8")) <= limit:
            return text
    return text
