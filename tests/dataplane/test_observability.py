"""A failure is counted once, where it happens: a stage whose next stage refused a request
counts ``upstream``, not a failure of its own. Every stage caps the instances of a request and
fails an answer with a NaN or an infinity in it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kserve.errors import InferenceError, InvalidInput
from prometheus_client import REGISTRY

from pipeline_serving.errors import UpstreamInvalidInput
from pipeline_serving.observability import DEFAULT_MAX_INSTANCES, ObservedModel
from pipeline_serving.server import predictor_config, stage_parser

pytestmark = pytest.mark.dataplane


class Refusing(ObservedModel):
    """Raises what it is told to."""

    def __init__(self, name: str, error: Exception) -> None:
        super().__init__(name, revision="r9")
        self.error = error
        self.ready = True

    async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        raise self.error


def outcome_count(model: str, outcome: str) -> float:
    labels = {
        "pipeline": "",
        "stage": "",
        "revision": "r9",
        "component": "predictor",
        "model": model,
        "protocol": "v1",
        "outcome": outcome,
    }
    return REGISTRY.get_sample_value("pipeline_stage_requests_total", labels) or 0.0


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (InvalidInput("bad"), "invalid_input"),
        (UpstreamInvalidInput("the next stage refused it"), "upstream"),
    ],
)
def test_the_outcome_says_where_the_failure_happened(error: Exception, outcome: str) -> None:
    name = f"refusing-{outcome}"
    with pytest.raises(InvalidInput):
        asyncio.run(Refusing(name, error)({"instances": [1]}))
    assert outcome_count(name, outcome) == 1
    other = "upstream" if outcome == "invalid_input" else "invalid_input"
    assert outcome_count(name, other) == 0


class Answering(ObservedModel):
    """Answers what it is told to."""

    def __init__(self, name: str, answer: Any) -> None:
        super().__init__(name, revision="r9")
        self.answer = answer
        self.ready = True

    async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        return self.answer


def test_more_instances_than_the_cap_are_refused_before_any_work() -> None:
    model = Refusing("capped", RuntimeError("predict must not run"))
    assert model.max_instances == DEFAULT_MAX_INSTANCES == 1024
    model.max_instances = 2
    with pytest.raises(InvalidInput) as refused:
        asyncio.run(model({"instances": ["a", "b", "c"]}))
    assert str(refused.value) == (
        "the request has 3 instances; this server takes at most 2 (--max_instances)"
    )
    assert outcome_count("capped", "invalid_input") == 1
    answering = Answering("uncapped", {"predictions": [0.5] * 5000})
    answering.max_instances = 0  # no cap
    response, _ = asyncio.run(answering({"instances": ["x"] * 5000}))
    assert len(response["predictions"]) == 5000


def test_a_non_finite_answer_is_an_internal_error_naming_the_output() -> None:
    model = Answering("nan-answer", {"predictions": [{"label": "a", "score": float("nan")}]})
    with pytest.raises(InferenceError) as failed:
        asyncio.run(model({"instances": ["x"]}))
    assert str(failed.value) == (
        "predictor nan-answer produced a non-finite output: predictions[0].score is nan"
    )
    assert outcome_count("nan-answer", "internal") == 1


def test_predictor_request_retries_reach_the_predictor_config_and_are_not_negative() -> None:
    parser = stage_parser("test")
    assert predictor_config(parser.parse_args(["--predictor_request_retries", "3"])).retries == 3
    args = parser.parse_args(["--predictor_request_retries", "-1"])
    with pytest.raises(ValueError, match="--predictor_request_retries must be 0 or more, got -1"):
        predictor_config(args)


def test_max_instances_is_a_number_of_0_or_more() -> None:
    parser = stage_parser("test")
    assert parser.parse_args([]).max_instances == DEFAULT_MAX_INSTANCES
    assert parser.parse_args(["--max_instances", "0"]).max_instances == 0
    for bad in ("-1", "many"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--max_instances", bad])
