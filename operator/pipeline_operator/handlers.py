"""kopf wiring: one reconcile loop (a daemon) per pipeline, woken by events and timers.

The daemon serialises reconciles of its pipeline; watch events of the pipeline and of its
children (InferenceServices and InferenceGraphs it owns or that carry its label) only wake
it. A reconcile that fails is retried with exponential backoff; one that succeeds sleeps
until the engine's requeue time, the next event, or the periodic resync, whichever comes
first.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import kopf

from pipeline_operator import metrics, tracing
from pipeline_operator.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from pipeline_operator.kube import ROUTER_LABEL, ConflictError, Kube, load_config
from pipeline_operator.naming import LABEL_PIPELINE
from pipeline_operator.reconcile import Reconciler
from pipeline_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


class Wakeups:
    """One asyncio.Event per pipeline, set to make its daemon reconcile now."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def event(self, namespace: str, name: str) -> asyncio.Event:
        return self._events.setdefault((namespace, name), asyncio.Event())

    def wake(self, namespace: str, name: str) -> None:
        """Wake the pipeline's daemon; none running yet means it reconciles when it starts."""
        event = self._events.get((namespace, name))
        if event is not None:
            event.set()

    def forget(self, namespace: str, name: str) -> None:
        self._events.pop((namespace, name), None)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorSettings = memo.settings
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING
    if config.namespaces:
        # Exact namespaces need no scanning: kopf would otherwise list all namespaces, which a
        # namespaced installation may not, and retry the refusal for a minute and a half.
        settings.scanning.disabled = True
    if not config.standalone:
        # kopf pauses a replica only for a peer of higher priority: give each its own, so
        # exactly one replica (the highest) is active and the others stand by.
        settings.peering.priority = secrets.randbelow(2**31)
    settings.persistence.finalizer = f"{GROUP}/daemons"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    if config.metrics_port:
        metrics.start_server(config.metrics_port)
    tracing.configure()
    memo.wakeups = Wakeups()
    memo.reconciler = Reconciler(Kube(load_config(), config.field_manager), config)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def pipeline_daemon(
    name: str, namespace: str | None, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the pipeline until it is deleted or the operator stops."""
    assert namespace is not None  # InferencePipelines are namespaced
    wakeup = memo.wakeups.event(namespace, name)
    reconciler: Reconciler = memo.reconciler
    resync = memo.settings.resync_seconds
    backoff = 1.0
    try:
        while not stopped:
            wakeup.clear()
            try:
                requeue = await asyncio.to_thread(reconciler.reconcile, namespace, name)
                backoff = 1.0
            except ConflictError as conflict:
                log.info(
                    "%s/%s changed while reconciling (%s); again now", namespace, name, conflict
                )
                requeue = 0.0
            except Exception:
                log.exception(
                    "reconcile of %s/%s failed; retrying in %.0fs", namespace, name, backoff
                )
                requeue, backoff = backoff, min(backoff * 2, MAX_BACKOFF)
            delay = resync if requeue is None else min(max(requeue, 0.0), resync)
            await _sleep(wakeup, stopped, delay)
    finally:
        memo.wakeups.forget(namespace, name)
        reason = stopped.reason
        if reason is not None and kopf.DaemonStoppingReason.RESOURCE_DELETED in reason:
            metrics.forget_pipeline(namespace, name)


async def _sleep(wakeup: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    """Sleep up to ``delay`` seconds, less if woken or stopped."""
    waiters = [asyncio.ensure_future(wakeup.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def pipeline_changed(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    if namespace is not None:
        memo.wakeups.wake(namespace, name)


def _owner(body: kopf.Body) -> str | None:
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(owner["name"])
    return None


@kopf.on.event("serving.kserve.io", "v1beta1", "inferenceservices")
@kopf.on.event("serving.kserve.io", "v1alpha1", "inferencegraphs")
async def child_changed(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A child changed: wake its pipeline, named by the owner reference or, once that was
    removed, by the pipeline label (not a filter: a child whose label was removed must wake
    its pipeline too, which puts the label back)."""
    labels = body.get("metadata", {}).get("labels") or {}
    owner = _owner(body) or labels.get(LABEL_PIPELINE)
    if owner is not None and namespace is not None:
        memo.wakeups.wake(namespace, owner)


@kopf.index(
    "serving.kserve.io", "v1alpha1", "inferencegraphs", labels={LABEL_PIPELINE: kopf.PRESENT}
)
def graph_owners(
    body: kopf.Body, name: str, namespace: str | None, **_: Any
) -> dict[tuple[str | None, str], str] | None:
    """InferenceGraph -> the pipeline that owns it, to route router Deployment events."""
    owner = _owner(body)
    return {(namespace, name): owner} if owner is not None else None


@kopf.on.event("apps", "v1", "deployments", labels={ROUTER_LABEL: kopf.PRESENT})
async def router_changed(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    """KServe rolled a router out (or is rolling it): its pipeline's timers may start now."""
    owners: kopf.Index[tuple[str | None, str], str] = kwargs["graph_owners"]
    graph = body.get("metadata", {}).get("labels", {}).get(ROUTER_LABEL)
    if namespace is None or graph is None:
        return
    for owner in owners.get((namespace, graph), []):
        memo.wakeups.wake(namespace, owner)
