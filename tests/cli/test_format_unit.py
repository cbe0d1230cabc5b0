"""Pure layer of list, history and status: tables, ages, the status report, watch ends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, Phase
from pipeline_operator.cli import history, listing, status
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import age, as_list, dump, status_of, table
from pipeline_operator.core.rollout.steps import current_step
from tests.cli import samples as s

NOW = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)


def test_table_pads_columns_like_kubectl() -> None:
    assert table(("A", "LONGER"), [["x", "1"], ["yyyy", ""]]).splitlines() == [
        "A      LONGER",
        "x      1",
        "yyyy",
    ]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (95, "95s"),
        (200, "3m20s"),
        (300, "5m"),
        (1500, "25m"),
        (4 * 3600 + 60, "4h1m"),
        (20 * 3600, "20h"),
        (3 * 86400 + 3600, "3d1h"),
        (30 * 86400, "30d"),
        (-5, "0s"),
    ],
)
def test_age(seconds: int, expected: str) -> None:
    then = (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert age(then, NOW) == expected


def test_age_of_nothing() -> None:
    assert age(None, NOW) == age("not a time", NOW) == "<unknown>"


def test_list_rows() -> None:
    lines = listing.render_list([s.canary(), s.healthy()], NOW, False).splitlines()
    assert lines[0].split() == list(listing.HEADERS)
    assert lines[1].split() == ["clf", "Paused", s.V1, s.V2, "60%", "4/4", "65m"]
    assert lines[2].split() == ["clf", "Healthy", s.V1, "-", "-", "2/2", "65m"]


def test_list_all_namespaces_and_aborted_weight() -> None:
    other = s.aborted()
    other["metadata"]["namespace"] = "a-first"
    lines = listing.render_list([s.healthy(), other], NOW, True).splitlines()
    assert lines[0].split()[0] == "NAMESPACE"
    assert lines[1].split() == ["a-first", "clf", "Aborted", s.V1, s.V2, "-", "4/4", "65m"]


def test_list_of_a_pipeline_without_status() -> None:
    obj = {"metadata": {"name": "new", "namespace": "ns"}, "spec": {}}
    assert listing.row(obj, NOW, False) == ["new", "-", "-", "-", "-", "-", "<unknown>"]
    assert listing.nothing_found("ns") == "No resources found in ns namespace."


def test_history_roles() -> None:
    revs = s.revisions("bert-v1", "bert-v2", "bert-v3")
    rows = [r.split() for r in history.render_history(s.canary(), revs, NOW).splitlines()]
    assert rows[0] == list(history.HEADERS)
    assert [r[:3] for r in rows[1:]] == [
        ["1", s.V1, "stable"],
        ["2", s.V2, "canary"],
        ["3", s.V3, "-"],
    ]
    assert rows[1][3:] == ["tokenize,classify", "35m"]
    assert history.roles(s.aborted(), s.V2) == ["aborted"]
    at_v3 = s.pipeline(model="bert-v3", phase="Healthy", stableRevision=s.V1)
    v3 = next(
        e for e in history.entries(at_v3, s.revisions("bert-v1", "bert-v3")) if e["hash"] == s.V3
    )
    assert v3["roles"] == ["desired"]


def test_history_entries_for_json_and_yaml() -> None:
    revs = s.revisions("bert-v1", "bert-v2")
    first, second = history.entries(s.canary(), revs)
    assert first == {
        "revision": 1,
        "hash": s.V1,
        "roles": ["stable"],
        "stages": ["tokenize", "classify"],
        "creationTimestamp": "2024-05-01T11:30:00Z",
        "spec": revs[0]["data"]["spec"],
    }
    assert (second["revision"], second["roles"]) == (2, ["canary"])
    assert yaml.safe_load(dump([first, second], "yaml")) == [first, second]


def test_outputs_are_what_kubectl_get_prints() -> None:
    listed = json.loads(dump(as_list(listing.ordered([s.healthy(), s.aborted()])), "json"))
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert [o["status"]["phase"] for o in listed["items"]] == ["Healthy", "Aborted"]
    assert dump(s.canary(), "json").startswith('{\n    "apiVersion"')  # indented by 4
    assert yaml.safe_load(dump(s.canary(), "yaml")) == s.canary()


def test_the_current_step_counts_from_1_and_is_a_dash_without_a_canary_on_a_step() -> None:
    spec = InferencePipelineSpec.model_validate(s.spec())
    assert current_step(spec, status_of(s.canary())) == "4/4"
    assert current_step(spec, status_of(s.canary(currentStepIndex=4))) == "-"  # steps done
    assert current_step(spec, status_of(s.canary(strategy="BlueGreen"))) == "-"
    assert current_step(spec, status_of(s.aborted())) == "-"
    assert current_step(spec, status_of(s.healthy())) == "-"


def test_status_report_of_a_paused_canary() -> None:
    text = status.render_status(s.canary(ready=False), NOW)
    lines = text.splitlines()
    assert "Phase:        Paused" in lines
    assert f"Canary:       {s.V2}" in lines and "Weight:       60%" in lines
    assert "  -> 4  pause (until promote)" in lines  # counted from 1, as status.message
    assert "     2  pause 1m  (done)" in lines
    assert f"  {s.V1}   stable   40%" in lines and f"  {s.V2}   canary   60%" in lines
    assert any(
        "classify" in line and "NotReady" in line and "pods pending" in line for line in lines
    )
    assert any(line.startswith("  Ready   True     Serving   5m") for line in lines)
    assert "Last command: promote:1  Accepted  5m ago: skipped" in lines


def test_status_report_of_healthy_aborted_and_paused() -> None:
    healthy = status.render_status(s.healthy(), NOW)
    assert "->" not in healthy and "Weight:       -" in healthy
    aborted = status.render_status(s.aborted(), NOW)
    assert "Abort reason: aborted by user" in aborted and f"{s.V2} (aborted)" in aborted
    held = status.render_status(s.canary(paused=True), NOW)
    assert "Paused:       spec.paused is true" in held


def test_status_report_of_blue_green_and_of_nothing_yet() -> None:
    obj = s.canary(strategy="BlueGreen", previewUrl="http://clf-preview")
    obj["spec"]["rollout"] = {"strategy": "BlueGreen", "blueGreen": {"autoPromotionSeconds": 30}}
    text = status.render_status(obj, NOW)
    assert f"Preview:      {s.V2}" in text and f"{s.V2}   preview" in text
    assert "auto-promotion: 30s after the preview is Ready" in text
    assert "Preview URL:  http://clf-preview" in text and "Steps:" not in text
    empty = status.render_status({"metadata": {"name": "x"}, "spec": {}}, NOW)
    assert "Phase:        (not reconciled yet)" in empty


def test_status_report_of_analysis() -> None:
    obj = s.canary(
        analysis={
            "stepIndex": 2,
            "revision": s.V2,
            "phase": "Running",
            "measurements": [{"metric": "success", "value": 0.99, "success": True, "at": s.NOW}],
        }
    )
    lines = status.render_status(obj, NOW).splitlines()
    assert f"  step 3, revision {s.V2}: Running" in lines  # stepIndex 2 is step 3
    assert "    success: 0.99 ok" in lines


def test_status_report_of_webhook_gates() -> None:
    call = {"name": "approve", "success": False, "message": "HTTP 403: not yet", "at": s.NOW}
    obj = s.canary(
        gates=[
            {"type": "Step", "stepIndex": 1, "revision": s.V2, "phase": "Passed",
             "calls": [{"name": "load", "success": True, "message": "HTTP 200", "at": s.NOW}]},
            {"type": "ConfirmPromotion", "revision": s.V2, "phase": "Waiting", "calls": [call]},
        ]
    )  # fmt: skip
    lines = status.render_status(obj, NOW).splitlines()
    gates = lines[lines.index("Gates:") + 2 :]
    assert gates[0].split()[:4] == ["Step", "2", "Passed", "load"]
    assert gates[1].split()[:4] == ["ConfirmPromotion", "-", "Waiting", "approve"]
    assert gates[1].endswith("HTTP 403: not yet")
    assert "Gates:" not in status.render_status(s.healthy(), NOW)


def test_summary_line() -> None:
    assert status.summary(s.canary()) == (
        f"Paused  stable {s.V1} 40%, canary {s.V2} 60%  "
        f"canary {s.V2} at 60%, step 4/4: paused until promote"
    )
    assert status.summary({"metadata": {}}) == "(not reconciled)  no traffic"


def test_watch_ends_when_healthy_or_aborted_at_the_latest_generation() -> None:
    assert status.settled(s.healthy()) == Phase.HEALTHY
    assert status.settled(s.canary()) is None
    stale = s.healthy()
    stale["metadata"]["generation"] = 3  # a spec edit the operator has not seen yet
    assert status.settled(stale) is None
    assert status.verdict("clf", s.healthy()) == 0
    with pytest.raises(CliError, match=f"rollout of {s.V2} of pipeline clf aborted: aborted by"):
        status.verdict("clf", s.aborted())


def test_status_report_of_a_router_rolling_out_and_a_refused_child() -> None:
    obj = s.canary(
        routers=[{"graph": "clf", "rolledOut": False, "message": "1 of 2 replicas updated"}],
        applyErrors=[
            {"kind": "InferenceService", "name": "clf-classify-x", "message": "denied: bad"}
        ],
    )
    lines = status.render_status(obj, NOW).splitlines()
    assert "Routers:" in lines
    assert any(line.split()[:2] == ["clf", "RollingOut"] for line in lines)
    assert any("1 of 2 replicas updated" in line for line in lines)
    refused = lines[lines.index("Refused:") + 2]
    assert refused.split()[:2] == ["InferenceService", "clf-classify-x"]
    assert "denied: bad" in refused
    assert "Routers:" not in status.render_status(s.healthy(), NOW)


def test_status_report_shows_the_pods_of_each_stage_and_why_they_are_pending() -> None:
    obj = s.canary(ready=False)
    why = "0/6 nodes are available: 2 Insufficient nvidia.com/gpu"
    stage = obj["status"]["revisions"][1]["stages"][1]
    stage.update(replicas=2, readyReplicas=1, pending=1, unschedulable=why)
    stage["message"] = f"1/2 pods ready, 1 Pending: {why}"
    lines = status.render_status(obj, NOW).splitlines()
    [row] = [line for line in lines if f"clf-classify-{s.V2}" in line]
    assert row.split()[:4] == ["classify", f"clf-classify-{s.V2}", "NotReady", "1/2"]
    assert "(1 Pending)" in row and "Insufficient nvidia.com/gpu" in row
