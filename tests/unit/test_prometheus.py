"""Reading Prometheus instant-query answers."""

from __future__ import annotations

import json

import pytest

from pipeline_operator.api.v1alpha1 import AnalysisMetric
from pipeline_operator.prometheus import PrometheusProvider, scalar
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


@pytest.mark.parametrize("value", ["+Inf", "-Inf"])
def test_infinite_values_are_analysis_errors(value: str) -> None:
    with pytest.raises(AnalysisError, match="Inf"):
        scalar(vector(value), "q")


@pytest.mark.parametrize(
    "body",
    [
        vector("abc"),
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        {"status": "success", "data": {"resultType": "scalar", "result": None}},
    ],
)
def test_malformed_answers_are_analysis_errors(body: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = PrometheusProvider("http://127.0.0.1:9")
    monkeypatch.setattr("urllib.request.urlopen", lambda *_a, **_k: _Answer(body))
    metric = AnalysisMetric(name="m", query="q", success_condition="result > 0")
    with pytest.raises(AnalysisError, match="unexpected answer"):
        provider.query(metric, "rev", "pipe")


def test_only_http_addresses_are_queried() -> None:
    with pytest.raises(AnalysisError, match="not an http"):
        PrometheusProvider("file:///etc/hostname#")


class _Answer:
    def __init__(self, body: dict) -> None:
        self.payload = json.dumps(body).encode()

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def read(self, *_: object) -> bytes:
        return self.payload
