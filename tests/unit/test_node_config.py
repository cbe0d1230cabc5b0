"""What the real nodes' harness derives (pure parts of tests/harness/node.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.harness.node import qualified
from tests.harness.tools import REPO_ROOT
from tests.harness.topology import Topology


@pytest.mark.parametrize(
    ("image", "listed"),
    [
        ("kserve/router:v0.20.0", "docker.io/kserve/router:v0.20.0"),
        ("busybox:1", "docker.io/library/busybox:1"),
        (
            "ghcr.io/inference-pipelines/operator:0.1.0",
            "ghcr.io/inference-pipelines/operator:0.1.0",
        ),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost/x:1", "localhost/x:1"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
    ],
)
def test_an_image_is_looked_up_by_the_name_containerd_lists(image: str, listed: str) -> None:
    assert qualified(image) == listed


@pytest.mark.parametrize("kserve", ["newest", "floor"])
def test_every_image_a_real_node_imports_is_one_make_images_builds(kserve: str) -> None:
    env = {**os.environ, "PIPELINE_KSERVE": kserve}
    listed = subprocess.run(
        ["bash", str(REPO_ROOT / "hack/images/build.sh"), "--list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    versions = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "hack/tools/versions.env").read_text().splitlines()
        if line[:1].isupper()
    )
    if kserve == "floor":
        versions["KSERVE_VERSION"] = versions["KSERVE_FLOOR"]
    for path in (REPO_ROOT / "tests/harness/topology.yaml", REPO_ROOT / "bench/topology.yaml"):
        for node in Topology.load(path).real_nodes:
            assert set(node.pinned(versions).images) <= set(listed), (path.name, node.name)
    assert f"kserve/router:{versions['KSERVE_VERSION']}" in listed
