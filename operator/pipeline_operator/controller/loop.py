"""The reconcile loop of one pipeline, and what wakes it.

The loop (run by the pipeline's kopf daemon, see :mod:`~pipeline_operator.controller.handlers`)
serialises reconciles of its pipeline; watch events only wake it, and a wake-up that finds the
pipeline's view unchanged since its last reconcile is skipped. A reconcile that fails is
retried with exponential backoff and jitter; one that succeeds sleeps until the engine's
requeue time, the next event, or the periodic resync. With a leader Lease, only the leader's
loops reconcile; the other replicas' wait, their caches warm.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import kopf

from pipeline_operator.api.v1alpha1 import GROUP, KIND
from pipeline_operator.controller.leader import Alone, Leadership
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.core.naming import LABEL_PIPELINE
from pipeline_operator.k8s import cache
from pipeline_operator.k8s.cache import OWNED, Label, OwnWrites, Store
from pipeline_operator.k8s.client import ConflictError, NotLeadingError
from pipeline_operator.k8s.informers import Change, Listed

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


async def reconcile_loop(
    namespace: str, name: str, stopped: kopf.DaemonStopped, memo: kopf.Memo
) -> None:
    """Reconcile the pipeline when woken, at its requeue time and at each resync, until the
    daemon is stopped; only while this replica leads."""
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


def wake_changed(memo: kopf.Memo, changed: set[Label], change: Change | Listed | None) -> None:
    """Wake the pipelines whose view changed. A child or snapshot the watch saw deleted
    also wakes its owner (named by its owner reference, or by its pipeline label once that
    was removed), and outranks an older write of the operator still in the cache's overlay;
    a listing drops the writes it supersedes and wakes their pipelines."""
    for namespace, label in changed:
        for name in memo.store.pipelines((namespace, label)):
            memo.wakeups.wake(namespace, name)
    if isinstance(change, Listed):
        writes: OwnWrites = memo.reconciler.writes
        for namespace, name in writes.listed(
            change.resource.kind.name, change.namespace, change.version
        ):
            memo.wakeups.wake(namespace, name)
        return
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
