"""``kubectl pipeline retry NAME``: restart an aborted rollout from its first step."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_operator.api.v1alpha1 import Phase
from pipeline_operator.cli import flags, rollout_command
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import check_not_paused, status_of, where

VERB = "retry"

# -- pure ------------------------------------------------------------------------------------


def check(name: str, obj: dict[str, Any]) -> None:
    """Fail unless the last rollout was aborted and rollouts are not held."""
    status = status_of(obj)
    if status.phase != Phase.ABORTED or status.canary_revision is None:
        raise CliError(f"nothing to retry: {where(name, status)} (no aborted rollout)")
    check_not_paused(name, obj)


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        VERB, parents=[parent], help="restart an aborted rollout", **flags.doc(__doc__)
    )
    parser.add_argument("name", help="pipeline name")
    flags.add_wait_flags(parser, "the operator to acknowledge the command")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return rollout_command.run_checked(args, flags.connect(args), VERB, check)
