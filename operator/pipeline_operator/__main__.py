"""``python -m pipeline_operator``: run the operator.

Flags override ``PIPELINE_OPERATOR_*`` environment variables (see settings.py).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import kopf

from pipeline_operator.controller import handlers  # noqa: F401 (registers the kopf handlers)
from pipeline_operator.settings import OperatorSettings


def parse_args(argv: list[str] | None = None) -> OperatorSettings:
    parser = argparse.ArgumentParser(prog="python -m pipeline_operator", description=__doc__)
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        help="namespace to watch (repeatable); default: the whole cluster",
    )
    parser.add_argument(
        "--lease",
        dest="lease_name",
        help="act only while holding this Lease: replicas elect one leader through it",
    )
    parser.add_argument("--lease-namespace", help="namespace of the Lease")
    parser.add_argument("--workers", type=int, help="threads for API writes (default 8)")
    parser.add_argument("--deployment-mode", help="KServe deployment mode of the children")
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--health-port", type=int)
    parser.add_argument("--resync-seconds", type=float)
    parser.add_argument(
        "--drain-seconds", type=float, help="keep retired InferenceServices this long (default 30)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {
        key: value for key, value in vars(args).items() if value is not None and key != "verbose"
    }
    settings = OperatorSettings(**overrides)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s",'
        '"message":"%(message)s"}',
    )
    return settings


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    # Health is served by the operator itself (controller/health.py) from its first moment,
    # not by kopf's liveness endpoint, which answers only once start-up is over.
    kopf.run(
        registry=kopf.get_default_registry(),
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=True,  # no kopf peering: replicas elect a leader through a Lease
        memo=kopf.Memo(settings=settings),
    )


if __name__ == "__main__":
    main()
