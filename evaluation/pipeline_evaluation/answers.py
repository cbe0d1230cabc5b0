"""The predicted label of each instance, read from a revision's answer.

KServe v1: ``{"predictions": [...]}``, one prediction per instance, each of them

- a label: a string or a number (``"positive"``, ``1``);
- an object with a ``label`` (the kit's classifier, tokenizer transformer and aggregator:
  ``{"label", "score", "labels", "scores", ...}``), else a ``labels`` list, best first;
- an object of scores by label (``{"positive": 0.9, "negative": 0.1}``), or one whose
  ``scores`` or ``probabilities`` are such an object or a list (the best index is the label);
- a list of scores: the best index is the label.

Open inference protocol (v2): ``{"outputs": [...]}`` in JSON, the output named ``label`` (else
the only one), of shape ``[n]`` or ``[n, k]`` (the first of each row: the transformer's top-k,
best first); a numeric ``[n, k]`` output with k > 1 is scores (the best index is the label).

Labels are compared in string form (:func:`label_text`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import AnswerError

LABEL_OUTPUT = "label"
SCORE_FIELDS = ("scores", "probabilities")
RESERVED = frozenset({"score", "logits", "revisions", *SCORE_FIELDS})
_NUMERIC = ("FP", "INT", "UINT")


def label_text(value: object) -> str:
    """The string form labels are compared in: a string as it is, ``true``/``false``, an
    integral number without its ``.0``, anything else in compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _best_index(scores: Sequence[Any]) -> int | None:
    """The index of the highest score (the first of equals), None unless all are numbers."""
    if not scores or not all(_is_number(s) for s in scores):
        return None
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _best_key(scores: Mapping[str, Any]) -> str | None:
    """The label of the highest score, None unless every value is a number."""
    if not scores or not all(_is_number(s) for s in scores.values()):
        return None
    return max(scores, key=lambda k: scores[k])


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def prediction_label(prediction: object) -> str:
    """The label of one v1 prediction (see the module's description)."""
    if isinstance(prediction, str | int | float) and not (
        isinstance(prediction, float) and not math.isfinite(prediction)
    ):
        return label_text(prediction)
    if isinstance(prediction, Mapping):
        if "label" in prediction and isinstance(prediction["label"], str | int | float):
            return label_text(prediction["label"])
        labels = prediction.get("labels")
        if isinstance(labels, list) and labels and isinstance(labels[0], str | int):
            return label_text(labels[0])
        for name in SCORE_FIELDS:
            scores = prediction.get(name)
            if isinstance(scores, Mapping) and (key := _best_key(scores)) is not None:
                return key
            if isinstance(scores, list) and (index := _best_index(scores)) is not None:
                return str(index)
        # Scores by label: two at least, and none of the fields a labelled answer has.
        if (
            len(prediction) > 1
            and not RESERVED & set(prediction)
            and (key := _best_key(prediction)) is not None
        ):
            return key
        keys = sorted(str(k) for k in prediction)[:8]
        raise AnswerError(f"a prediction has no label, labels or scores (its keys: {keys})")
    if isinstance(prediction, list) and (index := _best_index(prediction)) is not None:
        return str(index)
    raise AnswerError(f"a prediction is a {_kind(prediction)}, not a label or an object")


def _output(outputs: Sequence[Any]) -> Mapping[str, Any]:
    """The v2 output the labels are read from: ``label``, else the only one."""
    tensors = [o for o in outputs if isinstance(o, Mapping)]
    for tensor in tensors:
        if tensor.get("name") == LABEL_OUTPUT:
            return tensor
    if len(tensors) == 1 and len(outputs) == 1:
        return tensors[0]
    names = [str(t.get("name")) for t in tensors][:8]
    raise AnswerError(f"the v2 answer has no output named {LABEL_OUTPUT!r} (its outputs: {names})")


def v2_labels(outputs: Sequence[Any], expected: int) -> list[str]:
    """The labels of a v2 JSON answer's ``outputs``, one per row."""
    tensor = _output(outputs)
    name, data, shape = tensor.get("name"), tensor.get("data"), tensor.get("shape")
    if not isinstance(data, list):
        raise AnswerError(f"v2 output {name!r} has no JSON data (binary outputs are not read)")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and d > 0 for d in shape)
    ):
        raise AnswerError(f"v2 output {name!r} has shape {shape!r}, not [n] or [n, k]")
    rows, width = shape[0], shape[1] if len(shape) == 2 else 1
    if rows * width != len(data):
        raise AnswerError(f"v2 output {name!r} has {len(data)} values for shape {shape}")
    if rows != expected:
        raise AnswerError(f"the v2 answer has {rows} rows for {expected} instances")
    numeric = str(tensor.get("datatype", "")).upper().startswith(_NUMERIC)
    labels = []
    for row in range(rows):
        values = data[row * width : (row + 1) * width]
        if numeric and width > 1:
            index = _best_index(values)
            if index is None:
                raise AnswerError(f"v2 output {name!r} row {row} is not numbers")
            labels.append(str(index))
        else:
            labels.append(prediction_label(values[0]))
    return labels


def predicted_labels(answer: object, expected: int) -> list[str]:
    """One label per instance, in order, from a v1 or a v2 JSON answer of ``expected``
    instances."""
    if isinstance(answer, Mapping):
        predictions = answer.get("predictions")
        if isinstance(predictions, list):
            if len(predictions) != expected:
                raise AnswerError(
                    f"the answer has {len(predictions)} predictions for {expected} instances"
                )
            labels = []
            for index, prediction in enumerate(predictions):
                try:
                    labels.append(prediction_label(prediction))
                except AnswerError as err:
                    raise AnswerError(f"prediction {index}: {err.message}") from None
            return labels
        outputs = answer.get("outputs")
        if isinstance(outputs, list):
            return v2_labels(outputs, expected)
        keys = sorted(str(k) for k in answer)[:8]
        raise AnswerError(f"the answer has no predictions or outputs list (its keys: {keys})")
    raise AnswerError(f"the answer is a JSON {_kind(answer)}, not an object")
