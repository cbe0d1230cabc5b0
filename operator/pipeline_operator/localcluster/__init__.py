"""A local Kubernetes control plane (kwokctl + pinned binaries) for tests and the demo."""

from pipeline_operator.localcluster.cluster import (
    Cluster,
    ClusterError,
    LocalCluster,
    running_cluster,
)
from pipeline_operator.localcluster.tools import ToolError, ToolSet
from pipeline_operator.localcluster.topology import Topology

__all__ = [
    "Cluster",
    "ClusterError",
    "LocalCluster",
    "ToolError",
    "ToolSet",
    "Topology",
    "running_cluster",
]
