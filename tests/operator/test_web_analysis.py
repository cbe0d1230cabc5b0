"""A canary's analysis decided by a web metric: the operator calls an evaluation service with
the canary's revision in the URL and promotes or aborts on the number in its answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


class Evaluator(BaseHTTPRequestHandler):
    """``GET /accuracy/<revision>``: the accuracy the test gives that revision."""

    accuracy: ClassVar[dict[str, float]] = {}
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        revision = self.path.rsplit("/", 1)[-1]
        self.asked.append(revision)
        # No score yet is no data (measured again), never a failure.
        scored = {"accuracy": self.accuracy[revision]} if revision in self.accuracy else {}
        data = json.dumps({"revision": revision, **scored}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def evaluator() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Evaluator)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Evaluator.accuracy, Evaluator.asked = {}, []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def rollout(evaluator: str) -> dict[str, Any]:
    metric = {
        "name": "accuracy",
        "web": {"url": f"{evaluator}/accuracy/{{{{revision}}}}", "jsonPath": "$.accuracy"},
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
    evaluator: str,
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
    Evaluator.accuracy[canary] = accuracy
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
    assert set(Evaluator.asked) == {canary}
