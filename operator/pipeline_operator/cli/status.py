"""``kubectl pipeline status NAME [--watch] [-o json|yaml]``: the rollout of one pipeline.

Phase, message, strategy and steps (the current one marked, counted from 1 as the message
counts them), traffic per revision, the readiness of every stage of every revision,
conditions and the last command. ``--watch`` redraws until the pipeline is Healthy (exit 0)
or Aborted (exit 1), ``--timeout`` passes (exit 1) or Ctrl-C. ``-o`` prints the pipeline
object instead (with ``--watch``, once per change).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from pipeline_operator.api.v1alpha1 import (
    BlueGreen,
    Canary,
    InferencePipelineSpec,
    InferencePipelineStatus,
    Measurement,
    Phase,
    StageStatus,
)
from pipeline_operator.cli import flags
from pipeline_operator.cli.client import Client
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import NONE, age, dump, spec_of, status_of, table
from pipeline_operator.core.revisions import canary_active, roles, weight_of
from pipeline_operator.core.rollout.steps import describe

CLEAR = "\x1b[H\x1b[2J"
INDENT = "  "

# -- pure ------------------------------------------------------------------------------------


def step_lines(spec: InferencePipelineSpec, status: InferencePipelineStatus) -> list[str]:
    """Canary steps numbered from 1, the current one marked ``->`` and the passed ones
    ``done``."""
    steps = (spec.rollout.canary or Canary()).steps
    index = status.current_step_index if canary_active(status) else None
    current = None if index is None else index + 1
    lines = []
    for number, step in enumerate(steps, start=1):
        mark = "->" if number == current else "  "
        done = "  (done)" if current is not None and number < current else ""
        lines.append(f"{INDENT}{mark} {number}  {describe(step)}{done}")
    return lines or [f"{INDENT}   (none: the canary is promoted at once)"]


def pods_of(stage: StageStatus) -> str:
    """Ready pods of a stage out of those it asks for, and how many are Pending: ``1/2 (1
    Pending)``; why they are is in the stage's message."""
    line = f"{stage.ready_replicas}/{stage.replicas}"
    return f"{line} ({stage.pending} Pending)" if stage.pending else line


def role_of(status: InferencePipelineStatus, revision: str) -> str:
    return next(iter(roles(status, revision)), NONE)


def indent(text: str) -> list[str]:
    return [INDENT + line for line in text.splitlines()]


def field(label: str, value: object) -> str:
    return f"{label + ':':<14}{value}"


def header_lines(obj: dict[str, Any], spec: InferencePipelineSpec | None) -> list[str]:
    """Name, phase, message, revisions, weight, readiness and URLs."""
    meta = obj.get("metadata") or {}
    status = status_of(obj)
    strategy = strategy_of(status, spec)
    lines = [
        field("Name", meta.get("name", "")),
        field("Namespace", meta.get("namespace", "")),
        field("Phase", status.phase or "(not reconciled yet)"),
    ]
    if status.message:
        lines.append(field("Message", status.message))
    if status.abort_reason:
        lines.append(field("Abort reason", status.abort_reason))
    if (obj.get("spec") or {}).get("paused"):
        lines.append(field("Paused", "spec.paused is true (kubectl pipeline resume)"))
    lines += [
        field("Strategy", strategy),
        field("Stable", status.stable_revision or NONE),
        field("Preview" if strategy == "BlueGreen" else "Canary", status.canary_revision or NONE),
        field("Weight", weight_of(status)),
        field("Ready", status.ready or NONE),
    ]
    if status.url:
        lines.append(field("URL", status.url))
    if status.preview_url:
        lines.append(field("Preview URL", status.preview_url))
    return lines


def strategy_of(status: InferencePipelineStatus, spec: InferencePipelineSpec | None) -> str:
    return status.strategy or (spec.rollout.strategy if spec else NONE)


def strategy_lines(
    spec: InferencePipelineSpec | None, status: InferencePipelineStatus
) -> list[str]:
    """The canary steps (the current one marked), or the blue-green settings."""
    strategy = strategy_of(status, spec)
    if spec is not None and strategy == "Canary":
        return ["Steps:", *step_lines(spec, status)]
    if spec is None or strategy != "BlueGreen":
        return []
    bg = spec.rollout.blue_green or BlueGreen()
    auto = (
        f"{bg.auto_promotion_seconds}s after the preview is Ready"
        if bg.auto_promotion_seconds is not None
        else "no (waits for promote)"
    )
    return [
        "Blue-green:",
        f"{INDENT}auto-promotion: {auto}",
        f"{INDENT}scale-down delay: {bg.scale_down_delay_seconds}s",
    ]


