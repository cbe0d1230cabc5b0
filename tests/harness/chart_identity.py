"""Run the operator with exactly the chart's RBAC: its ServiceAccount, Roles and bindings.

The chart is rendered for one watched namespace (as ``helm install`` with
``watch.namespaces=[NS]`` would), only its ServiceAccount and RBAC objects are applied, and a
kubeconfig carrying a token of that ServiceAccount is written. An operator started with it
can do what the chart grants and nothing more, so a verb missing from the chart fails a test.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.harness.cluster import Cluster
from tests.harness.processes import ClusterError

CHART = Path(__file__).resolve().parents[2] / "charts" / "inference-pipelines"
RBAC_TEMPLATES = ("templates/serviceaccount.yaml", "templates/rbac.yaml")
LEADER_TEMPLATE = "templates/leader-election.yaml"  # rendered with more than one replica
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding"}


class ChartIdentity:
    """The chart's identity for an operator watching ``namespace``, installed there; with
    ``replicas`` > 1, the replicas may hold the leader Lease there too."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        workdir: Path,
        replicas: int = 1,
        values: Sequence[str] = (),
    ) -> None:
        """``values``: more ``--set`` values of the chart (``rbac.secretReads.enabled=true``)."""
        self.cluster = cluster
        self.values = list(values)
        self.namespace = namespace
        self.replicas = replicas
        self.kubeconfig = workdir / f"operator-{namespace}.kubeconfig"
        self.release = f"ipl-{namespace}"
        self._objects: list[dict[str, Any]] = []

    def create(self) -> Path:
        """Apply the chart's ServiceAccount and RBAC; return a kubeconfig that acts as it."""
        self._objects = self._render()
        self.cluster.kubectl(
            "apply", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in self._objects)
        )
        account = next(o for o in self._objects if o["kind"] == "ServiceAccount")
        token = self.cluster.kubectl(
            "create", "token", account["metadata"]["name"], "-n", self.namespace,
            "--duration", "24h",
        ).stdout.strip()  # fmt: skip
        config = yaml.safe_load(self.cluster.kubeconfig.read_text(encoding="utf-8"))
        config["users"] = [
            {"name": user["name"], "user": {"token": token}} for user in config["users"]
        ]
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.kubeconfig.chmod(0o600)
        return self.kubeconfig

    def delete(self) -> None:
        """Remove the cluster-scoped RBAC objects (the namespaced ones go with the namespace)."""
        for obj in self._objects:
            if obj["kind"] in CLUSTER_SCOPED:
                self.cluster.kubectl(
                    "delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found",
                    check=False,
                )  # fmt: skip
        self.kubeconfig.unlink(missing_ok=True)

    def _render(self) -> list[dict[str, Any]]:
        args = [str(self.cluster.tools.binary("helm")), "template", self.release, str(CHART)]
        args += ["--namespace", self.namespace, "--set", "crds.enabled=false"]
        args += ["--set-json", f"watch.namespaces={json.dumps([self.namespace])}"]
        args += ["--set", f"replicas={self.replicas}"]
        for value in self.values:
            args += ["--set", value]
        for template in (*RBAC_TEMPLATES, *([LEADER_TEMPLATE] if self.replicas > 1 else [])):
            args += ["--show-only", template]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise ClusterError(f"helm template failed:\n{result.stderr.strip()}")
        return [o for o in yaml.safe_load_all(result.stdout) if o]
