"""Rollout webhooks (``spec.rollout.webhooks``): a JSON POST of the rollout's state, tried
again on no answer or a 5xx, whose status says whether a gate passes.

Notifications (notify.py) are sent through :func:`post_json` too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3

from pipeline_operator.api.v1alpha1 import InferencePipelineStatus, Webhook, parse_duration

BACKOFF_SECONDS = 0.5  # before the first retry, doubled before each next one
EXCERPT = 200  # characters of an answer kept in a gate's message


@dataclass(frozen=True)
class Target:
    """Where a JSON body is POSTed, and how patiently."""

    url: str
    headers: Mapping[str, str]
    timeout: float
    retries: int


@dataclass(frozen=True)
class Answer:
    """What came of a POST: the last status (None: no answer) and a line saying so."""

    status: int | None
    message: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post_json(
    http: urllib3.PoolManager,
    target: Target,
    body: Mapping[str, Any],
    sleep: Callable[[float], None] = time.sleep,
) -> Answer:
    """POST ``body``; a connection error, a timeout or a 5xx is tried again ``retries``
    times (after 0.5 s, 1 s, ...); any other answer is final."""
    headers = {"Content-Type": "application/json", **target.headers}
    data = json.dumps(body).encode()
    tries = target.retries + 1
    for attempt in range(tries):
        if attempt:
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            response = http.request(
                "POST", target.url, body=data, headers=headers, timeout=target.timeout
            )
        except urllib3.exceptions.HTTPError as err:
            answer = Answer(None, f"no answer: {err}")
            continue
        answer = Answer(response.status, _described(response))
        if response.status < 500:
            return answer
    suffix = f" after {tries} tries" if tries > 1 else ""
    return Answer(answer.status, f"{answer.message}{suffix}")


def _described(response: urllib3.BaseHTTPResponse) -> str:
    text = " ".join(response.data[: EXCERPT * 4].decode("utf-8", "replace").split())
    excerpt = text if len(text) <= EXCERPT else text[:EXCERPT] + "..."
    return f"HTTP {response.status}: {excerpt}" if excerpt else f"HTTP {response.status}"


def webhook_target(hook: Webhook) -> Target:
    return Target(
        url=hook.url,
        headers={h.name: h.value for h in hook.headers},
        timeout=parse_duration(hook.timeout).total_seconds(),
        retries=hook.retries,
    )


def webhook_body(
    pipeline: Mapping[str, Any],
    status: InferencePipelineStatus,
    hook: Webhook,
    step_index: int | None = None,
) -> dict[str, Any]:
    """The JSON body of a webhook call, as docs/operations.md documents it."""
    meta = pipeline["metadata"]
    return {
        "pipeline": meta["name"],
        "namespace": meta["namespace"],
        "webhook": hook.name,
        "type": hook.type,
        "step": None if step_index is None else step_index + 1,
        "phase": str(status.phase) if status.phase else None,
        "stableRevision": status.stable_revision,
        "canaryRevision": status.canary_revision,
        "canaryWeight": status.canary_weight,
        "abortReason": status.abort_reason,
        "metadata": dict(hook.metadata),
    }


class WebhookCaller:
    """Calls the webhooks of a gate, each within its timeout and retries."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self.http = urllib3.PoolManager(retries=False)
        self.sleep = sleep

    def call(self, hook: Webhook, body: Mapping[str, Any]) -> Answer:
        return post_json(self.http, webhook_target(hook), body, self.sleep)
