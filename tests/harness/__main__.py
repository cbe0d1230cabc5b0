"""``python -m tests.harness up|down|kubeconfig|install|node-images``: manage the local
cluster, install KServe and the kit on the cluster KUBECONFIG names (a kind cluster, say), or
put the built images into the real nodes' container runtimes ahead of a cluster."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from tests.harness.cluster import CRD_DIR, DEFAULT_HOME, Cluster, LocalCluster
from tests.harness.helm import Helm
from tests.harness.kserve import KServe
from tests.harness.node import RealNodes
from tests.harness.processes import ClusterError, log
from tests.harness.tools import ToolSet
from tests.harness.topology import DEFAULT_TOPOLOGY, Topology


def install(tools: ToolSet, gpus: int) -> None:
    """KServe's CRDs and chart, the kit's CRD and chart, on the cluster KUBECONFIG names; GPU
    nodes (labelled ``nvidia.com/gpu.present``) advertise ``gpus`` GPUs where no device
    plugin does."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        raise ClusterError("install needs KUBECONFIG to name the cluster")
    cluster = Cluster(tools, Path(kubeconfig))
    cluster.apply_crds([*tools.kserve_crds, *sorted(CRD_DIR.glob("*.yaml"))])
    if gpus:
        nodes = json.loads(
            cluster.kubectl("get", "nodes", "-l", "nvidia.com/gpu.present", "-o", "json").stdout
        )
        for node in nodes["items"]:
            cluster.patch_node_status(
                node["metadata"]["name"], {"capacity": {"nvidia.com/gpu": str(gpus)}}
            )
    KServe(cluster, DEFAULT_HOME / "external.kserve").start()
    helm = Helm(tools, cluster.kubeconfig, DEFAULT_HOME / "external.helm")
    helm.install_operator("inference-pipelines", "inference-pipelines", timeout=300)
    log("KServe and the operator are installed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.harness")
    parser.add_argument("command", choices=["up", "down", "kubeconfig", "install", "node-images"])
    parser.add_argument("--name", default="pipelines", help="cluster name (default: pipelines)")
    parser.add_argument(
        "--topology",
        type=Path,
        default=DEFAULT_TOPOLOGY,
        help="node pools YAML (default: the bundled topology.yaml)",
    )
    parser.add_argument(
        "--gpus", type=int, default=8, help="install: GPUs each GPU node advertises (0: none)"
    )
    args = parser.parse_args(argv)
    if args.command == "install":
        install(ToolSet.ensure(), args.gpus)
        return
    cluster = LocalCluster(ToolSet.ensure(), name=args.name)
    if args.command == "node-images":
        topology = Topology.load(args.topology)
        RealNodes(cluster, topology.real_nodes).prepare_images()
    elif args.command == "up":
        cluster.up(Topology.load(args.topology), sorted(CRD_DIR.glob("*.yaml")))
        print(f"export KUBECONFIG={cluster.kubeconfig}")
    elif args.command == "down":
        cluster.down()
    else:
        print(cluster.kubeconfig)


if __name__ == "__main__":
    main()
