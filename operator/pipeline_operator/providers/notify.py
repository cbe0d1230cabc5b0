"""Notification webhooks: each rollout transition (an Event the engine posts) sent as JSON to
the sinks a pipeline names in ``spec.rollout.notifications``.

Delivery is best effort and off the reconcile's path: one sender thread, in the order the
transitions happened; each POST has a timeout and is tried up to three times (after 0.5 s and
1 s) on no answer or a 5xx. A sink that still fails is reported as a Warning Event
``NotificationFailed`` on the pipeline and counted in
``pipeline_operator_notifications_total{outcome="failed"}``. A transition is sent at most once:
one the operator decided just before it stopped is not sent again after the restart.
PostRollout webhooks are delivered the same way (a failure: ``WebhookFailed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3

from pipeline_operator.api.v1alpha1 import InferencePipelineStatus, Notification, Webhook
from pipeline_operator.core.rollout import Event
from pipeline_operator.providers.webhooks import Target, post_json, webhook_target
from pipeline_operator.telemetry import metrics

TIMEOUT_SECONDS = 5.0


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


Report = Callable[[dict[str, Any], str, str], None]
"""Told (pipeline, Event reason, message) of each body that could not be delivered."""


class Notifier:
    """Sends transitions to notification webhooks, and post-rollout webhooks their bodies."""

    def __init__(self, report: Report, sleep: Callable[[float], None] = time.sleep) -> None:
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
            target = Target(sink.url, {h.name: h.value for h in sink.headers}, TIMEOUT_SECONDS, 2)
            for body in wanted:
                what = f"{body['reason']} not delivered to {sink.url}"
                self.pool.submit(self._deliver, pipeline, target, body, "NotificationFailed", what)

    def tell(self, pipeline: dict[str, Any], hook: Webhook, body: dict[str, Any]) -> None:
        """Queue a post-rollout webhook's call."""
        what = f"post-rollout webhook {hook.name} ({hook.url}) not answered 2xx"
        self.pool.submit(self._deliver, pipeline, webhook_target(hook), body, "WebhookFailed", what)

    def _deliver(
        self, pipeline: dict[str, Any], target: Target, body: dict[str, Any], reason: str, what: str
    ) -> None:
        answer = post_json(self.http, target, body, self.sleep)
        metrics.NOTIFICATIONS.labels("sent" if answer.ok else "failed").inc()
        if not answer.ok:
            self.report(pipeline, reason, f"{what}: {answer.message}")