def traffic_lines(status: InferencePipelineStatus) -> list[str]:
    if not status.traffic:
        return []
    rows = [[t.revision, role_of(status, t.revision), f"{t.weight}%"] for t in status.traffic]
    return ["Traffic:", *indent(table(("REVISION", "ROLE", "WEIGHT"), rows))]


def revision_lines(status: InferencePipelineStatus) -> list[str]:
    """Every revision, then each of its stages: service, readiness, pods, why not ready."""
    if not status.revisions:
        return []
    rows: list[list[str]] = []
    for rev in status.revisions:
        ready = "Ready" if rev.ready else "NotReady"
        rows.append([f"{rev.name} ({role_of(status, rev.name)})", "", ready, "", ""])
        rows += [
            [
                f"{INDENT}{s.name}",
                s.service,
                "Ready" if s.ready else "NotReady",
                pods_of(s),
                s.message,
            ]
            for s in rev.stages
        ]
    head = ("REVISION / STAGE", "SERVICE", "READY", "PODS", "MESSAGE")
    return ["Revisions:", *indent(table(head, rows))]


def analysis_lines(status: InferencePipelineStatus) -> list[str]:
    """The analysis of the current step and its last measurements."""
    a = status.analysis
    if a is None:
        return []
    summary = f"{INDENT}step {a.step_index + 1}, revision {a.revision}: {a.phase}"
    lines = ["Analysis:", summary + (f" ({a.message})" if a.message else "")]
    lines += [
        f"{INDENT}{INDENT}{m.metric}: {m.value} {_outcome(m)}{' ' + m.message if m.message else ''}"
        for m in a.measurements[-5:]
    ]
    return lines


def gate_lines(status: InferencePipelineStatus, now: datetime) -> list[str]:
    """The webhook gates of the canary, one row per webhook's latest answer."""
    rows = []
    for gate in status.gates:
        step = NONE if gate.step_index is None else str(gate.step_index + 1)
        if not gate.calls:
            rows.append([gate.type, step, gate.phase, NONE, NONE, "not called yet"])
        for call in gate.calls:
            answer = call.message or ("2xx" if call.success else "")
            rows.append([gate.type, step, gate.phase, call.name, age(call.at, now), answer])
    if not rows:
        return []
    head = ("TYPE", "STEP", "PHASE", "WEBHOOK", "AGE", "ANSWER")
    return ["Gates:", *indent(table(head, rows))]


def _outcome(measurement: Measurement) -> str:
    if measurement.no_data:
        return "no series"
    if measurement.error:
        return "error"
    return "ok" if measurement.success else "failed"


def condition_lines(status: InferencePipelineStatus, now: datetime) -> list[str]:
    if not status.conditions:
        return []
    rows = [
        [c.type, c.status, c.reason, age(c.last_transition_time, now), c.message]
        for c in status.conditions
    ]
    return ["Conditions:", *indent(table(("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"), rows))]


def command_lines(status: InferencePipelineStatus, now: datetime) -> list[str]:
    ack = status.last_command
    if ack is None:
        return []
    text = f"{ack.command}  {ack.result}  {age(ack.at, now)} ago"
    return [field("Last command", text + (f": {ack.message}" if ack.message else ""))]


def render_status(obj: dict[str, Any], now: datetime) -> str:
    """The full status report of one pipeline object, section by section."""
    status = status_of(obj)
    spec = spec_of(obj)
    sections = [
        header_lines(obj, spec),
        strategy_lines(spec, status),
        traffic_lines(status),
        revision_lines(status),
        router_lines(status),
        refusal_lines(status),
        analysis_lines(status),
        gate_lines(status, now),
        condition_lines(status, now),
        command_lines(status, now),
    ]
    return "\n".join(line for section in sections for line in section)


def router_lines(status: InferencePipelineStatus) -> list[str]:
    """Each graph's router: serving its current routes, or still rolling out and why."""
    if not status.routers:
        return []
    rows = [
        [r.graph, "RolledOut" if r.rolled_out else "RollingOut", r.message] for r in status.routers
    ]
    return ["Routers:", *indent(table(("GRAPH", "ROUTER", "MESSAGE"), rows))]


