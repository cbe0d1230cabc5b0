"""``kubectl pipeline undo NAME [--to-revision N]``: roll the serving spec back.

Sets ``spec.nodePools``, ``spec.stages`` and ``spec.graph`` to the snapshot of the revision
before the current stable one (or of revision number N). The rollout settings and each stage's
scaling stay as they are; the change starts a new rollout of that revision, like any spec edit.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_operator.api.v1alpha1 import SINGULAR, InferencePipelineSpec
from pipeline_operator.cli import flags
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import spec_of, status_of
from pipeline_operator.core.observe.snapshots import Snapshot, parse, previous, revision_for
from pipeline_operator.core.planner import capacity
from pipeline_operator.core.revisions import active_revisions

# -- pure ------------------------------------------------------------------------------------


def choose(
    name: str, snaps: dict[str, Snapshot], stable: str | None, to_revision: int | None
) -> Snapshot:
    """Revision number ``to_revision``, else the one before ``stable``."""
    if to_revision is not None:
        found = next((s for s in snaps.values() if s.number == to_revision), None)
        if found is None:
            known = ", ".join(str(n) for n in sorted(s.number for s in snaps.values()))
            raise CliError(
                f"pipeline {name} has no revision {to_revision} (known: {known or 'none'})"
            )
        return found
    if stable is None:
        raise CliError(f"nothing to undo: pipeline {name} has no stable revision yet")
    before = previous(snaps, stable)
    if before is None or stable not in snaps:
        raise CliError(f"nothing to undo: no revision before stable {stable} of pipeline {name}")
    return before


def patch_for(snapshot: Snapshot, current: InferencePipelineSpec | None) -> dict[str, Any]:
    """The merge patch that sets the serving fields to ``snapshot``'s (graph removed if none);
    each stage still in ``current`` keeps its scaling there (capacity is no part of a
    revision)."""
    scaling = {} if current is None else capacity(current)
    stages = [
        s.model_copy(update={"scaling": scaling.get(s.name, s.scaling)})
        for s in snapshot.spec.stages
    ]
    serving = snapshot.spec.model_copy(update={"stages": stages}).model_dump(
        by_alias=True, mode="json", exclude_none=True, include={"node_pools", "stages", "graph"}
    )
    return {
        "spec": {
            "nodePools": serving.get("nodePools", []),
            "stages": serving["stages"],
            "graph": serving.get("graph"),
        }
    }


def plan_undo(
    name: str, obj: dict[str, Any], revisions: list[dict[str, Any]], to_revision: int | None
) -> tuple[Snapshot, dict[str, Any]]:
    """The revision to go back to and the patch, or an error saying why there is none."""
    snaps = parse(revisions)
    status = status_of(obj)
    target = choose(name, snaps, status.stable_revision, to_revision)
    spec = spec_of(obj)
    if spec is not None and revision_for(spec, snaps, active_revisions(status)) == target.revision:
        raise CliError(
            f"pipeline {name} is already at revision {target.number} ({target.revision})"
        )
    return target, patch_for(target, spec)


def started(name: str, target: Snapshot, obj: dict[str, Any] | None, waited: bool) -> str:
    """What the operator made of the undo, from the status that observed it (if waited)."""
    head = f'{SINGULAR} "{name}": spec set back to revision {target.number} ({target.revision})'
    if not waited:
        return head
    if obj is None:
        return f"{head}; the operator has not observed it yet"
    status = status_of(obj)
    if status.canary_revision == target.revision:
        return (
            f"{head}; rolling out {target.revision} over stable {status.stable_revision} "
            f"(phase {status.phase})"
        )
    return f"{head}; phase {status.phase}, stable {status.stable_revision}"


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "undo",
        parents=[parent],
        help="roll back to the previous (or a given) revision",
        **flags.doc(__doc__),
    )
    parser.add_argument("name", help="pipeline name")
    parser.add_argument(
        "--to-revision",
        type=int,
        metavar="N",
        help="revision number to go back to (see 'history'; default: the one before stable)",
    )
    flags.add_wait_flags(parser, "the operator to start the rollout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = flags.connect(args)
    namespace = client.namespace
    obj = client.get_pipeline(namespace, args.name)
    revisions = client.list_revisions(namespace, args.name)
    target, patch = plan_undo(args.name, obj, revisions, args.to_revision)
    patched = client.patch_pipeline(namespace, args.name, patch)
    seen: dict[str, Any] | None = None
    if args.wait:
        generation = int(patched.get("metadata", {}).get("generation") or 0)
        seen = client.wait(
            namespace,
            args.name,
            lambda o: (status_of(o).observed_generation or 0) >= generation,
            args.timeout,
        )
    print(started(args.name, target, seen, args.wait), flush=True)
    return 0
