"""The Prometheus analysis provider: an instant query over Prometheus's HTTP API."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipeline_operator.api.v1alpha1 import AnalysisMetric
from pipeline_operator.rollout import AnalysisError
from pipeline_operator.rollout.analysis import render_query


class PrometheusProvider:
    """Runs a metric's PromQL (with ``{{revision}}``/``{{pipeline}}`` filled in) at ``address``."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        if urllib.parse.urlsplit(address).scheme not in ("http", "https"):
            raise AnalysisError(f"prometheus address {address!r} is not an http(s) URL")
        self.address = address.rstrip("/")
        self.timeout = timeout

    def query(self, metric: AnalysisMetric, revision: str, pipeline: str) -> float:
        promql = render_query(metric.query, revision, pipeline)
        url = f"{self.address}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.load(response)
        except (urllib.error.URLError, TimeoutError, ValueError) as err:
            raise AnalysisError(f"prometheus at {self.address}: {err}") from err
        try:
            return scalar(body, promql)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            raise AnalysisError(f"query {promql!r}: unexpected answer: {err!r}") from err


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
    else:
        count = len(result) if isinstance(result, list) else 0
        raise AnalysisError(f"query {promql!r} returned {count} series; expected exactly one")
    number = float(value)
    if not math.isfinite(number):
        raise AnalysisError(f"query {promql!r} returned {value}")
    return number
