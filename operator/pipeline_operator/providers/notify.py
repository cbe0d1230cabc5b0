"""Notification webhooks: each rollout transition (an Event the engine posts) sent as JSON to
the sinks a pipeline names in ``spec.rollout.notifications``.

Delivery is best effort and off the reconcile's path: one sender thread, in the order the
transitions happened; each POST has a timeout and is tried up to three times (after 0.5 s and
1 s). A sink that still fails is reported as a Warning Event ``NotificationFailed`` on the
pipeline and counted in ``pipeline_operator_notifications_total{outcome="failed"}``. A
transition is sent at most once: one the operator decided just before it stopped is not sent
again after the restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3

from pipeline_operator.api.v1alpha1 import InferencePipelineStatus, Notification
from pipeline_operator.core.rollout import Event
from pipeline_operator.telemetry import metrics

TIMEOUT_SECONDS = 5.0
BACKOFF_SECONDS = (0.5, 1.0)


def transition(
    pipeline: dict[str, Any], status: InferencePipelineStatus, event: Event, at: str
) -> dict[str, Any]:
    """The JSON body of one transition, as docs/operations.md documents it."""
    meta = pipeline["metadata"]
    return {
        "pipeline": meta["name"],
        "namespace": meta["namespace"],
        "type": event.type,
        "reason": event.reason,
        "message": event.message,
        "phase": str(status.phase) if status.phase else None,
        "stableRevision": status.stable_revision,
        "canaryRevision": status.canary_revision,
        "canaryWeight": status.canary_weight,
        "at": at,
    }


class Notifier:
    """Sends transitions to notification webhooks; ``report(pipeline, message)`` is told of
    each that could not be delivered."""

    def __init__(
        self,
        report: Callable[[dict[str, Any], str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.report = report
        self.sleep = sleep
        self.http = urllib3.PoolManager(retries=False)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify")

    def send(
        self,
        pipeline: dict[str, Any],
        sinks: Sequence[Notification],
        bodies: Sequence[dict[str, Any]],
    ) -> None:
        """Queue ``bodies`` for each sink that wants their reasons."""
        for sink in sinks:
            wanted = [b for b in bodies if not sink.reasons or b["reason"] in sink.reasons]
            if wanted:
                self.pool.submit(self._deliver, pipeline, sink, wanted)

    def _deliver(
        self, pipeline: dict[str, Any], sink: Notification, bodies: Sequence[dict[str, Any]]
    ) -> None:
        for body in bodies:
            error = self._post(sink, body)
            metrics.NOTIFICATIONS.labels("failed" if error else "sent").inc()
            if error:
                self.report(pipeline, f"{body['reason']} not delivered to {sink.url}: {error}")

    def _post(self, sink: Notification, body: dict[str, Any]) -> str | None:
        """None once the sink answered 2xx; else what went wrong on the last try."""
        headers = {"Content-Type": "application/json", **{h.name: h.value for h in sink.headers}}
        data = json.dumps(body).encode()
        error = ""
        for pause in (0.0, *BACKOFF_SECONDS):
            self.sleep(pause)
            try:
                response = self.http.request(
                    "POST", sink.url, body=data, headers=headers, timeout=TIMEOUT_SECONDS
                )
            except urllib3.exceptions.HTTPError as err:
                error = str(err)
                continue
            if 200 <= response.status < 300:
                return None
            error = f"HTTP {response.status}"
        return error
