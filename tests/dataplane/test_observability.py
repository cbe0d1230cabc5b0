"""A failure is counted once, where it happens: a stage whose next stage refused a request
counts ``upstream``, not a failure of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kserve.errors import InvalidInput
from prometheus_client import REGISTRY

from pipeline_serving.errors import UpstreamInvalidInput
from pipeline_serving.observability import ObservedModel
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


def test_predictor_request_retries_reach_the_predictor_config_and_are_not_negative() -> None:
    parser = stage_parser("test")
    assert predictor_config(parser.parse_args(["--predictor_request_retries", "3"])).retries == 3
    args = parser.parse_args(["--predictor_request_retries", "-1"])
    with pytest.raises(ValueError, match="--predictor_request_retries must be 0 or more, got -1"):
        predictor_config(args)
