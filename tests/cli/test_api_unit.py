"""The plugin's API layer (issue and wait, watch) against a stand-in client."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import yaml

from pipeline_operator.api.v1alpha1 import COMMAND_ANNOTATION
from pipeline_operator.cli import rollout_command, status
from pipeline_operator.cli.client import Client
from pipeline_operator.cli.errors import CliError
from tests.cli import samples as s


class FakeClient:
    """Serves a scripted sequence of pipeline states and records patches."""

    def __init__(self, *states: dict[str, Any], ack: str | None = None) -> None:
        self.namespace = "ns"
        self.states = list(states)
        self.patches: list[dict[str, Any]] = []
        self.ack = ack

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if self.patches:
            value = rollout_command.command_value(self.patches[-1])
            obj["metadata"].setdefault("annotations", {}).setdefault(COMMAND_ANNOTATION, value)
        if self.ack and self.patches:
            obj["status"]["lastCommand"] = {
                "command": value,
                "result": self.ack,
                "message": "done",
                "at": s.NOW,
            }
        return obj

    def patch_pipeline(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(patch)
        return {}

    def wait(self, namespace: str, name: str, done: Any, timeout: float) -> dict[str, Any] | None:
        return Client.wait(self, namespace, name, done, timeout, interval=0.01)  # type: ignore[arg-type]


def test_issue_waits_for_the_acknowledgement() -> None:
    fake = FakeClient(s.canary(), ack="Accepted")
    out = rollout_command.issue(fake, "clf", "promote", True, 1, command_id="9")  # type: ignore[arg-type]
    assert fake.patches == [
        {"metadata": {"annotations": {"pipelines.inference.dev/command": "promote:9"}}}
    ]
    assert out == 'inferencepipeline "clf": promote accepted: done'


def test_issue_without_waiting_and_without_an_operator() -> None:
    fake = FakeClient(s.canary())
    out = rollout_command.issue(fake, "clf", "abort", False, 1, command_id="3")  # type: ignore[arg-type]
    assert out == 'inferencepipeline "clf": abort requested (abort:3)'
    with pytest.raises(CliError, match="not acknowledged within 0.05s"):
        rollout_command.issue(fake, "clf", "abort", True, 0.05)  # type: ignore[arg-type]


def test_issue_of_a_rejected_command() -> None:
    fake = FakeClient(s.canary(), ack="Rejected")
    with pytest.raises(CliError, match="promote rejected by the operator: done"):
        rollout_command.issue(fake, "clf", "promote", True, 1)  # type: ignore[arg-type]


def test_issue_of_a_command_another_client_replaced_or_removed_before_it_was_read() -> None:
    replaced = s.canary()
    replaced["metadata"]["annotations"] = {COMMAND_ANNOTATION: "abort:other"}
    fake = FakeClient(replaced)
    with pytest.raises(CliError, match=r"^promote \(promote:77\) was replaced by abort:other "):
        rollout_command.issue(fake, "clf", "promote", True, 1, command_id="77")  # type: ignore[arg-type]
    removed = s.canary()
    removed["metadata"]["annotations"] = {COMMAND_ANNOTATION: ""}
    with pytest.raises(CliError, match=r"^promote \(promote:78\) was removed before"):
        rollout_command.issue(FakeClient(removed), "clf", "promote", True, 1, command_id="78")  # type: ignore[arg-type]


def test_watch_prints_the_report_then_a_line_per_change() -> None:
    fake = FakeClient(s.canary(), s.canary(), s.healthy())
    out = io.StringIO()
    assert status.watch(fake, "clf", 5, 0.01, out) == 0  # type: ignore[arg-type]
    text = out.getvalue()
    assert text.startswith("Name:         clf\n")
    progress = [line for line in text.splitlines() if re.match(r"\d\d:\d\d:\d\d  ", line)]
    assert len(progress) == 2 and "Paused" in progress[0] and "Healthy" in progress[1]


def test_watch_deadline_and_abort() -> None:
    with pytest.raises(CliError, match=r"timed out after 0.05s .* \(phase: Paused\)"):
        status.watch(FakeClient(s.canary()), "clf", 0.05, 0.01, io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(CliError, match="aborted: aborted by user"):
        status.watch(FakeClient(s.aborted()), "clf", None, 0.01, io.StringIO())  # type: ignore[arg-type]


def test_watch_with_output_prints_the_object_per_change() -> None:
    fake = FakeClient(s.canary(), s.canary(), s.healthy())
    out = io.StringIO()
    assert status.watch(fake, "clf", 5, 0.01, out, "yaml") == 0  # type: ignore[arg-type]
    docs = list(yaml.safe_load_all(out.getvalue()))
    assert [d["status"]["phase"] for d in docs] == ["Paused", "Healthy"]
    out = io.StringIO()
    status.watch(FakeClient(s.healthy()), "clf", 5, 0.01, out, "json")  # type: ignore[arg-type]
    assert json.loads(out.getvalue()) == s.healthy()
