"""Canary analysis against a Prometheus HTTP API (a loopback server speaking its protocol)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline_operator.localcluster import Cluster
from pipeline_operator.localcluster.operator_process import OperatorProcess
from tests import pipelines as p
from tests.operator.test_canary import deploy_stable
from tests.support import wait_for

pytestmark = pytest.mark.cluster


class FakePrometheus(ThreadingHTTPServer):
    """Answers /api/v1/query with one sample of ``value`` and records the queries."""

    value = 0.0
    queries: list[str]


class Handler(BaseHTTPRequestHandler):
    server: FakePrometheus

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
        self.server.queries.append(query)
        body = {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {}, "value": [0, str(self.server.value)]}],
            },
        }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    server = FakePrometheus(("127.0.0.1", 0), Handler)
    server.queries = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def rollout(address: str) -> dict:
    analysis = {
        "address": address,
        "metrics": [
            {
                "name": "error-rate",
                "query": 'sum(rate(errors{revision="{{revision}}"}[1m]))',
                "successCondition": "result < 0.05",
                "interval": "1s",
                "count": 2,
            }
        ],
    }
    return {"canary": {"steps": [{"setWeight": 20}, {"analysis": analysis}]}}


@pytest.mark.parametrize(("value", "outcome"), [(0.01, "Healthy"), (0.5, "Aborted")])
def test_analysis_step_promotes_or_aborts_on_the_measured_value(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    prometheus: FakePrometheus,
    value: float,
    outcome: str,
) -> None:
    address = f"http://127.0.0.1:{prometheus.server_address[1]}"
    prometheus.value = value
    stable = deploy_stable(cluster, namespace, rollout(address))
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **rollout(address)))

    def finished() -> dict | None:
        st = p.status(cluster, namespace, "clf")
        done = st.get("phase") == outcome and st.get("stableRevision") != stable
        return st if done or (outcome == "Aborted" and st.get("phase") == "Aborted") else None

    st = wait_for(finished, 40, f"the analysis to end {outcome}")
    canary = st["canaryRevision"] if outcome == "Aborted" else st["stableRevision"]
    assert prometheus.queries
    assert all(f'revision="{canary}"' in q for q in prometheus.queries)
    if outcome == "Aborted":
        assert st["traffic"] == [{"revision": stable, "weight": 100}]
        assert "error-rate" in st["abortReason"]
        assert "AnalysisFailed" in p.events(cluster, namespace, "clf")
    else:
        assert "AnalysisSucceeded" in p.events(cluster, namespace, "clf")
