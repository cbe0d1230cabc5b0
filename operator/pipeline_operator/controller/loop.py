"""The reconcile loop of each pipeline, and what starts, wakes and ends it.

:class:`Loops` runs one loop per pipeline the watches hold: each pipeline listed when the
operator starts (once everything it reads is listed), and each new one the watch brings. A
loop serialises its pipeline's reconciles; watch events only wake it, and a wake-up that
finds the pipeline's view unchanged since its last reconcile is skipped. A reconcile that
fails is retried with exponential backoff and jitter; one that succeeds sleeps until the
engine's requeue time, the next event, or the periodic resync. A loop ends once its pipeline
has left the store (it was deleted), or when the operator stops. With a leader Lease, only
the leader's loops reconcile; the other replicas' wait, their caches warm.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Iterable
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
from pipeline_operator.telemetry import metrics

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
LEGACY_FINALIZER = f"{GROUP}/daemons"
"""The finalizer that earlier releases had kopf keep on every pipeline (to stop its kopf
daemon); each loop removes it from its pipeline, being deleted or not, so that no pipeline
waits on it to go."""


class Loop:
    """What one pipeline's loop is woken and stopped by: a flag, and the future its sleep
    waits on (a few hundred bytes in all; no task waits beside it while it sleeps)."""

    __slots__ = ("_waiter", "stopping", "task", "woken")

    def __init__(self) -> None:
        self.woken = False
        self.stopping = False
        self.task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        self.woken = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def stop(self) -> None:
        self.stopping = True
        self.wake()

    async def sleep(self, delay: float | None) -> None:
        """Until woken or stopped, at most ``delay`` seconds (None: no limit); a wake-up
        since the last :attr:`woken` reset ends it at once."""
        if self.woken:
            return
        clock = asyncio.get_running_loop()
        self._waiter = clock.create_future()
        timer = None if delay is None else clock.call_later(delay, self.wake)
        try:
            await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


Run = Callable[[str, str, Loop], Coroutine[Any, Any, None]]


class Loops:
    """One :class:`Loop` per pipeline, each running ``run(namespace, name, loop)`` until it
    returns (its pipeline is gone) or the operator stops; ``ended(namespace, name, gone)``
    is called as each ends, in the same step of the event loop as its last check (so that a
    pipeline recreated under the name at once gets a loop of its own)."""

    def __init__(self, run: Run, ended: Callable[[str, str, bool], None]) -> None:
        self._run, self._ended = run, ended
        self._loops: dict[Label, dict[str, Loop]] = {}
        self._started = False

    def __len__(self) -> int:
        return sum(len(named) for named in self._loops.values())

    def start(self, pipelines: Iterable[tuple[str, str]]) -> None:
        """Start a loop for each of ``pipelines``, and from now on one for each pipeline a
        wake-up names (before this, wake-ups start nothing: the watches are still listing)."""
        self._started = True
        for namespace, name in pipelines:
            self.run(namespace, name)

    def wake(self, namespace: str, name: str) -> None:
        """Wake the pipeline's loop, if one runs."""
        loop = self._loops.get((namespace, cache.pipeline_label(name)), {}).get(name)
        if loop is not None:
            loop.wake()

    def run(self, namespace: str, name: str) -> None:
        """Wake the pipeline's loop, starting it if none runs."""
        label = (namespace, cache.pipeline_label(name))
        loop = self._loops.get(label, {}).get(name)
        if loop is not None:
            loop.wake()
        elif self._started:
            loop = self._loops.setdefault(label, {})[name] = Loop()
            loop.task = asyncio.create_task(
                self._supervise(label, name, loop), name=f"reconcile {namespace}/{name}"
            )

    def wake_filed(self, label: Label, names: Iterable[str]) -> None:
        """The view of the pipelines under ``label`` changed, and ``names`` are those the
        store holds: wake (or start) their loops, and those of the ones it lost, which end."""
        present = set(names)
        for name in present:
            self.run(label[0], name)
        for name, loop in self._loops.get(label, {}).items():
            if name not in present:
                loop.wake()

    def wake_all(self) -> None:
        for named in self._loops.values():
            for loop in named.values():
                loop.wake()

    async def stop(self, timeout: float) -> None:
        """Stop every loop: wait up to ``timeout`` seconds for the reconciles in flight to
        end, then cancel the rest."""
        self._started = False
        tasks = []
        for named in self._loops.values():
            for loop in named.values():
                loop.stop()
                if loop.task is not None:
                    tasks.append(loop.task)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _supervise(self, label: Label, name: str, loop: Loop) -> None:
        try:
            await self._run(label[0], name, loop)
        finally:
            named = self._loops.get(label, {})
            if named.get(name) is loop:
                del named[name]
                if not named:
                    del self._loops[label]
            self._ended(label[0], name, not loop.stopping)


