"""A local Kubernetes control plane (kwokctl + pinned binaries) for tests and the demo."""

from pipeline_operator.localcluster.cluster import Cluster, LocalCluster, running_cluster
from pipeline_operator.localcluster.kserve import KServe
from pipeline_operator.localcluster.processes import ClusterError
from pipeline_operator.localcluster.tools import ToolError, ToolSet
from pipeline_operator.localcluster.topology import Topology

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
