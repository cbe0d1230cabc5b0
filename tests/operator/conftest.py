"""Fixtures for operator tests: the operator as a real process, KServe played by a thread."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_operator.localcluster import Cluster
from pipeline_operator.localcluster.kserve_sim import KServeSimulator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """``python -m pipeline_operator`` watching one namespace; can be killed and restarted."""

    def __init__(self, cluster: Cluster, namespace: str, log_dir: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.metrics_port = free_port()
        self.log_path = log_dir / f"operator-{namespace}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline_operator",
                "-n",
                self.namespace,
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                "0",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a node dies."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(cluster, namespace, tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def kserve(cluster: Cluster, namespace: str) -> Iterator[KServeSimulator]:
    with KServeSimulator(str(cluster.kubeconfig), namespace) as simulator:
        yield simulator
