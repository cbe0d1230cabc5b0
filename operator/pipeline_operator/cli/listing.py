"""``kubectl pipeline list [-A] [-o json|yaml]``: the pipelines of a namespace (or all) and
their rollouts; ``-o`` prints the pipeline objects as a ``List``, as ``kubectl get`` does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline_operator.cli import flags
from pipeline_operator.cli.format import NONE, age, as_list, dump, status_of, table
from pipeline_operator.core.revisions import weight_of

HEADERS = ("NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "READY", "AGE")

# -- pure ------------------------------------------------------------------------------------


def row(obj: dict[str, Any], now: datetime, with_namespace: bool) -> list[str]:
    meta = obj.get("metadata") or {}
    status = status_of(obj)
    cells = [
        str(meta.get("name", "")),
        str(status.phase or NONE),
        status.stable_revision or NONE,
        status.canary_revision or NONE,
        weight_of(status),
        status.ready or NONE,
        age(meta.get("creationTimestamp"), now),
    ]
    return [str(meta.get("namespace", "")), *cells] if with_namespace else cells


def ordered(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sorted by namespace and name."""
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def render_list(items: Sequence[dict[str, Any]], now: datetime, with_namespace: bool) -> str:
    """The table, sorted by namespace and name."""
    headers = ("NAMESPACE", *HEADERS) if with_namespace else HEADERS
    return table(headers, [row(o, now, with_namespace) for o in ordered(items)])


def nothing_found(namespace: str | None) -> str:
    return (
        "No resources found"
        if namespace is None
        else f"No resources found in {namespace} namespace."
    )


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "list",
        aliases=["ls"],
        parents=[parent],
        help="list pipelines and their rollouts",
        **flags.doc(__doc__),
    )
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list pipelines of every namespace"
    )
    flags.add_output_flag(parser, "the pipeline objects as a List")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = flags.connect(args)
    namespace = None if args.all_namespaces else client.namespace
    items = client.list_pipelines(namespace)
    if args.output:
        print(dump(as_list(ordered(items)), args.output), flush=True)
        return 0
    if not items:
        print(nothing_found(namespace), file=sys.stderr)
        return 0
    print(render_list(items, datetime.now(UTC), args.all_namespaces), flush=True)
    return 0
