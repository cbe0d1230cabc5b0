"""Shared command-line flags (wiring only): connection, wait and output flags."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_operator.cli.client import Client, Target
from pipeline_operator.cli.format import OUTPUTS

DEFAULT_WAIT_SECONDS = 10.0


def connection_parent() -> argparse.ArgumentParser:
    """The standard kubectl flags, accepted before and after the verb."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("cluster connection")
    group.add_argument(
        "-n",
        "--namespace",
        default=argparse.SUPPRESS,
        help="namespace (default: the kubeconfig context's namespace, else 'default')",
    )
    group.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context to use")
    group.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS,
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    return parent


def target_of(args: argparse.Namespace) -> Target:
    return Target(
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        namespace=getattr(args, "namespace", None),
    )


def connect(args: argparse.Namespace) -> Client:
    return Client(target_of(args))


def positive_seconds(value: str) -> float:
    """A number of seconds >= 0 (argparse type)."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
    return seconds


def add_wait_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help=f"do not wait for {what}",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for {what} (default: {DEFAULT_WAIT_SECONDS:g})",
    )


def add_output_flag(parser: argparse.ArgumentParser, what: str, default: str | None = None) -> None:
    parser.add_argument(
        "-o", "--output", choices=OUTPUTS, default=default, help=f"output format: {what}"
    )


def doc(text: str | None) -> dict[str, Any]:
    """``add_parser`` keywords showing a module docstring as the command's description."""
    return {
        "description": (text or "").replace("``", "").strip(),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