def refusal_lines(status: InferencePipelineStatus) -> list[str]:
    """Children the apiserver or a webhook refused at the last reconcile."""
    if not status.apply_errors:
        return []
    rows = [[e.kind, e.name, e.message] for e in status.apply_errors]
    return ["Refused:", *indent(table(("KIND", "NAME", "MESSAGE"), rows))]


def summary(obj: dict[str, Any]) -> str:
    """One line: phase, traffic split and message (which names the step)."""
    status = status_of(obj)
    traffic = (
        ", ".join(f"{role_of(status, t.revision)} {t.revision} {t.weight}%" for t in status.traffic)
        or "no traffic"
    )
    parts = [str(status.phase or "(not reconciled)"), traffic]
    if status.message:
        parts.append(status.message)
    return "  ".join(parts)


def change_line(obj: dict[str, Any], at: datetime) -> str:
    """The line ``--watch`` prints for a change when not on a terminal: the time, a summary."""
    return f"{at:%H:%M:%S}  {summary(obj)}"


def streamed(obj: dict[str, Any], output: str) -> str:
    """One object of ``--watch -o``: JSON documents one after another, YAML ones after
    ``---``."""
    text = dump(obj, output)
    return text if output == "json" else f"---\n{text}"


def settled(obj: dict[str, Any]) -> Phase | None:
    """Healthy or Aborted once the operator has observed the latest spec, else None."""
    status = status_of(obj)
    generation = (obj.get("metadata") or {}).get("generation")
    if generation is not None and (status.observed_generation or 0) < generation:
        return None
    if status.phase in (Phase.HEALTHY, Phase.ABORTED):
        return Phase(status.phase)
    return None


def verdict(name: str, obj: dict[str, Any]) -> int:
    """Exit code of a finished watch; an aborted rollout is an error."""
    status = status_of(obj)
    if settled(obj) == Phase.ABORTED:
        reason = f": {status.abort_reason}" if status.abort_reason else ""
        raise CliError(f"rollout of {status.canary_revision} of pipeline {name} aborted{reason}")
    return 0


# -- API -------------------------------------------------------------------------------------


def watch(
    client: Client,
    name: str,
    timeout: float | None,
    interval: float,
    out: TextIO,
    output: str | None = None,
) -> int:
    """Redraw (terminal), or print a line (``output``: the object) per change, until settled
    or the deadline."""
    deadline = None if not timeout else time.monotonic() + timeout
    tty = out.isatty() and output is None
    last = ""
    while True:
        obj = client.get_pipeline(client.namespace, name)
        now = datetime.now(UTC)
        line = summary(obj)
        if output is not None:
            if line != last:
                out.write(streamed(obj, output) + "\n")
        elif tty:
            stamp = now.astimezone().strftime("%H:%M:%S")
            out.write(f"{CLEAR}{render_status(obj, now)}\n\n(watching, {stamp}; Ctrl-C stops)\n")
        else:
            if not last:
                out.write(render_status(obj, now) + "\n\n")
            if line != last:
                out.write(change_line(obj, now.astimezone()) + "\n")
        out.flush()
        last = line
        if settled(obj) is not None:
            return verdict(name, obj)
        if deadline is not None and time.monotonic() >= deadline:
            phase = status_of(obj).phase or "not reconciled"
            raise CliError(
                f"timed out after {timeout:g}s waiting for pipeline {name} to become Healthy "
                f"(phase: {phase})"
            )
        time.sleep(interval)


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "status", parents=[parent], help="show a pipeline's rollout", **flags.doc(__doc__)
    )
    parser.add_argument("name", help="pipeline name")
    parser.add_argument(
        "-w", "--watch", action="store_true", help="redraw until Healthy or Aborted"
    )
    parser.add_argument(
        "--timeout",
        type=flags.positive_seconds,
        default=None,
        metavar="SECONDS",
        help="with --watch: give up (exit 1) after this long (default: no deadline)",
    )
    parser.add_argument(
        "--interval",
        type=flags.positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="with --watch: seconds between polls (default: 1)",
    )
    flags.add_output_flag(parser, "the pipeline object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = flags.connect(args)
    if args.watch:
        interval = max(args.interval, 0.1)
        return watch(client, args.name, args.timeout, interval, sys.stdout, args.output)
    obj = client.get_pipeline(client.namespace, args.name)
    text = dump(obj, args.output) if args.output else render_status(obj, datetime.now(UTC))
    print(text, flush=True)
    return 0
