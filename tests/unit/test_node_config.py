"""What the real nodes' harness derives (pure parts of tests/harness/node.py)."""

from __future__ import annotations

import pytest

from tests.harness.node import qualified


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
