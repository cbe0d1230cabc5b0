"""``kubectl pipeline pause|resume NAME``: hold or release rollouts through ``spec.paused``.

While paused, a rollout in progress stands still (its pause timers too) and a spec change
deploys nothing (the operator records it as ``status.pendingRevision``); resume carries on
where it stood and rolls a pending revision out.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_operator.api.command_annotation import paused_patch
from pipeline_operator.api.v1alpha1 import SINGULAR
from pipeline_operator.cli import flags

# -- pure ------------------------------------------------------------------------------------


def change(obj: dict[str, Any], paused: bool) -> dict[str, Any] | None:
    """The merge patch that sets ``spec.paused``, or None when it is set so already."""
    current = bool((obj.get("spec") or {}).get("paused", False))
    return None if current == paused else paused_patch(paused)


def message(name: str, paused: bool, changed: bool) -> str:
    state = "paused" if paused else "resumed"
    if not changed:
        state = "already paused" if paused else "not paused"
        return f'{SINGULAR} "{name}" is {state}'
    return f'{SINGULAR} "{name}" {state}'


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    for verb, paused, text in (
        ("pause", True, "hold rollouts of the pipeline (spec.paused: true)"),
        ("resume", False, "release a paused pipeline (spec.paused: false)"),
    ):
        parser = sub.add_parser(verb, parents=[parent], help=text, **flags.doc(__doc__))
        parser.add_argument("name", help="pipeline name")
        parser.set_defaults(func=run, paused=paused)


def run(args: argparse.Namespace) -> int:
    client = flags.connect(args)
    obj = client.get_pipeline(client.namespace, args.name)
    patch = change(obj, args.paused)
    if patch is not None:
        client.patch_pipeline(client.namespace, args.name, patch)
    print(message(args.name, args.paused, patch is not None), flush=True)
    return 0
