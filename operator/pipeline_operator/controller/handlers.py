"""kopf wiring: one reconcile loop (a daemon) per pipeline, fed by the operator's watches.

The watches (:mod:`~pipeline_operator.k8s.informers`) keep the pipelines and everything their
reconciles read in a store (InferenceServices and InferenceGraphs, the ControllerRevisions
holding spec snapshots, the stages' pods and the graphs' router Deployments, all but the
pipelines filtered by label in the apiserver), each object trimmed (see
:mod:`~pipeline_operator.k8s.cache`), so a reconcile reads memory, not the API. They have listed
everything before the operator starts its daemons, so the first reconcile after a start
already sees everything; kopf itself watches only the pipelines, to run their daemons.

The daemon serialises reconciles of its pipeline; watch events only wake it, and a wake-up
that finds the pipeline's view unchanged since its last reconcile is skipped. A reconcile
that fails is retried with exponential backoff and jitter; one that succeeds sleeps until the
engine's requeue time, the next event, or the periodic resync. With a leader Lease, only the
leader's daemons reconcile; the other replicas' wait, their caches warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from pipeline_operator.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from pipeline_operator.controller.leader import Alone, Leadership, identity
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.core.naming import LABEL_PIPELINE
from pipeline_operator.k8s import cache
from pipeline_operator.k8s.cache import OWNED, Label, OwnWrites, Store
from pipeline_operator.k8s.client import ConflictError, Kube, NotLeadingError, load_config
from pipeline_operator.k8s.informers import Change, Watches
from pipeline_operator.settings import OperatorSettings
from pipeline_operator.telemetry import metrics, tracing

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
FINALIZER = f"{GROUP}/daemons"
FINALIZER_WAIT = 5.0
"""How long a new pipeline's first reconcile waits for kopf to add its finalizer (a status
patch based on the version before it would conflict)."""


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


def jittered(seconds: float) -> float:
    """``seconds`` give or take half, so that pipelines failing together retry apart."""
    return seconds * random.uniform(0.5, 1.5)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    config: OperatorSettings = memo.settings
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING
    if config.namespaces:
        # Exact namespaces need no scanning: kopf would otherwise list all namespaces, which a
        # namespaced installation may not, and retry the refusal for a minute and a half.
        settings.scanning.disabled = True
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    if config.metrics_port:
        metrics.start_server(config.metrics_port)
    tracing.configure()
    kube = Kube(load_config(connections=config.workers + 1), config.field_manager)
    leadership: Alone | Leadership = Alone()
    if config.lease_name:
        namespace = (
            config.lease_namespace
            or os.environ.get("POD_NAMESPACE")
            or next(iter(config.namespaces), "default")
        )
        leadership = Leadership(kube, namespace, config.lease_name, identity())
        kube.may_write = leadership.leading
        memo.elector = asyncio.create_task(leadership.run())
    else:
        metrics.LEADER.set(1)
    memo.leadership = leadership
    memo.wakeups = Wakeups()
    memo.reconciler = Reconciler(
        kube,
        config,
        api_pool=ThreadPoolExecutor(config.workers, thread_name_prefix="api"),
        analysis_pool=ThreadPoolExecutor(config.analysis_workers, thread_name_prefix="analysis"),
    )
    namespaces: list[str | None] = [*sorted(config.namespaces)] or [None]
    memo.store = Store()
    memo.watches = Watches(
        load_config(connections=len(namespaces) * 6),
        namespaces,
        memo.store,
        lambda changed, change: _changed(memo, changed, change),
    )
    await memo.watches.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop watching and writing, let the writes in flight finish, and hand the Lease over at
    once."""
    memo.watches.stop()
    leadership = memo.leadership
    pool = memo.reconciler.api_pool
    if isinstance(leadership, Leadership):
        memo.elector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await memo.elector
        await asyncio.to_thread(
            leadership.release, lambda: pool.shutdown(wait=True, cancel_futures=True)
        )


