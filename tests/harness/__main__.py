"""``python -m tests.harness up|down|kubeconfig``: manage the local cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.harness.cluster import CRD_DIR, LocalCluster
from tests.harness.tools import ToolSet
from tests.harness.topology import DEFAULT_TOPOLOGY, Topology


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.harness")
    parser.add_argument("command", choices=["up", "down", "kubeconfig"])
    parser.add_argument("--name", default="pipelines", help="cluster name (default: pipelines)")
    parser.add_argument(
        "--topology",
        type=Path,
        default=DEFAULT_TOPOLOGY,
        help="node pools YAML (default: the bundled topology.yaml)",
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(ToolSet.ensure(), name=args.name)
    if args.command == "up":
        cluster.up(Topology.load(args.topology), sorted(CRD_DIR.glob("*.yaml")))
        print(f"export KUBECONFIG={cluster.kubeconfig}")
    elif args.command == "down":
        cluster.down()
    else:
        print(cluster.kubeconfig)


if __name__ == "__main__":
    main()
