"""The operator as a local process against a cluster (the control-plane tests, the benchmark).

Its InferenceGraph routers go to kwok's fake CPU nodes, as these tests' stages do: the control
plane is what they test, and a real router pod drains for 30 s on every graph change. The
real-container tier (tests/e2e) runs the operator from its chart, routers on real nodes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tests.harness.cluster import Cluster
from tests.harness.processes import ProcessFigures, free_port
from tests.harness.topology import FAKE_TOLERATION

FAKE_ROUTERS = {
    "PIPELINE_OPERATOR_ROUTER_NODE_SELECTOR": json.dumps(
        {"pipelines.inference.dev/pool": "cpu", "type": "kwok"}
    ),
    "PIPELINE_OPERATOR_ROUTER_TOLERATIONS": json.dumps([FAKE_TOLERATION]),
}


class OperatorProcess:
    """``python -m pipeline_operator`` watching one namespace; can be killed and restarted."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        log_path: Path,
        drain_seconds: float | None = None,
        kubeconfig: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        """``kubeconfig``: the identity to act as (default: the cluster's admin);
        ``extra_args``: more flags of ``python -m pipeline_operator``."""
        self.cluster = cluster
        self.extra_args = list(extra_args)
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.drain_seconds = drain_seconds
        self.namespace = namespace
        self.metrics_port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**FAKE_ROUTERS, **os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            args = [
                "-n",
                self.namespace,
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                "0",
            ]
            if self.drain_seconds is not None:
                args += ["--drain-seconds", str(self.drain_seconds)]
            args += self.extra_args
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline_operator", *args],
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
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def figures(self) -> ProcessFigures | None:
        """Peak RSS and CPU time of the running operator so far."""
        return ProcessFigures.of(self.process.pid) if self.process else None

    def counter(self, name: str) -> float:
        """Sum of a Prometheus counter over its labels, scraped from /metrics."""
        return sum(self.samples(name).values())

    def samples(self, name: str) -> dict[str, float]:
        """A counter's samples by their labels (``'kind="X",verb="patch"'``; ``''`` when it
        has none), scraped from /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        pattern = rf"^{name}(?:\{{([^}}]*)\}})? ([0-9.e+]+)$"
        return {labels: float(v) for labels, v in re.findall(pattern, text, flags=re.M)}

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
