"""The pinned Prometheus server as a local process, scraping the data-plane stages.

On a cluster (``kubeconfig``) it finds the stage pods the way a user's Prometheus does:
Kubernetes service discovery of pods, kept when they carry the ``prometheus.io/scrape``
annotation the planner gives every stage, scraped at their pod address and the annotated port
and path. Local stage processes (benchmarks) come from a file instead (``file_sd``), picked up
within a second, each target with the labels it is given.
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

from tests.harness.processes import (
    ClusterError,
    answers_ok,
    free_port,
    log,
    stop_process,
    wait_until,
)
from tests.harness.tools import ToolSet


@dataclass(frozen=True)
class Target:
    """One ``host:port`` to scrape, with the labels its series get."""

    address: str
    labels: Mapping[str, str]


def pod_discovery(kubeconfig: Path) -> dict[str, Any]:
    """A scrape job over the cluster's annotated pods: the common ``prometheus.io/*``
    convention, with the pod's namespace, name and node as labels. Only pods of real nodes
    are kept: kwok's pods have addresses that nothing answers."""
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return {
        "job_name": "kubernetes-pods",
        "kubernetes_sd_configs": [
            {"role": "pod", "kubeconfig_file": str(kubeconfig), "attach_metadata": {"node": True}}
        ],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_node_label_type"],
                "action": "keep",
                "regex": "real",
            },
            {"source_labels": [f"{annotation}scrape"], "action": "keep", "regex": "true"},
            {
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "action": "keep",
                "regex": "Running",
            },
            {
                "source_labels": [f"{annotation}path"],
                "target_label": "__metrics_path__",
                "regex": "(.+)",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_ip", f"{annotation}port"],
                "regex": "(.+);(\\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
        ],
    }


class Prometheus:
    """``prometheus`` from the tool set, on a free loopback port, scraping every second."""

    def __init__(
        self,
        tools: ToolSet,
        workdir: Path,
        interval: str = "1s",
        kubeconfig: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """``kubeconfig`` adds the cluster's pods to the targets; ``host`` is the address it
        listens on (the real nodes' address, for an operator in a pod to query it)."""
        self.tools = tools
        self.kubeconfig = kubeconfig
        self.host = host
        self.workdir = workdir
        self.interval = interval
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def _targets_file(self) -> Path:
        return self.workdir / "targets.json"

    def start(self, timeout: float = 60) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scrape([])
        jobs: list[dict[str, Any]] = [
            {
                "job_name": "stages",
                "file_sd_configs": [{"files": [str(self._targets_file)], "refresh_interval": "1s"}],
            }
        ]
        if self.kubeconfig is not None:
            jobs.append(pod_discovery(self.kubeconfig))
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "scrape_configs": jobs,
        }
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        args = [
            str(self.tools.binary("prometheus")),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--log.level=warn",
        ]
        with (self.workdir / "prometheus.log").open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout, "Prometheus to report /-/ready")
        log(f"Prometheus ready at {self.address}")
        return self

    def stop(self) -> None:
        stop_process(self.process)
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
