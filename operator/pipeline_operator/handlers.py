"""kopf wiring: watches that fill the cache, and one reconcile loop (a daemon) per pipeline.

kopf watches the pipelines and everything their reconciles read: InferenceServices and
InferenceGraphs, the ControllerRevisions holding spec snapshots, the stages' pods and the
graphs' router Deployments (the last three filtered by label in the apiserver). Each object is
kept trimmed in an index (see :mod:`~pipeline_operator.cache`), so a reconcile reads memory,
not the API; kopf fills every index before any handler runs, so the first reconcile after a
start already sees everything.

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

from pipeline_operator import cache, metrics, tracing
from pipeline_operator.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from pipeline_operator.cache import OwnWrites
from pipeline_operator.kube import ConflictError, Kube, NotLeadingError, load_config
from pipeline_operator.leader import Alone, Leadership, identity
from pipeline_operator.naming import LABEL_PIPELINE
from pipeline_operator.reconcile import Reconciler
from pipeline_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
FINALIZER = f"{GROUP}/daemons"
FINALIZER_WAIT = 5.0
"""How long a new pipeline's first reconcile waits for kopf to add its finalizer (a status
patch based on the version before it would conflict)."""
ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")
GRAPH = ("serving.kserve.io", "v1alpha1", "inferencegraphs")
SNAPSHOTS = ("apps", "v1", "controllerrevisions")
PODS = ("v1", "pods")
ROUTERS = ("apps", "v1", "deployments")


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
    # Only what the operator reads comes through these watches (the pipeline label is on
    # everything it writes and on KServe's pods; KServe labels a router with its graph). A
    # child whose label is removed leaves its watch as a deletion, which wakes its pipeline.
    for resource in (ISVC, GRAPH, SNAPSHOTS, PODS):
        settings.watching.label_selectors[resource] = LABEL_PIPELINE
    settings.watching.label_selectors[ROUTERS] = cache.ROUTER_LABEL
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
    memo.indexes = cache.Indexes(
        pipelines=kwargs["pipeline_index"],
        children=[kwargs["service_index"], kwargs["graph_index"]],
        revisions=kwargs["snapshot_index"],
        pods=kwargs["pod_index"],
        routers=kwargs["router_index"],
    )
    memo.reconciler = Reconciler(
        kube,
        config,
        api_pool=ThreadPoolExecutor(config.workers, thread_name_prefix="api"),
        analysis_pool=ThreadPoolExecutor(config.analysis_workers, thread_name_prefix="analysis"),
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop writing, let the writes in flight finish, and hand the Lease over at once."""
    leadership = memo.leadership
    pool = memo.reconciler.api_pool
    if isinstance(leadership, Leadership):
        memo.elector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await memo.elector
        await asyncio.to_thread(
            leadership.release, lambda: pool.shutdown(wait=True, cancel_futures=True)
        )


# -- the cache: what reconciles read -----------------------------------------------------------


@kopf.index(GROUP, VERSION, PLURAL, id="pipeline_index")
def pipeline_index(body: kopf.Body, **_: Any) -> dict[Any, cache.Cached] | None:
    """Pipelines by (namespace, pipeline label): pods name their pipeline by its label."""
    meta = body["metadata"]
    key = (meta.get("namespace"), cache.pipeline_label(meta["name"]))
    return {key: cache.cached(body)}


@kopf.index(*ISVC, id="service_index")
@kopf.index(*GRAPH, id="graph_index")
@kopf.index(*SNAPSHOTS, id="snapshot_index")
def labelled_index(body: kopf.Body, **_: Any) -> dict[Any, cache.Cached] | None:
    """Children and snapshots by (namespace, pipeline label)."""
    key = cache.pipeline_key(body)
    return {key: cache.cached(body)} if key is not None else None


@kopf.index(*PODS, id="pod_index")
def pod_index(body: kopf.Body, **_: Any) -> dict[Any, cache.Cached] | None:
    """The stages' pods by (namespace, pipeline label)."""
    key = cache.pipeline_key(body)
    return {key: cache.cached(body, cache.trim_pod)} if key is not None else None


@kopf.index(*ROUTERS, id="router_index")
def router_index(body: kopf.Body, **_: Any) -> dict[Any, cache.Cached] | None:
    """Router Deployments by (namespace, graph)."""
    graph = (body["metadata"].get("labels") or {}).get(cache.ROUTER_LABEL)
    key = (body["metadata"].get("namespace"), graph)
    return {key: cache.cached(body, cache.trim_router)} if graph else None


@kopf.index(*GRAPH, id="graph_owners")
def graph_owners(
    body: kopf.Body, name: str, namespace: str | None, **_: Any
) -> dict[tuple[str | None, str], str] | None:
    """InferenceGraph -> the pipeline that owns it, to route router Deployment events."""
    owner = _owner(body)
    return {(namespace, name): owner} if owner is not None else None


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
            world = cache.world(memo.indexes, reconciler.writes, namespace, name)
            if world == last and loop.time() < due:
                await _sleep(wakeup, stopped, due - loop.time())
                continue
            if not finalizer_awaited and _without_finalizer(world):
                finalizer_awaited = True
                await _sleep(wakeup, stopped, FINALIZER_WAIT)
                continue
            read = _Reader(memo.indexes, reconciler.writes, namespace, name)
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

    def __init__(self, indexes: cache.Indexes, writes: OwnWrites, namespace: str, name: str):
        self.indexes, self.writes, self.namespace, self.name = indexes, writes, namespace, name
        self.last = cache.World(pipeline=None)

    def __call__(self) -> cache.World:
        self.last = cache.world(self.indexes, self.writes, self.namespace, self.name)
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


@kopf.on.event(GROUP, VERSION, PLURAL)
async def pipeline_changed(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    if namespace is not None:
        memo.wakeups.wake(namespace, name)


def _owner(body: kopf.Body) -> str | None:
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(owner["name"])
    return None


@kopf.on.event(*ISVC)
@kopf.on.event(*GRAPH)
@kopf.on.event(*SNAPSHOTS)
async def owned_changed(
    body: kopf.Body, type: str | None, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A child or snapshot changed: wake its pipeline, named by the owner reference or, once
    that was removed, by the pipeline label. A deletion the watch reports outranks an older
    write of the operator still in the cache's overlay."""
    labels = body.get("metadata", {}).get("labels") or {}
    owner = _owner(body) or labels.get(LABEL_PIPELINE)
    if owner is None or namespace is None:
        return
    if type == "DELETED":
        key = cache.key_of(body)
        memo.reconciler.writes.deleted(namespace, owner, key, cache.version(body))
    memo.wakeups.wake(namespace, owner)


@kopf.on.event(*PODS)
async def pod_changed(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A stage's pod came up, became ready, or cannot be scheduled: wake its pipeline."""
    label = (body.get("metadata", {}).get("labels") or {}).get(LABEL_PIPELINE)
    if namespace is None or label is None:
        return
    for pipeline in memo.indexes.pipelines.get((namespace, label), ()):
        memo.wakeups.wake(namespace, pipeline.body["metadata"]["name"])


@kopf.on.event(*ROUTERS)
async def router_changed(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    """KServe rolled a router out (or is rolling it): its pipeline's timers may start now."""
    owners: kopf.Index[tuple[str | None, str], str] = kwargs["graph_owners"]
    graph = body.get("metadata", {}).get("labels", {}).get(cache.ROUTER_LABEL)
    if namespace is None or graph is None:
        return
    for owner in owners.get((namespace, graph), []):
        memo.wakeups.wake(namespace, owner)
