"""The operator's outbound calls: a canary's analysis decided by a web metric (an evaluation
service scores the canary's revision), and each transition sent to notification webhooks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.operator_process import OperatorProcess
from tests.http_sink import Sink, http_sink
from tests.support import kubectl_json, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def evaluator() -> Iterator[Sink]:
    """``GET /accuracy/<revision>``: the accuracy the test sets; none yet is no data."""
    with http_sink() as sink:
        yield sink


def rollout(evaluator: Sink) -> dict[str, Any]:
    metric = {
        "name": "accuracy",
        "web": {"url": f"{evaluator.url}/accuracy/{{{{revision}}}}", "jsonPath": "$.accuracy"},
        "successCondition": "result >= 0.9",
        "interval": "1s",
        "count": 2,
    }
    steps = [{"setWeight": 50}, {"analysis": {"metrics": [metric]}}]
    return {"strategy": "Canary", "canary": {"steps": steps}}


@pytest.mark.parametrize(("accuracy", "phase"), [(0.95, "Healthy"), (0.5, "Aborted")])
def test_a_web_metric_promotes_or_aborts_the_canary(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    evaluator: Sink,
    accuracy: float,
    phase: str,
) -> None:
    p.apply(cluster, p.classifier("clf", namespace, **rollout(evaluator)))
    stable = p.wait_status(cluster, namespace, "clf", "stable Healthy", phase="Healthy")[
        "stableRevision"
    ]
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **rollout(evaluator)))
    canary = p.wait_status(cluster, namespace, "clf", "canary at 50%", canaryWeight=50)[
        "canaryRevision"
    ]
    evaluator.set(f"/accuracy/{canary}", {"accuracy": accuracy})
    if phase == "Healthy":
        st = p.wait_status(
            cluster, namespace, "clf", "promotion", 90, phase="Healthy", stableRevision=canary
        )
        assert st["traffic"] == [{"revision": canary, "weight": 100}]
        assert "AnalysisSucceeded" in p.events(cluster, namespace, "clf")
    else:
        st = p.wait_status(cluster, namespace, "clf", "the abort", 90, phase="Aborted")
        assert "result 0.5 fails result >= 0.9" in st["abortReason"]
        assert st["stableRevision"] == stable
    assert {r.path for r in evaluator.requests} == {f"/accuracy/{canary}"}


TOKEN = "Bearer eval-5e1f9c2a"  # what the Secret holds; it must show nowhere


@pytest.mark.parametrize(
    ("chart_values", "granted"),
    [([], False), (["rbac.secretReads.enabled=true"], True)],
    ids=["default-rbac-refused", "secret-reads-granted"],
)
def test_a_header_from_a_secret_is_sent_where_the_chart_grants_it_and_shown_nowhere(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    evaluator: Sink,
    chart_values: list[str],
    granted: bool,
) -> None:
    cluster.kubectl(
        "create", "secret", "generic", "eval-token", "-n", namespace,
        f"--from-literal=authorization={TOKEN}",
    )  # fmt: skip
    body = rollout(evaluator)
    (metric,) = body["canary"]["steps"][1]["analysis"]["metrics"]
    metric["web"]["headers"] = [
        {
            "name": "Authorization",
            "valueFrom": {"secretKeyRef": {"name": "eval-token", "key": "authorization"}},
        }
    ]
    metric["consecutiveErrorLimit"] = 1
    p.apply(cluster, p.classifier("clf", namespace, **body))
    p.wait_status(cluster, namespace, "clf", "stable Healthy", phase="Healthy")
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **body))
    canary = p.wait_status(cluster, namespace, "clf", "canary at 50%", canaryWeight=50)[
        "canaryRevision"
    ]
    evaluator.set(f"/accuracy/{canary}", {"accuracy": 0.95})
    if granted:
        st = p.wait_status(
            cluster, namespace, "clf", "promotion", 90, phase="Healthy", stableRevision=canary
        )
        assert evaluator.requests
        assert {r.headers["Authorization"] for r in evaluator.requests} == {TOKEN}
    else:
        st = p.wait_status(cluster, namespace, "clf", "the abort", 90, phase="Aborted")
        assert f"Secret {namespace}/eval-token: refused (403)" in st["abortReason"]
        assert "rbac.secretReads" in st["abortReason"]
        assert evaluator.requests == []
    events = kubectl_json(cluster, "get", "events", "-n", namespace)
    shown = json.dumps(st) + json.dumps(events) + operator.logs()
    assert TOKEN not in shown and "eval-5e1f9c2a" not in shown


def test_each_transition_reaches_the_notification_webhooks_and_a_failing_one_is_reported(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    with http_sink() as chat, http_sink() as pager:
        pager.default = (500, b"{}")
        rollout = {
            "strategy": "Canary",
            "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]},
            "notifications": [
                {"url": f"{chat.url}/hook", "headers": [{"name": "X-Team", "value": "ml"}]},
                {"url": f"{pager.url}/page", "reasons": ["RolloutCompleted", "Aborted"]},
            ],
        }
        p.apply(cluster, p.classifier("clf", namespace, **rollout))
        stable = p.wait_status(cluster, namespace, "clf", "stable", phase="Healthy")
        p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **rollout))
        st = wait_for(
            lambda: (
                (s := p.status(cluster, namespace, "clf")).get("stableRevision")
                != stable["stableRevision"]
                and s
            ),
            90,
            "the rollout to complete",
        )
        canary = st["stableRevision"]

        def completed() -> list[dict[str, Any]] | None:
            bodies = [r.json() for r in chat.requests]
            return bodies if any(b["reason"] == "RolloutCompleted" for b in bodies) else None

        bodies = wait_for(completed, 30, "RolloutCompleted at the webhook")
        reasons = [b["reason"] for b in bodies]
        assert reasons.index("RolloutStarted") < reasons.index("WeightChanged")
        assert reasons.index("WeightChanged") < reasons.index("RolloutCompleted")
        done = bodies[reasons.index("RolloutCompleted")]
        assert (done["pipeline"], done["namespace"], done["stableRevision"]) == (
            "clf",
            namespace,
            canary,
        )
        assert done["phase"] == "Healthy" and done["type"] == "Normal"
        assert chat.requests[0].headers["X-Team"] == "ml"

        wait_for(
            lambda: "NotificationFailed" in p.events(cluster, namespace, "clf"),
            30,
            "the failing webhook to be reported",
        )
        assert {r.json()["reason"] for r in pager.requests} == {"RolloutCompleted"}
        assert len(pager.requests) == 3, "tried three times"


def test_webhook_gates_hold_the_canary_until_they_answer_and_post_rollout_is_told(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """A pre-rollout smoke test and a step check pass; confirm-promotion refuses (403) until
    the test lets it answer 200; the post-rollout webhook is told of the promotion."""
    with http_sink() as gate:
        gate.set("/approve", {"approved": False}, status=403)
        hook = {"url": gate.url, "retries": 0, "timeout": "2s"}
        rollout = {
            "strategy": "Canary",
            "canary": {"steps": [{"setWeight": 50}]},
            "webhooks": [
                {**hook, "name": "smoke", "type": "PreRollout", "url": f"{gate.url}/smoke"},
                {**hook, "name": "check", "type": "Step", "url": f"{gate.url}/check"},
                {**hook, "name": "approve", "type": "ConfirmPromotion",
                 "url": f"{gate.url}/approve"},
                {**hook, "name": "done", "type": "PostRollout", "url": f"{gate.url}/done",
                 "metadata": {"team": "ml"}},
            ],
        }  # fmt: skip
        p.apply(cluster, p.classifier("clf", namespace, **rollout))
        stable = p.wait_status(cluster, namespace, "clf", "stable", phase="Healthy")
        p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **rollout))

        def refused() -> dict[str, Any] | None:
            st = p.status(cluster, namespace, "clf")
            return st if "approve: HTTP 403" in st.get("message", "") else None

        st = refused() or wait_for(refused, 90, "confirm-promotion to refuse")
        canary = st["canaryRevision"]
        assert st["canaryWeight"] == 50 and st["phase"] == "Progressing"
        assert "waiting for confirm-promotion webhooks" in st["message"]
        gates = {g["type"]: g["phase"] for g in st["gates"]}
        assert gates == {"PreRollout": "Passed", "Step": "Passed", "ConfirmPromotion": "Waiting"}
        paths = [r.path for r in gate.requests]
        assert paths.index("/smoke") < paths.index("/check") < paths.index("/approve")
        smoke = next(r.json() for r in gate.requests if r.path == "/smoke")
        assert (smoke["type"], smoke["canaryRevision"], smoke["canaryWeight"]) == (
            "PreRollout",
            canary,
            0,
        )
        assert next(r.json() for r in gate.requests if r.path == "/check")["step"] == 1

        gate.set("/approve", {"approved": True})
        p.wait_status(
            cluster, namespace, "clf", "promotion", 60, phase="Healthy", stableRevision=canary
        )
        done = wait_for(
            lambda: next((r.json() for r in gate.requests if r.path == "/done"), None),
            30,
            "the post-rollout webhook",
        )
        assert (done["phase"], done["stableRevision"], done["metadata"]) == (
            "Healthy",
            canary,
            {"team": "ml"},
        )
        assert stable["stableRevision"] != canary
        events = p.events(cluster, namespace, "clf")
        assert "GateWaiting" in events and "GatePassed" in events


def test_a_failing_pre_rollout_webhook_aborts_before_any_traffic_moves(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    with http_sink() as gate:
        gate.default = (500, b'{"error": "smoke test failed: 3 of 10 answers wrong"}')
        rollout = {
            "strategy": "Canary",
            "canary": {"steps": [{"setWeight": 50}]},
            "webhooks": [{"name": "smoke", "type": "PreRollout", "url": gate.url, "retries": 1}],
        }
        p.apply(cluster, p.classifier("clf", namespace, **rollout))
        stable = p.wait_status(cluster, namespace, "clf", "stable", phase="Healthy")
        p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **rollout))
        st = p.wait_status(cluster, namespace, "clf", "the abort", 90, phase="Aborted")
    assert "pre-rollout gate webhook smoke: HTTP 500" in st["abortReason"]
    assert "3 of 10 answers wrong" in st["abortReason"] and "after 2 tries" in st["abortReason"]
    assert st["traffic"] == [{"revision": stable["stableRevision"], "weight": 100}]
    assert len(gate.requests) == 2
    assert "GateFailed" in p.events(cluster, namespace, "clf")
