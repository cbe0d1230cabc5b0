"""Warm start time of the local cluster (``make bench-cluster``): median of N up/down cycles.

"Warm" means the tool set is already built; each start is a fresh control plane (etcd,
kube-apiserver, controller-manager, scheduler, kwok) with the CRDs and node pools installed.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pipeline_operator.localcluster import LocalCluster, ToolSet, Topology
from pipeline_operator.localcluster.cluster import CRD_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    tools = ToolSet.ensure()
    crds = sorted(CRD_DIR.glob("*.yaml"))
    samples = []
    for i in range(args.starts):
        cluster = LocalCluster(tools, name=f"start-bench-{i}")
        started = time.perf_counter()
        try:
            cluster.up(Topology.load(), crds)
            samples.append(time.perf_counter() - started)
        finally:
            cluster.down()
    print(
        f"\nlocal cluster warm start (up + CRDs + {len(Topology.load().nodes())} nodes Ready), "
        f"{args.starts} starts"
    )
    print(
        f"  median {statistics.median(samples):.1f}s  min {min(samples):.1f}s  "
        f"max {max(samples):.1f}s  all {' '.join(f'{s:.1f}' for s in samples)}"
    )


if __name__ == "__main__":
    main()
