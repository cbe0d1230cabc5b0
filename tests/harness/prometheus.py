"""The pinned Prometheus server as a local process, scraping the data-plane stages.

Targets come from a file (``file_sd``), so stage processes started and stopped during a run
are picked up within a second; every target carries the labels it is given (for example the
pipeline, stage and revision the stage serves, as KServe's pod labels would give them).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.processes import ClusterError, answers_ok, free_port, log, wait_until
from tests.harness.tools import ToolSet


@dataclass(frozen=True)
class Target:
    """One ``host:port`` to scrape, with the labels its series get."""

    address: str
    labels: Mapping[str, str]


class Prometheus:
    """``prometheus`` from the tool set, on a free loopback port, scraping every second."""

    def __init__(self, tools: ToolSet, workdir: Path, interval: str = "1s") -> None:
        self.tools = tools
        self.workdir = workdir
        self.interval = interval
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def _targets_file(self) -> Path:
        return self.workdir / "targets.json"

    def start(self, timeout: float = 60) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scrape([])
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "scrape_configs": [
                {
                    "job_name": "stages",
                    "file_sd_configs": [
                        {"files": [str(self._targets_file)], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        args = [
            str(self.tools.binary("prometheus")),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with (self.workdir / "prometheus.log").open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout, "Prometheus to report /-/ready")
        log(f"Prometheus ready at {self.address}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def scrape(self, targets: Iterable[Target]) -> None:
        """Replace the scraped targets (picked up within a second)."""
        groups = [{"targets": [t.address], "labels": dict(t.labels)} for t in targets]
        staged = self._targets_file.with_suffix(".tmp")
        staged.write_text(json.dumps(groups), encoding="utf-8")
        staged.replace(self._targets_file)  # atomic: Prometheus never reads half a file

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query; the result vector (``[{"metric": {...}, "value": [t, v]}]``)."""
        url = f"{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise ClusterError(f"Prometheus query failed: {body}")
        return list(body["data"]["result"])

    def wait_for(self, promql: str, timeout: float = 30) -> None:
        """Wait until ``promql`` returns at least one series (its targets were scraped)."""
        wait_until(lambda: bool(self.query(promql)), timeout, f"series of {promql}")

    def _ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            tail = (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]
            raise ClusterError(f"Prometheus exited:\n{tail}")
        return answers_ok(f"{self.address}/-/ready")
