"""Warm start time of the local cluster (``make bench-cluster``): median of N up/down cycles,
with KServe's controller manager and webhooks and without them.

"Warm" means the tool set is already built; each start is a fresh control plane (etcd,
kube-apiserver, controller-manager, scheduler, kwok) with the CRDs and node pools installed,
and, with KServe, its configuration, manager, webhooks and runtimes ready.
"""

from __future__ import annotations

import argparse
import statistics
import time

from tests.harness import LocalCluster, ToolSet, Topology
from tests.harness.cluster import CRD_DIR


def starts(tools: ToolSet, count: int, with_kserve: bool) -> list[float]:
    crds = sorted(CRD_DIR.glob("*.yaml"))
    samples = []
    for i in range(count):
        cluster = LocalCluster(tools, name=f"start-bench-{i}", with_kserve=with_kserve)
        started = time.perf_counter()
        try:
            cluster.up(Topology.load(), crds)
            samples.append(time.perf_counter() - started)
        finally:
            cluster.down()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    tools = ToolSet.ensure()
    results = {kserve: starts(tools, args.starts, kserve) for kserve in (False, True)}
    nodes = len(Topology.load().nodes())
    print(f"\nlocal cluster warm start (up + CRDs + {nodes} nodes Ready), {args.starts} starts")
    for kserve, samples in results.items():
        label = "with KServe   " if kserve else "without KServe"
        print(
            f"  {label} median {statistics.median(samples):.1f}s  min {min(samples):.1f}s  "
            f"max {max(samples):.1f}s  all {' '.join(f'{s:.1f}' for s in samples)}"
        )
    ratio = statistics.median(results[True]) / statistics.median(results[False])
    print(f"  ratio with / without KServe: {ratio:.2f}")


if __name__ == "__main__":
    main()
