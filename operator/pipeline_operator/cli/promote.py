"""``kubectl pipeline promote NAME [--full]``: move a rollout on, or finish it at once.

Canary: ``promote`` skips the current pause or analysis step, ``--full`` makes the canary
stable at 100% now. Blue-green: either switches traffic to the preview.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineStatus, Phase
from pipeline_operator.cli import flags, rollout_command
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import check_not_paused, status_of, where

# -- pure ------------------------------------------------------------------------------------


def verb(full: bool) -> str:
    return "promote-full" if full else "promote"


def revision_ready(status: InferencePipelineStatus, revision: str) -> tuple[bool, str]:
    """Whether status reports ``revision`` Ready, and ``ready/total`` stages."""
    entry = next((r for r in status.revisions if r.name == revision), None)
    if entry is None:
        return False, "0/0"
    ready = sum(1 for s in entry.stages if s.ready)
    return entry.ready, f"{ready}/{len(entry.stages)}"


def check(name: str, obj: dict[str, Any]) -> None:
    """Fail unless a rollout is in progress with its new revision Ready and not held."""
    status = status_of(obj)
    canary = status.canary_revision
    if canary is None:
        raise CliError(f"nothing to promote: {where(name, status)}")
    if status.phase == Phase.ABORTED:
        raise CliError(
            f"nothing to promote: the rollout of {canary} was aborted; "
            f"'kubectl pipeline retry {name}' restarts it"
        )
    check_not_paused(name, obj)
    ready, stages = revision_ready(status, canary)
    if not ready:
        raise CliError(f"cannot promote: revision {canary} is not Ready ({stages} stages ready)")


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "promote",
        parents=[parent],
        help="move a paused rollout on (--full: finish it now)",
        **flags.doc(__doc__),
    )
    parser.add_argument("name", help="pipeline name")
    parser.add_argument(
        "--full",
        action="store_true",
        help="make the new revision stable at 100%% now, skipping the remaining steps",
    )
    flags.add_wait_flags(parser, "the operator to acknowledge the command")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return rollout_command.run_checked(args, flags.connect(args), verb(args.full), check)
