"""The labelled set: a JSONL file, one ``{"input": ..., "label": ...}`` object per line.

``input`` is one instance as the pipeline takes it (a text, or an object such as
``{"text": "..."}``), sent as it is; ``label`` the expected answer, a string, a number or a
boolean (compared in string form). Blank lines are skipped; other keys are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .answers import label_text
from .errors import LabelledSetError

EXCERPT = 80  # characters of a bad line shown in its error


@dataclass(frozen=True)
class Sample:
    """One labelled instance, with the line it came from."""

    line: int
    input: Any
    label: str


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def parse_line(text: str, line: int, source: str = "labelled set") -> Sample:
    """The sample of one non-blank line; a :class:`LabelledSetError` naming the line and
    what is wrong with it otherwise."""
    where = f"{source} line {line}"
    try:
        item = json.loads(text)
    except json.JSONDecodeError as err:
        raise LabelledSetError(
            f"{where}: not JSON ({err.msg} at column {err.colno}): {_excerpt(text)!r}"
        ) from None
    if not isinstance(item, dict):
        raise LabelledSetError(f"{where}: a JSON {type(item).__name__}, not an object")
    missing = [key for key in ("input", "label") if key not in item]
    if missing:
        raise LabelledSetError(f"{where}: no {' or '.join(repr(k) for k in missing)} key")
    if item["input"] is None:
        raise LabelledSetError(f"{where}: 'input' is null")
    label = item["label"]
    if not isinstance(label, str | int | float | bool):
        kind = "null" if label is None else type(label).__name__
        raise LabelledSetError(f"{where}: 'label' is a {kind}, not a string, number or boolean")
    return Sample(line, item["input"], label_text(label))


def read_labelled(path: Path) -> list[Sample]:
    """Every sample of the file at ``path``, in order; at least one."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise LabelledSetError(f"labelled set {path}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise LabelledSetError(f"labelled set {path}: {err.strerror or err}") from None
    # Lines end at \n alone (not str.splitlines: U+2028 and U+0085 may stand in JSON strings).
    samples = [
        parse_line(line, number, f"labelled set {path}")
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]
    if not samples:
        raise LabelledSetError(f"labelled set {path}: no samples")
    return samples