# -- the reconcile loop ------------------------------------------------------------------------


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def pipeline_daemon(
    name: str, namespace: str | None, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the pipeline until it is deleted or the operator stops."""
    assert namespace is not None  # InferencePipelines are namespaced
    memo.reconciler.writes.track(namespace, name)
    try:
        await _reconcile_loop(namespace, name, stopped, memo)
    finally:
        memo.wakeups.forget(namespace, name)
        memo.reconciler.writes.forget(namespace, name)
        reason = stopped.reason
        if reason is not None and kopf.DaemonStoppingReason.RESOURCE_DELETED in reason:
            metrics.forget_pipeline(namespace, name)


async def _reconcile_loop(
    namespace: str, name: str, stopped: kopf.DaemonStopped, memo: kopf.Memo
) -> None:
    wakeup = memo.wakeups.event(namespace, name)
    reconciler: Reconciler = memo.reconciler
    leadership: Alone | Leadership = memo.leadership
    resync = memo.settings.resync_seconds
    loop = asyncio.get_running_loop()
    backoff = 1.0
    epoch = 0  # the leadership epoch in which this pipeline was last read from the API
    stale = False  # a status patch lost a race: read the pipeline from the API first
    last: cache.World | None = None  # what the last reconcile read, with its own writes
    due = 0.0  # when to reconcile even if nothing changed
    finalizer_awaited = False
    while not stopped:
        if not leadership.leading():
            await _until(leadership.wait(), stopped)
            continue
        wakeup.clear()
        try:
            if stale or epoch != leadership.epoch:
                # After a conflict, or a change of leader (the previous one may have written
                # after the watch last delivered the pipeline here).
                await reconciler.refresh(namespace, name)
                last, stale, epoch = None, False, leadership.epoch
            world = cache.world(memo.store, reconciler.writes, namespace, name)
            if world == last and loop.time() < due:
                await _sleep(wakeup, stopped, due - loop.time())
                continue
            if not finalizer_awaited and _without_finalizer(world):
                finalizer_awaited = True
                await _sleep(wakeup, stopped, FINALIZER_WAIT)
                continue
            read = _Reader(memo.store, reconciler.writes, namespace, name)
            requeue = await reconciler.reconcile(namespace, name, read)
            last, backoff = cache.rewritten(read.last, reconciler.writes, namespace, name), 1.0
        except ConflictError as conflict:
            log.info("%s/%s changed while reconciling (%s); again now", namespace, name, conflict)
            requeue, stale = 0.0, True
        except NotLeadingError:
            log.warning("%s/%s: no longer the leader; reconcile stopped", namespace, name)
            requeue = 0.0
        except Exception:
            requeue, backoff = jittered(backoff), min(backoff * 2, MAX_BACKOFF)
            log.exception("reconcile of %s/%s failed; retrying in %.0fs", namespace, name, requeue)
        delay = resync if requeue is None else min(max(requeue, 0.0), resync)
        due = loop.time() + delay
        await _sleep(wakeup, stopped, delay)


class _Reader:
    """Reads a pipeline's view from the cache for its reconcile, keeping the last one read."""

    def __init__(self, store: Store, writes: OwnWrites, namespace: str, name: str):
        self.store, self.writes, self.namespace, self.name = store, writes, namespace, name
        self.last = cache.World(pipeline=None)

    def __call__(self) -> cache.World:
        self.last = cache.world(self.store, self.writes, self.namespace, self.name)
        return self.last


def _without_finalizer(world: cache.World) -> bool:
    """kopf has not added its finalizer to this (new, not deleted) pipeline yet."""
    meta = (world.pipeline or {}).get("metadata") or {}
    return (
        bool(meta)
        and FINALIZER not in (meta.get("finalizers") or [])
        and not meta.get("deletionTimestamp")
    )


async def _sleep(wakeup: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    """Sleep up to ``delay`` seconds, less if woken or stopped."""
    await _until(wakeup.wait(), stopped, delay)


async def _until(awaitable: Any, stopped: kopf.DaemonStopped, delay: float | None = None) -> None:
    """Wait for ``awaitable``, at most ``delay`` seconds, less if the daemon is stopped."""
    waiters = [asyncio.ensure_future(awaitable), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# -- what wakes a pipeline ---------------------------------------------------------------------


def _changed(memo: kopf.Memo, changed: set[Label], change: Change | None) -> None:
    """Wake the pipelines whose view changed. A child or snapshot the watch saw deleted
    also wakes its owner (named by its owner reference, or by its pipeline label once that
    was removed), and outranks an older write of the operator still in the cache's overlay."""
    for namespace, label in changed:
        for name in memo.store.pipelines((namespace, label)):
            memo.wakeups.wake(namespace, name)
    if change is None or change.type != "DELETED" or change.resource.kind not in OWNED:
        return
    meta = change.body.get("metadata", {})
    owner = _owner(change.body) or (meta.get("labels") or {}).get(LABEL_PIPELINE)
    namespace = meta.get("namespace")
    if owner is None or namespace is None:
        return
    key = (change.resource.kind.name, str(meta.get("name")))
    memo.reconciler.writes.deleted(namespace, owner, key, cache.version(change.body))
    memo.wakeups.wake(namespace, owner)


def _owner(body: dict[str, Any]) -> str | None:
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(owner["name"])
    return None
