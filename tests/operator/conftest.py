"""Fixtures for operator tests: the operator as a real process, KServe played by a thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_operator.localcluster import Cluster
from pipeline_operator.localcluster.kserve_sim import KServeSimulator
from pipeline_operator.localcluster.operator_process import OperatorProcess

DRAIN_SECONDS = 2.0  # retired InferenceServices linger this long before deletion


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        cluster, namespace, tmp_path / f"operator-{namespace}.log", drain_seconds=DRAIN_SECONDS
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def kserve(cluster: Cluster, namespace: str) -> Iterator[KServeSimulator]:
    with KServeSimulator(str(cluster.kubeconfig), namespace) as simulator:
        yield simulator
