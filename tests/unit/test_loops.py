"""The reconcile loops: one per pipeline the store holds, started once everything is listed,
ended as its pipeline leaves the store; the finalizer of earlier releases removed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import kopf

from pipeline_operator.controller.leader import Alone
from pipeline_operator.controller.loop import (
    LEGACY_FINALIZER,
    Loop,
    Loops,
    ended,
    reconcile_loop,
    wake_changed,
)
from pipeline_operator.k8s.cache import PIPELINES, OwnWrites, Store, World
from pipeline_operator.telemetry import metrics

NS = "ml"


def pipeline(name: str, version: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pipelines.inference.dev/v1alpha1",
        "kind": "InferencePipeline",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "resourceVersion": str(version),
            **meta,
        },
        "spec": {"stages": []},
    }


class Recorder:
    """Loops whose ``run`` counts its wake-ups and returns once told to."""

    def __init__(self) -> None:
        self.woken: dict[str, int] = {}
        self.ended: list[tuple[str, bool]] = []
        self.finish: set[str] = set()
        self.loops = Loops(self.run, lambda ns, name, gone: self.ended.append((name, gone)))

    async def run(self, namespace: str, name: str, loop: Loop) -> None:
        while not loop.stopping and name not in self.finish:
            self.woken[name] = self.woken.get(name, 0) + 1
            loop.woken = False
            await loop.sleep(None)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_nothing_runs_before_the_start_and_each_listed_pipeline_runs_after_it() -> None:
    async def scenario() -> None:
        rec = Recorder()
        rec.loops.wake_filed((NS, "a"), ["a"])  # a watch page during the listing
        await settle()
        assert rec.woken == {} and len(rec.loops) == 0
        rec.loops.start([(NS, "a"), (NS, "b")])
        await settle()
        assert rec.woken == {"a": 1, "b": 1}
        rec.loops.wake_filed((NS, "c"), ["c"])  # a new pipeline, after the start
        rec.loops.wake(NS, "d")  # only a wake-up: starts nothing
        await settle()
        assert rec.woken == {"a": 1, "b": 1, "c": 1}
        await rec.loops.stop(1.0)
        assert sorted(rec.ended) == [("a", False), ("b", False), ("c", False)]

    asyncio.run(scenario())


def test_a_pipeline_the_store_lost_has_its_loop_woken_and_a_recreated_one_runs_anew() -> None:
    async def scenario() -> None:
        rec = Recorder()
        rec.loops.start([(NS, "a")])
        await settle()
        rec.finish.add("a")
        rec.loops.wake_filed((NS, "a"), [])  # deleted: the store no longer holds it
        await settle()
        assert rec.ended == [("a", True)] and len(rec.loops) == 0
        rec.finish.clear()
        rec.loops.wake_filed((NS, "a"), ["a"])  # recreated under the same name
        await settle()
        assert rec.woken == {"a": 2} and len(rec.loops) == 1
        await rec.loops.stop(1.0)

    asyncio.run(scenario())


def test_a_stop_cancels_a_loop_that_does_not_end_in_time() -> None:
    async def scenario() -> None:
        cancelled = []

        async def stuck(namespace: str, name: str, loop: Loop) -> None:
            try:
                await asyncio.sleep(60)  # a reconcile that does not return
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        loops = Loops(stuck, lambda ns, name, gone: None)
        loops.start([(NS, "a")])
        await settle()
        await loops.stop(0.05)
        assert cancelled == ["a"] and len(loops) == 0

    asyncio.run(scenario())


def test_a_sleep_ends_at_its_delay_or_when_woken() -> None:
    async def scenario() -> None:
        loop = Loop()
        clock = asyncio.get_running_loop()
        started = clock.time()
        await loop.sleep(0.05)
        assert clock.time() - started >= 0.04 and loop.woken
        loop.woken = False
        clock.call_later(0.01, loop.wake)
        started = clock.time()
        await loop.sleep(30)
        assert clock.time() - started < 5

    asyncio.run(scenario())


def series_of(name: str) -> list[Any]:
    return [
        sample
        for family in metrics.PIPELINES.collect()
        for sample in family.samples
        if sample.labels.get("pipeline") == name and sample.labels.get("namespace") == NS
    ]


class Reconciler:
    """What :func:`reconcile_loop` calls, recording it; the finalizer patch answers as the
    apiserver would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writes = OwnWrites()
        self.reconciled: list[World] = []
        self.patched: list[list[str]] = []

    async def refresh(self, namespace: str, name: str) -> None:
        return None

    async def reconcile(self, namespace: str, name: str, read: Any) -> float | None:
        self.reconciled.append(read())
        return None

    async def drop_finalizer(self, body: dict[str, Any], finalizer: str) -> None:
        meta = body["metadata"]
        kept = [f for f in meta["finalizers"] if f != finalizer]
        self.patched.append(kept)
        answer = pipeline(meta["name"], int(meta["resourceVersion"]) + 1, finalizers=kept)
        self.writes.record(NS, meta["name"], answer)


def test_the_loop_drops_the_old_finalizer_reconciles_and_ends_once_the_pipeline_is_gone() -> None:
    async def scenario() -> None:
        store = Store()
        store.put(PIPELINES, pipeline("a", finalizers=[LEGACY_FINALIZER, "other/keep"]))
        reconciler = Reconciler(store)
        memo = kopf.Memo(
            store=store,
            reconciler=reconciler,
            leadership=Alone(),
            settings=SimpleNamespace(resync_seconds=300.0),
        )
        memo.loops = Loops(
            lambda ns, name, loop: reconcile_loop(ns, name, loop, memo),
            lambda ns, name, gone: ended(memo, ns, name, gone),
        )
        metrics.export_pipeline(NS, "a", None, {"r1": 100}, "Healthy")
        assert series_of("a")
        memo.loops.start(store.every_pipeline())
        await settle()
        # The finalizer goes first, and only that one; the reconcile sees its removal.
        assert reconciler.patched == [["other/keep"]]
        [seen] = reconciler.reconciled
        assert seen.pipeline is not None
        assert seen.pipeline["metadata"]["finalizers"] == ["other/keep"]
        # Deleted: the watch's DELETED event takes it from the store and wakes its loop.
        changed = store.delete("uid-a")
        wake_changed(memo, changed, None)
        await settle()
        assert len(memo.loops) == 0
        assert (NS, "a") not in reconciler.writes._pending
        assert not series_of("a")  # its series are dropped

    asyncio.run(scenario())
