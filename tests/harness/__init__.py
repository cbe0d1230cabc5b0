"""A local Kubernetes control plane (kwokctl + pinned binaries) for tests and the demo."""

from tests.harness.cluster import Cluster, LocalCluster, running_cluster
from tests.harness.kserve import KServe
from tests.harness.processes import ClusterError
from tests.harness.tools import ToolError, ToolSet
from tests.harness.topology import Topology

__all__ = [
    "Cluster",
    "ClusterError",
    "KServe",
    "LocalCluster",
    "ToolError",
    "ToolSet",
    "Topology",
    "running_cluster",
]
