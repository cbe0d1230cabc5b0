"""Notification webhooks against a real HTTP server: order, reasons, retries, failures."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineStatus, Notification, Phase
from pipeline_operator.core.rollout import Event
from pipeline_operator.providers.notify import Notifier, transition
from tests.http_sink import http_sink

PIPELINE = {"metadata": {"name": "clf", "namespace": "ml"}}
STATUS = InferencePipelineStatus(
    phase=Phase.PROGRESSING, stable_revision="r1", canary_revision="r2", canary_weight=20
)
EVENTS = [
    Event("Normal", "RolloutStarted", "rolling out r2"),
    Event("Normal", "WeightChanged", "0% -> 20%"),
    Event("Warning", "Aborted", "analysis failed"),
]


def deliver(sinks: list[Notification]) -> list[str]:
    """Send the three transitions; what ``report`` was told."""
    reported: list[str] = []
    notifier = Notifier(
        lambda _, reason, message: reported.append(f"{reason}: {message}"), sleep=lambda _: None
    )
    bodies = [transition(PIPELINE, STATUS, e, "2026-01-01T00:00:00Z") for e in EVENTS]
    notifier.send(PIPELINE, sinks, bodies)
    notifier.pool.shutdown(wait=True)
    return reported


def test_transitions_arrive_in_order_with_the_documented_body() -> None:
    with http_sink() as sink:
        assert deliver([Notification(url=f"{sink.url}/hook")]) == []
        bodies: list[dict[str, Any]] = [r.json() for r in sink.requests]
    assert [b["reason"] for b in bodies] == ["RolloutStarted", "WeightChanged", "Aborted"]
    assert bodies[1] == {
        "pipeline": "clf",
        "namespace": "ml",
        "type": "Normal",
        "reason": "WeightChanged",
        "message": "0% -> 20%",
        "phase": "Progressing",
        "stableRevision": "r1",
        "canaryRevision": "r2",
        "canaryWeight": 20,
        "at": "2026-01-01T00:00:00Z",
    }
    assert sink.requests[0].headers["Content-Type"] == "application/json"


def test_a_sink_gets_only_the_reasons_it_names() -> None:
    with http_sink() as sink:
        deliver([Notification(url=sink.url, reasons=["Aborted"])])
    assert [r.json()["reason"] for r in sink.requests] == ["Aborted"]


def test_a_failed_post_is_retried_and_one_that_keeps_failing_reported() -> None:
    with http_sink() as sink:
        sink.queue = [(503, b"{}"), (200, b"{}"), (500, b""), (500, b""), (500, b"")]
        reported = deliver([Notification(url=sink.url, reasons=["RolloutStarted", "Aborted"])])
    assert [r.json()["reason"] for r in sink.requests] == ["RolloutStarted"] * 2 + ["Aborted"] * 3
    assert reported == [
        f"NotificationFailed: Aborted not delivered to {sink.url}: HTTP 500 after 3 tries"
    ]


def test_an_unreachable_sink_is_reported() -> None:
    with http_sink() as sink:
        url = sink.url
    reported = deliver([Notification(url=url, reasons=["Aborted"])])
    assert len(reported) == 1 and reported[0].startswith(
        f"NotificationFailed: Aborted not delivered to {url}: no answer: "
    )
