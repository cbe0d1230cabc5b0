"""Reading Prometheus instant-query answers."""

from __future__ import annotations

import pytest

from pipeline_operator.prometheus import scalar
from pipeline_operator.rollout import AnalysisError


def vector(*values: str) -> dict:
    result = [{"metric": {}, "value": [0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_one_sample_vector_and_scalar() -> None:
    assert scalar(vector("0.25"), "q") == 0.25
    assert (
        scalar({"status": "success", "data": {"resultType": "scalar", "result": [0, "3"]}}, "q")
        == 3.0
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (vector(), "returned 0 series"),
        (vector("1", "2"), "returned 2 series"),
        (vector("NaN"), "NaN"),
        ({"status": "error", "error": "parse error"}, "parse error"),
    ],
)
def test_unusable_answers_are_analysis_errors(body: dict, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        scalar(body, "q")
