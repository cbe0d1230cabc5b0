"""Fixtures for operator tests: the operator as a real process, acting with the chart's RBAC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Cluster
from tests.harness.chart_identity import ChartIdentity
from tests.harness.operator_process import OperatorProcess

DRAIN_SECONDS = 2.0  # retired InferenceServices linger this long after the router rolled out


@pytest.fixture
def chart_values() -> list[str]:
    """The chart's ``--set`` values the operator's identity is rendered with (a test may
    parametrize it)."""
    return []


@pytest.fixture
def operator_identity(
    cluster: Cluster, namespace: str, tmp_path: Path, chart_values: list[str]
) -> Iterator[Path]:
    """A kubeconfig acting as the chart's ServiceAccount for ``namespace``."""
    identity = ChartIdentity(cluster, namespace, tmp_path, values=chart_values)
    yield identity.create()
    identity.delete()


@pytest.fixture
def operator(
    cluster: Cluster, namespace: str, tmp_path: Path, operator_identity: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        cluster,
        namespace,
        tmp_path / f"operator-{namespace}.log",
        drain_seconds=DRAIN_SECONDS,
        kubeconfig=operator_identity,
    )
    process.start()
    yield process
    process.stop()
