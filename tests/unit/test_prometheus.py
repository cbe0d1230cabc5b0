"""Reading Prometheus instant-query answers."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline_operator.api.v1alpha1 import AnalysisMetric
from pipeline_operator.core.rollout import AnalysisError, NoDataError
from pipeline_operator.core.rollout.analysis import Subject
from pipeline_operator.providers.prometheus import Access, PrometheusProvider, providers, scalar


def vector(*values: str) -> dict:
    result = [{"metric": {}, "value": [0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_one_sample_vector_and_scalar() -> None:
    assert scalar(vector("0.25"), "q") == 0.25
    assert (
        scalar({"status": "success", "data": {"resultType": "scalar", "result": [0, "3"]}}, "q")
        == 3.0
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (vector("1", "2"), "returned 2 series"),
        (vector("NaN"), "NaN"),
        ({"status": "error", "error": "parse error"}, "parse error"),
    ],
)
def test_unusable_answers_are_analysis_errors(body: dict, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        scalar(body, "q")


def test_a_query_that_matches_no_series_says_exactly_that() -> None:
    with pytest.raises(NoDataError, match="matched no series"):
        scalar(vector(), "q")


@pytest.mark.parametrize("value", ["+Inf", "-Inf"])
def test_infinite_values_are_analysis_errors(value: str) -> None:
    with pytest.raises(AnalysisError, match="Inf"):
        scalar(vector(value), "q")


@pytest.mark.parametrize(
    "body",
    [
        vector("abc"),
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        {"status": "success", "data": {"resultType": "scalar", "result": None}},
    ],
)
def test_malformed_answers_are_analysis_errors(body: dict) -> None:
    with answering(body) as server:
        provider = PrometheusProvider(server.address)
        with pytest.raises(AnalysisError, match="unexpected answer"):
            provider.query(METRIC, SUBJECT)


def test_only_http_addresses_are_queried() -> None:
    with pytest.raises(AnalysisError, match="not an http"):
        PrometheusProvider("file:///etc/hostname#")


def test_the_query_is_rendered_and_the_bearer_token_read_per_query(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    metric = AnalysisMetric(
        name="m", query='up{revision="{{revision}}",stable="{{stable}}"}', success_condition="true"
    )
    with answering(vector("1")) as server:
        provider = PrometheusProvider(server.address, Access(bearer_token_file=token))
        assert provider.query(metric, SUBJECT) == 1.0
        token.write_text("rotated")
        provider.query(metric, SUBJECT)
    [first, second] = server.requests
    assert first["query"] == 'up{revision="r2",stable="r1"}'
    assert first["authorization"] == "Bearer s3cret"
    assert second["authorization"] == "Bearer rotated"


def test_basic_auth_and_refused_credentials(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("pw")
    access = Access(username="analysis", password_file=password)
    with answering(vector("1"), status=401) as server:
        provider = PrometheusProvider(server.address, access)
        with pytest.raises(AnalysisError, match="HTTP 401"):
            provider.query(METRIC, SUBJECT)
    expected = "Basic " + base64.b64encode(b"analysis:pw").decode()
    assert server.requests[0]["authorization"] == expected


def test_credentials_go_to_the_operators_own_prometheus_only(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret")
    provider_for = providers("http://prometheus.monitoring:9090/", Access(bearer_token_file=token))
    own = provider_for("http://prometheus.monitoring:9090")
    other = provider_for("http://elsewhere:9090")
    assert isinstance(own, PrometheusProvider) and own.access.headers()
    assert isinstance(other, PrometheusProvider) and other.access.headers() == {}


def test_a_query_slower_than_its_timeout_is_an_analysis_error() -> None:
    metric = METRIC.model_copy(update={"timeout": "1s"})
    with answering(vector("1"), delay=3) as server:
        provider = PrometheusProvider(server.address)
        started = time.monotonic()
        with pytest.raises(AnalysisError, match="prometheus at"):
            provider.query(metric, SUBJECT)
    assert time.monotonic() - started < 2.5


def test_a_missing_token_file_is_an_analysis_error(tmp_path: Path) -> None:
    provider = PrometheusProvider(
        "http://127.0.0.1:9", Access(bearer_token_file=tmp_path / "missing")
    )
    with pytest.raises(AnalysisError, match="credentials"):
        provider.query(METRIC, SUBJECT)


METRIC = AnalysisMetric(name="m", query="q", success_condition="result > 0")
SUBJECT = Subject("pipe", "r2", "r1")


@dataclass
class Server:
    address: str
    requests: list[dict[str, str]] = field(default_factory=list)


@contextlib.contextmanager
def answering(body: dict, status: int = 200, delay: float = 0) -> Iterator[Server]:
    """A loopback HTTP server answering every request with ``body``; it records the query
    and Authorization header of each."""
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            seen.append(
                {
                    "query": query.get("query", [""])[0],
                    "authorization": self.headers.get("Authorization", ""),
                }
            )
            time.sleep(delay)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        def log_message(self, *_: object) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
