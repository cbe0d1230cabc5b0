"""The web analysis provider against a real HTTP server: substitution, JSONPath, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline_operator.api.v1alpha1 import AnalysisMetric
from pipeline_operator.core.rollout import AnalysisError, NoDataError
from pipeline_operator.core.rollout.analysis import Subject, measure
from pipeline_operator.providers.web import WebProvider
from tests.http_sink import Sink, http_sink

SUBJECT = Subject(pipeline="clf", revision="r2", stable="r1")


@pytest.fixture
def scorer() -> Iterator[Sink]:
    with http_sink() as sink:
        sink.default = (404, b"{}")
        yield sink


def metric(url: str, **web: Any) -> AnalysisMetric:
    return AnalysisMetric.model_validate(
        {
            "name": "accuracy",
            "web": {"url": url, "jsonPath": "$.accuracy", **web},
            "successCondition": "result >= 0.9",
            "timeout": "1s",
        }
    )


def test_a_get_substitutes_the_revision_and_reads_the_path(scorer: Sink) -> None:
    scorer.set("/score/r2?stable=r1", {"accuracy": 0.97})
    m = metric(
        f"{scorer.url}/score/{{{{revision}}}}?stable={{{{stable}}}}",
        headers=[{"name": "X-Pipeline", "value": "{{pipeline}}"}],
    )
    assert WebProvider().query(m, SUBJECT) == 0.97
    assert scorer.requests[0].headers["X-Pipeline"] == "clf"


def test_a_post_sends_its_body_as_json(scorer: Sink) -> None:
    scorer.set("/eval", {"results": [{"name": "agreement", "value": "0.96"}]})
    m = metric(
        f"{scorer.url}/eval",
        method="POST",
        body='{"canary": "{{revision}}"}',
        jsonPath="$.results[?(@.name == 'agreement')].value",
    )
    assert WebProvider().query(m, SUBJECT) == 0.96
    assert json.loads(scorer.requests[0].body) == {"canary": "r2"}
    assert scorer.requests[0].headers["Content-Type"] == "application/json"


def test_a_boolean_is_one_or_zero_and_judged_by_the_condition(scorer: Sink) -> None:
    scorer.set("/ok", {"accuracy": True})
    m = metric(f"{scorer.url}/ok").model_copy(update={"success_condition": "result == 1"})
    measured = measure(WebProvider(), m, SUBJECT, datetime(2026, 1, 1, tzinfo=UTC))
    assert measured.success and measured.value == 1.0


@pytest.mark.parametrize(
    ("body", "status", "error", "words"),
    [
        ({"other": 1}, 200, NoDataError, "selects nothing"),
        ({"accuracy": [1, 2]}, 200, AnalysisError, "selects list"),
        ({"accuracy": "high"}, 200, AnalysisError, "'high'"),
        ({"accuracy": "NaN"}, 200, AnalysisError, "selects NaN"),
        ({"accuracy": 0.9}, 503, AnalysisError, "HTTP 503"),
    ],
)
def test_answers_without_one_number_are_errors_naming_why(
    scorer: Sink, body: Any, status: int, error: type[Exception], words: str
) -> None:
    scorer.set("/x", body, status)
    with pytest.raises(error, match=words):
        WebProvider().query(metric(f"{scorer.url}/x"), SUBJECT)


def test_an_answer_that_is_no_json_or_too_slow_is_an_error(scorer: Sink) -> None:
    scorer.answers["/text"] = (200, b"fine")
    with pytest.raises(AnalysisError, match="no JSON"):
        WebProvider().query(metric(f"{scorer.url}/text"), SUBJECT)
    scorer.set("/slow", {"accuracy": 1})
    scorer.delays["/slow"] = 2
    with pytest.raises(AnalysisError, match="GET .*/slow"):
        WebProvider().query(metric(f"{scorer.url}/slow"), SUBJECT)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"query": "up", "web": {"url": "http://e/", "jsonPath": "$.a"}}, "exactly one of query"),
        ({}, "exactly one of query"),
        ({"web": {"url": "http://e/", "jsonPath": "$.["}}, "web.jsonPath"),
        ({"web": {"url": "http://e/", "jsonPath": "$.a", "body": "{}"}}, "needs method: POST"),
        ({"web": {"url": "ftp://e/", "jsonPath": "$.a"}}, "web.url"),
    ],
)
def test_a_metric_is_refused_naming_the_field(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as err:
        AnalysisMetric.model_validate({"name": "m", "successCondition": "result > 0", **fields})
    text = str(err.value).replace("\n  ", ".").replace("\n", " ")
    assert words in text, text


def secret_header(name: str = "token", key: str = "authorization") -> dict[str, Any]:
    return {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def test_a_header_from_a_secret_is_read_in_the_pipelines_namespace(scorer: Sink) -> None:
    scorer.set("/score", {"accuracy": 0.97})
    read: list[tuple[str, str, str]] = []

    def read_secret(namespace: str, name: str, key: str) -> str:
        read.append((namespace, name, key))
        return "Bearer t0ken"

    m = metric(f"{scorer.url}/score", headers=[secret_header()])
    subject = Subject(pipeline="clf", revision="r2", stable="r1", namespace="ml")
    assert WebProvider(read_secret).query(m, subject) == 0.97
    assert read == [("ml", "token", "authorization")]
    assert scorer.requests[0].headers["Authorization"] == "Bearer t0ken"
    with pytest.raises(AnalysisError, match="header Authorization: this operator reads no Secrets"):
        WebProvider().query(m, subject)


@pytest.mark.parametrize(
    "header",
    [
        {"name": "A"},
        {"name": "A", "value": "x", **{k: v for k, v in secret_header().items() if k != "name"}},
    ],
    ids=["neither", "both"],
)
def test_a_header_has_a_value_or_a_secret_not_both(header: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="set exactly one of value and valueFrom"):
        metric("http://scorer/score", headers=[header])
