"""Issuing a rollout command (promote, promote-full, abort, retry) and awaiting its ack.

The command is the annotation ``pipelines.inference.dev/command: <verb>:<id>``; the operator
acknowledges the value in ``status.lastCommand`` as Accepted or Rejected with a message.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pipeline_operator.api.command_annotation import command_patch
from pipeline_operator.api.v1alpha1 import COMMAND_ANNOTATION, SINGULAR, CommandAck
from pipeline_operator.cli.client import Client
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import status_of

# -- pure ------------------------------------------------------------------------------------


def command_value(patch: dict[str, Any]) -> str:
    """The annotation value a :func:`command_patch` sets."""
    return str(patch["metadata"]["annotations"][COMMAND_ANNOTATION])


def acknowledgement(obj: dict[str, Any], value: str) -> CommandAck | None:
    """``status.lastCommand`` when it acknowledges ``value``."""
    ack = status_of(obj).last_command
    return ack if ack is not None and ack.command == value else None


def replaced(obj: dict[str, Any], value: str) -> str | None:
    """How the command ``value`` was lost before the operator acknowledged it (replaced by an
    abort from another client, or removed), if it was."""
    current = (obj["metadata"].get("annotations") or {}).get(COMMAND_ANNOTATION)
    if current == value or acknowledgement(obj, value) is not None:
        return None
    return f"replaced by {current}" if current else "removed"


def outcome(name: str, verb: str, ack: CommandAck) -> str:
    """The line printed for an accepted command; a rejected one is an error."""
    message = f": {ack.message}" if ack.message else ""
    if ack.result != "Accepted":
        raise CliError(f"{verb} rejected by the operator{message}")
    return f'{SINGULAR} "{name}": {verb} accepted{message}'


def not_acknowledged(verb: str, value: str, timeout: float) -> CliError:
    return CliError(
        f"{verb} was not acknowledged within {timeout:g}s (is the operator running?); "
        f"the command stays pending as {COMMAND_ANNOTATION}={value}"
    )


# -- API -------------------------------------------------------------------------------------


def issue(
    client: Client, name: str, verb: str, wait: bool, timeout: float, command_id: str | None = None
) -> str:
    """Patch the command annotation; wait for the operator's verdict unless ``wait`` is off."""
    namespace = client.namespace
    patch = command_patch(verb, command_id)
    value = command_value(patch)
    client.patch_pipeline(namespace, name, patch)
    if not wait:
        return f'{SINGULAR} "{name}": {verb} requested ({value})'
    obj = client.wait(
        namespace,
        name,
        lambda o: acknowledgement(o, value) is not None or replaced(o, value) is not None,
        timeout,
    )
    if obj is None:
        raise not_acknowledged(verb, value, timeout)
    ack = acknowledgement(obj, value)
    if ack is None:
        raise CliError(f"{verb} ({value}) was {replaced(obj, value)} before the operator read it")
    return outcome(name, verb, ack)


# -- wiring ----------------------------------------------------------------------------------


Check = Callable[[str, dict[str, Any]], None]


def run_checked(args: argparse.Namespace, client: Client, verb: str, check: Check) -> int:
    """Read the pipeline, ``check(name, obj)`` that the command makes sense, issue it."""
    obj = client.get_pipeline(client.namespace, args.name)
    check(args.name, obj)
    print(issue(client, args.name, verb, args.wait, args.timeout), flush=True)
    return 0
