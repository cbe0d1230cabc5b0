"""`make demo`, the README's first command, runs as a user runs it: without torch.

It runs on the test session's cluster (the machine's real nodes are that cluster's), as
``make demo`` runs on its own: the chart installed, pods started from the images, requests
through the InferenceGraph's Service. The demo process sees torch as not installed (a
``sitecustomize`` that every child inherits through ``PYTHONPATH`` blocks the import), so a
harness module that reached for torch would fail the run. Its output must show the good canary
promoted by analysis and the broken one aborted, with traffic measured through the pods.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import Cluster, LocalCluster

ROOT = Path(__file__).resolve().parents[2]
BLOCK_TORCH = 'import sys\nsys.modules["torch"] = None  # as if not installed\n'

pytestmark = pytest.mark.local_only


@pytest.mark.timeout(1500)
def test_the_demo_promotes_a_good_canary_and_aborts_a_broken_one_without_torch(
    cluster: Cluster, tmp_path: Path
) -> None:
    assert isinstance(cluster, LocalCluster)
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TORCH)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, "-m", "tests.harness.demo", "--cluster", cluster.name],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=1440,
    )
    out = done.stdout
    assert done.returncode == 0, f"{out[-4000:]}\n{done.stderr[-4000:]}"
    assert "No module named 'torch'" not in done.stderr
    assert re.search(r"Rollout 1 ended: Healthy: revision \w+ serves 100%", out), out[-4000:]
    assert "Rollout 2 ended: Aborted:" in out, out[-4000:]
    assert re.search(r"analysis error-rate: .*\[FAILED\]", out), out[-4000:]
    # Both revisions' pods answered requests through the Service while the canary ran.
    assert re.search(r"answered by \[\w+=\d+%, \w+=\d+%\]", out), out[-4000:]
