"""Every numbered example is there and valid; tests/e2e serves each one through pods."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.api.validation import validate

EXAMPLES = sorted((Path(__file__).parents[2] / "manifests" / "examples").glob("*/pipeline.yaml"))


def test_there_are_examples_for_each_composition() -> None:
    assert [e.parent.name for e in EXAMPLES] == [
        "01-text-classifier",
        "02-ensemble",
        "03-cascade",
        "04-retrieval",
        "05-experiments",
    ]
    for example in EXAMPLES:
        assert (example.parent / "README.md").exists()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.parent.name)
def test_example_is_valid(example: Path) -> None:
    spec = InferencePipelineSpec.model_validate(yaml.safe_load(example.read_text())["spec"])
    assert validate(spec) == []
