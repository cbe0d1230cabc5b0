"""The Prometheus analysis provider: an instant query over Prometheus's HTTP API.

Credentials (a bearer token or basic auth, read from files such as a mounted Secret on every
query, so a rotated Secret is picked up) and a custom CA apply to the operator's own
Prometheus address only: a pipeline that names another address never receives them.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from pipeline_operator.api.v1alpha1 import AnalysisMetric, parse_duration
from pipeline_operator.core.rollout import AnalysisError, NoDataError
from pipeline_operator.core.rollout.analysis import AnalysisProvider, Subject, render_query


@dataclass(frozen=True)
class Access:
    """How to reach the operator's Prometheus: credentials and CA, each from a file."""

    bearer_token_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None

    def headers(self) -> dict[str, str]:
        """The Authorization header, read now (files may be rotated)."""
        try:
            if self.bearer_token_file is not None:
                token = self.bearer_token_file.read_text(encoding="utf-8").strip()
                return {"Authorization": f"Bearer {token}"}
            if self.username is not None and self.password_file is not None:
                password = self.password_file.read_text(encoding="utf-8").strip()
                return urllib3.make_headers(basic_auth=f"{self.username}:{password}")
        except OSError as err:
            raise AnalysisError(f"prometheus credentials: {err.strerror}: {err.filename}") from None
        return {}


class PrometheusProvider:
    """Runs a metric's PromQL (``{{revision}}``, ``{{pipeline}}``, ``{{stable}}`` filled in)
    at ``address``, within the metric's timeout."""

    def __init__(self, address: str, access: Access | None = None) -> None:
        if urllib.parse.urlsplit(address).scheme not in ("http", "https"):
            raise AnalysisError(f"prometheus address {address!r} is not an http(s) URL")
        self.address = address.rstrip("/")
        self.access = access or Access()
        ca = str(self.access.ca_file) if self.access.ca_file else None
        self.http = urllib3.PoolManager(ca_certs=ca, retries=False)

    def query(self, metric: AnalysisMetric, subject: Subject) -> float:
        if metric.query is None:
            raise AnalysisError(f"metric {metric.name} has no query")
        promql = render_query(metric.query, subject)
        url = f"{self.address}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        timeout = urllib3.Timeout(total=parse_duration(metric.timeout).total_seconds())
        try:
            response = self.http.request("GET", url, headers=self.access.headers(), timeout=timeout)
            body = json.loads(response.data)
        except (urllib3.exceptions.HTTPError, ValueError) as err:
            raise AnalysisError(f"prometheus at {self.address}: {err}") from err
        if response.status in (401, 403):
            raise AnalysisError(f"prometheus at {self.address}: HTTP {response.status}")
        try:
            return scalar(body, promql)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            raise AnalysisError(f"query {promql!r}: unexpected answer: {err!r}") from err


def providers(default: str | None, access: Access) -> Callable[[str], AnalysisProvider]:
    """A provider per address; only the operator's own ``default`` address gets ``access``."""

    def provider(address: str) -> AnalysisProvider:
        same = default is not None and address.rstrip("/") == default.rstrip("/")
        return PrometheusProvider(address, access if same else None)

    return provider


def scalar(body: dict[str, Any], promql: str) -> float:
    """The single number an instant query returned (a scalar or a one-sample vector)."""
    if body.get("status") != "success":
        raise AnalysisError(f"query {promql!r} failed: {body.get('error', 'unknown error')}")
    data: dict[str, Any] = body.get("data") or {}
    result: Any = data.get("result")
    if data.get("resultType") == "scalar":
        value = result[1]
    elif data.get("resultType") == "vector" and isinstance(result, list) and len(result) == 1:
        value = result[0]["value"][1]
    elif data.get("resultType") == "vector" and result == []:
        raise NoDataError(f"query {promql!r} matched no series")
    else:
        count = len(result) if isinstance(result, list) else 0
        raise AnalysisError(f"query {promql!r} returned {count} series; expected exactly one")
    number = float(value)
    if not math.isfinite(number):
        raise AnalysisError(f"query {promql!r} returned {value}")
    return number
