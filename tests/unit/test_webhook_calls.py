"""Rollout webhook calls against a real HTTP server: retries, answers, the body."""

from __future__ import annotations

import urllib3

from pipeline_operator.api.v1alpha1 import InferencePipelineStatus, Phase, Webhook
from pipeline_operator.providers.webhooks import (
    Target,
    WebhookCaller,
    post_json,
    webhook_body,
)
from tests.http_sink import http_sink

HTTP = urllib3.PoolManager(retries=False)


def target(url: str, retries: int = 2) -> Target:
    return Target(url, {"X-Team": "ml"}, timeout=2, retries=retries)


def test_no_answer_and_5xx_are_tried_again_and_the_last_answer_stands() -> None:
    with http_sink() as sink:
        sink.queue = [(503, b"busy"), (502, b""), (200, b'{"ok": true}')]
        answer = post_json(HTTP, target(sink.url), {"a": 1}, sleep=lambda _: None)
    assert answer.ok and answer.status == 200 and answer.message == 'HTTP 200: {"ok": true}'
    assert len(sink.requests) == 3 and sink.requests[0].json() == {"a": 1}
    assert sink.requests[0].headers["X-Team"] == "ml"


def test_a_4xx_is_an_answer_not_retried() -> None:
    with http_sink() as sink:
        sink.default = (403, b'{"approved": false}')
        answer = post_json(HTTP, target(sink.url), {}, sleep=lambda _: None)
    assert not answer.ok and answer.message == 'HTTP 403: {"approved": false}'
    assert len(sink.requests) == 1


def test_retries_wait_longer_each_time_and_say_how_many_were_made() -> None:
    waits: list[float] = []
    with http_sink() as sink:
        sink.default = (500, b"x" * 1000)
        answer = post_json(HTTP, target(sink.url, retries=3), {}, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]
    assert answer.status == 500 and answer.message.endswith("... after 4 tries")
    assert len(answer.message) < 260


def test_an_unreachable_webhook_has_no_status() -> None:
    with http_sink() as sink:
        url = sink.url
    answer = post_json(HTTP, target(url, retries=1), {}, sleep=lambda _: None)
    assert answer.status is None and not answer.ok
    assert answer.message.startswith("no answer: ") and answer.message.endswith("after 2 tries")


def test_a_gate_call_sends_the_documented_body() -> None:
    hook = Webhook(name="load", type="Step", url="http://x", metadata={"suite": "smoke"}, retries=0)
    status = InferencePipelineStatus(
        phase=Phase.PROGRESSING, stable_revision="r1", canary_revision="r2", canary_weight=20
    )
    pipeline = {"metadata": {"name": "clf", "namespace": "ml"}}
    with http_sink() as sink:
        hook = hook.model_copy(update={"url": f"{sink.url}/gate"})
        answer = WebhookCaller().call(hook, webhook_body(pipeline, status, hook, 1))
        (request,) = sink.requests
    assert answer.ok
    assert request.json() == {
        "pipeline": "clf",
        "namespace": "ml",
        "webhook": "load",
        "type": "Step",
        "step": 2,
        "phase": "Progressing",
        "stableRevision": "r1",
        "canaryRevision": "r2",
        "canaryWeight": 20,
        "abortReason": None,
        "metadata": {"suite": "smoke"},
    }
