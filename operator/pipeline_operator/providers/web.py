"""The web analysis provider: an HTTP call whose JSON answer holds the metric's value
(Argo Rollouts' web metric), e.g. an evaluation service that scores the canary.

The URL, the body and the header values written in the spec have ``{{revision}}``,
``{{stable}}`` and ``{{pipeline}}`` substituted; a header from a Secret is sent as the Secret
holds it, read at each call, and never appears in a message. A 2xx answer's JSON is read at
the metric's ``jsonPath``, which must select one number or boolean (``true`` is 1). Nothing
selected is no data (measured again an interval later), any other answer an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import urllib3

from pipeline_operator.api import json_path
from pipeline_operator.api.v1alpha1 import AnalysisMetric, WebMetric, parse_duration
from pipeline_operator.core.rollout import AnalysisError, NoDataError
from pipeline_operator.core.rollout.analysis import Subject, render_query

SecretReader = Callable[[str, str, str], str]
"""The value of one key of a Secret: (namespace, name, key) -> value; raises
:class:`AnalysisError` naming the Secret (never its value) when it cannot be read."""


class WebProvider:
    """Calls each web metric within its timeout; no credentials of the operator's are sent,
    only those a header names in a Secret of the pipeline's namespace."""

    def __init__(self, read_secret: SecretReader | None = None) -> None:
        self.http = urllib3.PoolManager(retries=False)
        self.read_secret = read_secret

    def headers(self, web: WebMetric, subject: Subject) -> dict[str, str]:
        out = {}
        for header in web.headers:
            if header.value_from is None:
                out[header.name] = render_query(header.value or "", subject)
                continue
            ref = header.value_from.secret_key_ref
            if self.read_secret is None:
                raise AnalysisError(f"header {header.name}: this operator reads no Secrets")
            out[header.name] = self.read_secret(subject.namespace, ref.name, ref.key)
        return out

    def query(self, metric: AnalysisMetric, subject: Subject) -> float:
        web = metric.web
        if web is None:
            raise AnalysisError(f"metric {metric.name} has no web call")
        url = render_query(web.url, subject)
        headers = self.headers(web, subject)
        body = None if web.body is None else render_query(web.body, subject).encode()
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        timeout = urllib3.Timeout(total=parse_duration(metric.timeout).total_seconds())
        try:
            response = self.http.request(
                web.method, url, body=body, headers=headers, timeout=timeout
            )
        except urllib3.exceptions.HTTPError as err:
            raise AnalysisError(f"web {web.method} {url}: {err}") from err
        if not 200 <= response.status < 300:
            raise AnalysisError(f"web {web.method} {url}: HTTP {response.status}")
        try:
            answer = json.loads(response.data)
        except ValueError as err:
            raise AnalysisError(f"web {web.method} {url}: the answer is no JSON: {err}") from err
        return value_at(web.json_path, answer, url)


def value_at(path: str, answer: Any, url: str) -> float:
    """The one number (or boolean) ``path`` selects in ``answer``."""
    try:
        found = json_path.select(path, answer)
    except json_path.PathError as err:
        raise AnalysisError(str(err)) from err
    if not found:
        raise NoDataError(f"{path} selects nothing in the answer of {url}")
    if len(found) > 1:
        raise AnalysisError(
            f"{path} selects {len(found)} values in the answer of {url}; expected one"
        )
    value = found[0]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float | str):
        raise AnalysisError(
            f"{path} selects {type(value).__name__} in the answer of {url}, not a number"
        )
    try:
        number = float(value)
    except ValueError:
        raise AnalysisError(
            f"{path} selects {value!r} in the answer of {url}, not a number"
        ) from None
    if not math.isfinite(number):
        raise AnalysisError(f"{path} selects {value} in the answer of {url}")
    return number
