"""Session fixtures: one real control plane for the whole run, a namespace per test.

By default a local kwokctl cluster, with KServe's controller manager and webhooks, is started
from the pinned tool set and torn down at the end, even when tests fail. With
``PIPELINE_TEST_CLUSTER=external`` the tests use the cluster that ``KUBECONFIG`` names instead
(a kind cluster with KServe installed, a real one); CRDs are installed there.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.harness import Cluster, LocalCluster, ToolSet, Topology
from tests.harness.cluster import CRD_DIR, claim_path

# Property tests share 2 cores with a control plane and servers: time is not what they test.
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")


def external() -> bool:
    return os.environ.get("PIPELINE_TEST_CLUSTER") == "external"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not external():
        return
    skip = pytest.mark.skip(reason="needs the local cluster's kwok node pools")
    for item in items:
        if "local_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tools() -> ToolSet:
    return ToolSet.ensure()


@pytest.fixture(scope="session")
def cluster(tools: ToolSet) -> Iterator[Cluster]:
    crds = sorted(CRD_DIR.glob("*.yaml"))
    if external():
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            pytest.fail("PIPELINE_TEST_CLUSTER=external needs KUBECONFIG to name the cluster")
        theirs = Cluster(tools, Path(kubeconfig))
        theirs.apply_crds([*tools.kserve_crds, *crds])
        yield theirs
        return
    local = LocalCluster(tools, name=f"test-{os.getpid()}")
    try:
        local.up(Topology.load(), crds)
        yield local
    finally:
        local.down()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, with a bound ``models`` claim for ``pvc://models/...``
    storage URIs; deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "pipelines.inference.dev/test=true")
    cluster.provide_claim(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    cluster.kubectl("delete", "persistentvolume", f"models-{name}", "--wait=false", check=False)
    shutil.rmtree(claim_path(name), ignore_errors=True)
