"""``kubectl pipeline abort NAME``: send all traffic back to the stable revision at once."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_operator.api.v1alpha1 import Phase
from pipeline_operator.cli import flags, rollout_command
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import status_of, where

VERB = "abort"

# -- pure ------------------------------------------------------------------------------------


def check(name: str, obj: dict[str, Any]) -> None:
    """Fail unless a rollout is in progress."""
    status = status_of(obj)
    if status.canary_revision is None:
        raise CliError(f"nothing to abort: {where(name, status)}")
    if status.phase == Phase.ABORTED:
        raise CliError(f"nothing to abort: the rollout of {status.canary_revision} was aborted")


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        VERB, parents=[parent], help="abort the rollout in progress", **flags.doc(__doc__)
    )
    parser.add_argument("name", help="pipeline name")
    flags.add_wait_flags(parser, "the operator to acknowledge the command")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return rollout_command.run_checked(args, flags.connect(args), VERB, check)
