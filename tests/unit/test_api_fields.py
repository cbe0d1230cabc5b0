"""Field grammars of the API model, which the CRD schema is generated from."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline_operator.api.v1alpha1 import Resources


@pytest.mark.parametrize(
    "value",
    ["1", "500m", "0.5", ".5", "2.", "+2", "16Gi", "1.5Gi", "128974848", "129e6", "1E3", "129M"],
)
def test_kubernetes_quantities_are_accepted(value: str) -> None:
    assert Resources(cpu=value, memory=value).cpu == value


@pytest.mark.parametrize(
    "value",
    [
        "1.2.3",
        "..",
        ".",
        "1iii",
        "1Mi5",
        "-1",
        "-500m",
        "",
        "Gi",
        "1 Gi",
        "1gi",
        "1KiB",
        "1e",
        "1e+",
        "+-1",
        "0x10",
    ],
)
def test_malformed_or_negative_quantities_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="cpu"):
        Resources(cpu=value)
    with pytest.raises(ValidationError, match="memory"):
        Resources(memory=value)