def jittered(seconds: float) -> float:
    """``seconds`` give or take half, so that pipelines failing together retry apart."""
    return seconds * random.uniform(0.5, 1.5)


async def reconcile_loop(namespace: str, name: str, control: Loop, memo: kopf.Memo) -> None:
    """Reconcile the pipeline when woken, at its requeue time and at each resync, only while
    this replica leads; return once the store no longer holds the pipeline."""
    store: Store = memo.store
    reconciler: Reconciler = memo.reconciler
    leadership: Alone | Leadership = memo.leadership
    resync = memo.settings.resync_seconds
    clock = asyncio.get_running_loop()
    backoff = 1.0
    epoch = 0  # the leadership epoch in which this pipeline was last read from the API
    stale = False  # a status patch lost a race: read the pipeline from the API first
    last: cache.View | None = None  # what the last reconcile read, with its own writes
    due = 0.0  # when to reconcile even if nothing changed
    reconciler.writes.track(namespace, name)  # forgotten as the loop ends (see ended)
    while not control.stopping and store.holds_pipeline(namespace, name):
        control.woken = False
        if not leadership.leading():
            await control.sleep(None)  # woken by events, by a stop, or once this replica leads
            continue
        try:
            if stale or epoch != leadership.epoch:
                # After a conflict, or a change of leader (the previous one may have written
                # after the watch last delivered the pipeline here).
                await reconciler.refresh(namespace, name)
                last, stale, epoch = None, False, leadership.epoch
            view = cache.view(store, reconciler.writes, namespace, name)
            if view == last and clock.time() < due:
                await control.sleep(due - clock.time())
                continue
            pipeline = view.pipeline()
            if pipeline is not None and LEGACY_FINALIZER in finalizers(pipeline):
                await reconciler.drop_finalizer(pipeline, LEGACY_FINALIZER)
                continue
            read = _Reader(store, reconciler.writes, namespace, name)
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
        due = clock.time() + delay
        await control.sleep(delay)


def ended(memo: kopf.Memo, namespace: str, name: str, gone: bool) -> None:
    """A loop ended: forget what was kept for its pipeline (its series too, when deleted)."""
    memo.reconciler.writes.forget(namespace, name)
    if gone:
        metrics.forget_pipeline(namespace, name)


def finalizers(pipeline: dict[str, Any]) -> list[str]:
    return list((pipeline.get("metadata") or {}).get("finalizers") or [])


class _Reader:
    """Reads a pipeline's view from the cache for its reconcile, keeping the last one read
    (packed)."""

    def __init__(self, store: Store, writes: OwnWrites, namespace: str, name: str):
        self.store, self.writes, self.namespace, self.name = store, writes, namespace, name
        self.last = cache.View({})

    def __call__(self) -> cache.World:
        self.last = cache.view(self.store, self.writes, self.namespace, self.name)
        return self.last.opened()


# -- what wakes a pipeline ---------------------------------------------------------------------


def wake_changed(memo: kopf.Memo, changed: set[Label], change: Change | Listed | None) -> None:
    """Wake the pipelines whose view changed. A child or snapshot the watch saw deleted
    also wakes its owner (named by its owner reference, or by its pipeline label once that
    was removed), and outranks an older write of the operator still in the cache's overlay;
    a listing drops the writes it supersedes and wakes their pipelines."""
    loops: Loops = memo.loops
    for label in changed:
        loops.wake_filed(label, memo.store.pipelines(label))
    if isinstance(change, Listed):
        writes: OwnWrites = memo.reconciler.writes
        for namespace, name in writes.listed(
            change.resource.kind.name, change.namespace, change.version
        ):
            loops.wake(namespace, name)
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
    loops.wake(namespace, owner)


def _owner(body: dict[str, Any]) -> str | None:
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(owner["name"])
    return None
