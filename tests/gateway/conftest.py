"""The Gateway API tier: Traefik on the local cluster, the suite's echo backends on its real
nodes."""

from __future__ import annotations

import subprocess

import pytest

from tests.harness import Cluster, LocalCluster
from tests.harness.gateway import CONFORMANCE_IMAGES
from tests.harness.tools import REPO_ROOT


@pytest.fixture(scope="session")
def conformance_images(cluster: Cluster) -> None:
    """The conformance suite's images (its echo server, a CoreDNS) in the untainted real
    nodes' container runtimes, built first when Docker lacks them."""
    if not isinstance(cluster, LocalCluster):
        pytest.skip("needs the local cluster's real nodes")
    inspect = ["docker", "image", "inspect", *CONFORMANCE_IMAGES]
    if subprocess.run(inspect, capture_output=True).returncode != 0:
        build = REPO_ROOT / "hack" / "images" / "build.sh"
        subprocess.run(["bash", str(build), "gateway-echo", "gateway-coredns"], check=True)
    untainted = [node for node in cluster.nodes.nodes if not node.taints]
    assert untainted, "the suite's backends need an untainted real node"
    for node in untainted:
        cluster.nodes.import_images(node.model_copy(update={"images": list(CONFORMANCE_IMAGES)}))
