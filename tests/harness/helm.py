"""The pinned helm binary against one cluster, with its caches in a directory of its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.harness.processes import ClusterError
from tests.harness.tools import REPO_ROOT, ToolSet

CHART = REPO_ROOT / "charts" / "inference-pipelines"


class Helm:
    def __init__(self, tools: ToolSet, kubeconfig: Path, home: Path, **env: str) -> None:
        self.binary = str(tools.binary("helm"))
        self.kubeconfig = str(kubeconfig)
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            **env,
        }

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run helm; a failure raises ClusterError with its stderr (unless ``check`` is off)."""
        cmd = [self.binary, *args, "--kubeconfig", self.kubeconfig]
        result = subprocess.run(
            cmd, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ClusterError(f"helm {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result

    def install_operator(
        self,
        release: str,
        namespace: str,
        *values: str,
        replicas: int = 2,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """``helm upgrade --install`` of the kit's chart, waiting for its pods; the CRD is the
        cluster's already (the harness installs it with KServe's). ``values``: more helm flags
        (``--set-json watch.namespaces=[...]``)."""
        return self.run(
            "upgrade", "--install", release, str(CHART), "--namespace", namespace,
            "--create-namespace", "--set", "crds.enabled=false", "--set", f"replicas={replicas}",
            *values, "--wait", "--timeout", f"{int(timeout)}s",
            timeout=timeout + 60,
        )  # fmt: skip
