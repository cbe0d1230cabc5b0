"""``kubectl pipeline history NAME [-o json|yaml]``: the pipeline's revisions, oldest first,
and their roles.

Revisions are the spec snapshots the operator keeps (ControllerRevisions); the numbers are
what ``undo --to-revision`` takes. ``-o`` prints each revision's number, hash, roles, stages,
creation time and the spec it snapshots.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from pipeline_operator.cli import flags
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import NONE, age, dump, spec_of, status_of, table
from pipeline_operator.core.naming import LABEL_REVISION
from pipeline_operator.core.observe.snapshots import parse, revision_for
from pipeline_operator.core.revisions import active_revisions
from pipeline_operator.core.revisions import roles as revision_roles

HEADERS = ("REVISION", "HASH", "ROLE", "STAGES", "AGE")

# -- pure ------------------------------------------------------------------------------------


def roles(obj: dict[str, Any], revision: str, desired: str | None = None) -> list[str]:
    """What ``revision`` is to the pipeline now: stable, canary (preview), aborted, previous,
    desired (``desired``: the revision the spec is now)."""
    out = revision_roles(status_of(obj), revision)
    if not out and revision == desired:
        out.append("desired")
    return out


def entries(obj: dict[str, Any], revisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each revision, oldest first: number, hash, roles, stages, creation time and spec."""
    snaps = parse(revisions)
    spec = spec_of(obj)
    desired = None if spec is None else revision_for(spec, snaps, active_revisions(status_of(obj)))
    stored = {(r["metadata"].get("labels") or {}).get(LABEL_REVISION): r for r in revisions}
    return [
        {
            "revision": s.number,
            "hash": s.revision,
            "roles": roles(obj, s.revision, desired),
            "stages": [stage.name for stage in s.spec.stages],
            "creationTimestamp": stored[s.revision]["metadata"].get("creationTimestamp"),
            "spec": stored[s.revision]["data"]["spec"],
        }
        for s in sorted(snaps.values(), key=lambda s: s.number)
    ]


def render_history(obj: dict[str, Any], revisions: list[dict[str, Any]], now: datetime) -> str:
    rows = [
        [
            str(e["revision"]),
            e["hash"],
            ",".join(e["roles"]) or NONE,
            ",".join(e["stages"]),
            age(e["creationTimestamp"], now),
        ]
        for e in entries(obj, revisions)
    ]
    return table(HEADERS, rows)


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "history", parents=[parent], help="list the pipeline's revisions", **flags.doc(__doc__)
    )
    parser.add_argument("name", help="pipeline name")
    flags.add_output_flag(parser, "the revisions as a list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = flags.connect(args)
    obj = client.get_pipeline(client.namespace, args.name)
    revisions = client.list_revisions(client.namespace, args.name)
    if not parse(revisions):
        raise CliError(f"pipeline {args.name} has no revisions yet (is the operator running?)")
    if args.output:
        print(dump(entries(obj, revisions), args.output), flush=True)
    else:
        print(render_history(obj, revisions, datetime.now(UTC)), flush=True)
    return 0
