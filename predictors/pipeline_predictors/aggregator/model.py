"""Combines the responses of an InferenceGraph Ensemble node into one prediction.

KServe's router answers an Ensemble node with ``{stepName: stepResponse, ...}``; a Sequence
step after it (``data: $response``) posts that object here (v1 endpoint). Each member response
is a v1 ``{"predictions": [...]}`` (objects with ``probabilities``/``logits``, or plain lists of
scores) or a v2 ``{"outputs": [...]}`` JSON body. Methods: ``mean`` of the chosen field per
instance, or ``vote`` (majority of the members' top labels; ties go to the higher mean score).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from kserve.errors import InvalidInput

from pipeline_serving.codecs import REVISIONS, output_array, softmax
from pipeline_serving.observability import ObservedModel

Method = Literal["mean", "vote"]
Field = Literal["probabilities", "logits"]


@dataclass(frozen=True)
class MemberScores:
    """One ensemble member's scores ``[instances, labels]`` and what it said per instance."""

    name: str
    scores: np.ndarray
    labels: list[str | None]
    revisions: list[dict[str, str]]


def member_scores(name: str, response: object, field: Field) -> MemberScores:
    """Decode one member's response (v1 or v2 JSON) into a score matrix."""
    if not isinstance(response, Mapping):
        raise InvalidInput(
            f"member {name!r}: expected a JSON object, got {type(response).__name__}"
        )
    if "outputs" in response:
        scores = output_array(response, field).astype(np.float64)
        if scores.ndim != 2:
            raise InvalidInput(f"member {name!r}: output {field!r} must be [instances, labels]")
        n = scores.shape[0]
        return MemberScores(name, scores, [None] * n, [{} for _ in range(n)])
    predictions = response.get("predictions")
    if not isinstance(predictions, list) or not predictions:
        raise InvalidInput(
            f"member {name!r}: expected a v1 'predictions' list or a v2 'outputs' list"
        )
    rows: list[list[float]] = []
    labels: list[str | None] = []
    revisions: list[dict[str, str]] = []
    for i, pred in enumerate(predictions):
        if isinstance(pred, Mapping):
            row = pred.get(field)
            label = pred.get("label")
            labels.append(label if isinstance(label, str) else None)
            revs = pred.get(REVISIONS)
            revisions.append(dict(revs) if isinstance(revs, Mapping) else {})
        else:
            row = pred
            labels.append(None)
            revisions.append({})
        if (
            not isinstance(row, list)
            or not row
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
        ):
            raise InvalidInput(f"member {name!r}: prediction {i} has no numeric {field!r} list")
        rows.append([float(v) for v in row])
    if len({len(r) for r in rows}) != 1:
        raise InvalidInput(f"member {name!r}: predictions have different numbers of labels")
    return MemberScores(name, np.array(rows), labels, revisions)


def aggregate(
    members: Sequence[MemberScores],
    method: Method = "mean",
    field: Field = "probabilities",
    labels: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One combined prediction per instance."""
    if not members:
        raise InvalidInput("the ensemble response has no members")
    shapes = {m.scores.shape for m in members}
    if len(shapes) != 1:
        detail = ", ".join(f"{m.name}: {list(m.scores.shape)}" for m in members)
        raise InvalidInput(f"ensemble members disagree on [instances, labels]: {detail}")
    stacked = np.stack([m.scores for m in members])  # [members, instances, labels]
    mean = stacked.mean(axis=0)
    probabilities = softmax(mean) if field == "logits" else mean
    n_labels = stacked.shape[2]

    def label_name(index: int, instance: int) -> str:
        if labels is not None and index < len(labels):
            return labels[index]
        for m in members:
            if int(np.argmax(m.scores[instance])) == index and m.labels[instance]:
                return str(m.labels[instance])
        return str(index)

    out: list[dict[str, Any]] = []
    for i in range(stacked.shape[1]):
        votes = np.bincount(np.argmax(stacked[:, i, :], axis=-1), minlength=n_labels)
        if method == "vote":
            tied = np.flatnonzero(votes == votes.max())
            best = int(tied[np.argmax(probabilities[i, tied])])
            score = float(votes[best]) / len(members)
        else:
            best = int(np.argmax(probabilities[i]))
            score = float(probabilities[i, best])
        item: dict[str, Any] = {
            "label": label_name(best, i),
            "score": score,
            "probabilities": [float(v) for v in probabilities[i]],
            "votes": {label_name(j, i): int(v) for j, v in enumerate(votes) if v},
        }
        lineage = {k: v for m in members for k, v in m.revisions[i].items()}
        if lineage:
            item[REVISIONS] = lineage
        out.append(item)
    return out


class EnsembleAggregator(ObservedModel):
    """v1 endpoint that turns ``{step: response}`` into ``{"predictions": [...]}``."""

    stage_kind = "aggregator"

    def __init__(
        self,
        name: str,
        method: Method = "mean",
        field: Field = "probabilities",
        labels: Sequence[str] | None = None,
        revision: str | None = None,
    ) -> None:
        super().__init__(name, revision=revision)
        self.method: Method = method
        self.field: Field = field
        self.labels = list(labels) if labels else None

    def load(self) -> bool:
        self.ready = True
        return True

    async def predict(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if not isinstance(payload, Mapping) or not payload:
            raise InvalidInput(
                "expected the Ensemble node's response: a JSON object {stepName: response}"
            )
        members = [member_scores(str(k), v, self.field) for k, v in payload.items()]
        predictions = aggregate(members, self.method, self.field, self.labels)
        if self.revision:
            for item in predictions:
                item.setdefault(REVISIONS, {})[self.lineage_key] = self.revision
        return {"predictions": predictions, "members": [m.name for m in members]}
