"""The cache: what reconciles read instead of the API, never older than their own writes."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import kopf

from pipeline_operator.controller.loop import Loop, Loops, wake_changed
from pipeline_operator.core.naming import LABEL_PIPELINE
from pipeline_operator.k8s.cache import (
    GRAPHS,
    PIPELINES,
    ROUTER_LABEL,
    ROUTERS,
    SERVICES,
    Kind,
    OwnWrites,
    Store,
    cached,
    rewritten,
    trim_child,
    trim_pipeline,
    trim_pod,
    view,
    world,
)
from pipeline_operator.k8s.informers import WATCHED, Listed

NS, NAME = "ml", "clf"
LABEL = (NS, NAME)


def pipeline(version: int, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pipelines.inference.dev/v1alpha1",
        "kind": "InferencePipeline",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": "u1",
            "resourceVersion": str(version),
            "managedFields": [{"manager": "kubectl", "time": "2026-01-01T00:00:00Z"}],
        },
        "spec": {"stages": []},
        "status": status,
    }


def service(name: str, version: int, ready: str = "False") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "resourceVersion": str(version),
            "labels": {LABEL_PIPELINE: NAME},
            "managedFields": [
                {
                    "manager": "inference-pipelines",
                    "operation": "Apply",
                    "time": "t1",
                    "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {"f:predictor": {}}},
                },
                {
                    "manager": "kubectl-edit",
                    "operation": "Update",
                    "time": "t3",
                    "fieldsV1": {"f:metadata": {"f:annotations": {}}, "f:spec": {"f:x": {}}},
                },
                {
                    "manager": "kserve",
                    "operation": "Update",
                    "subresource": "status",
                    "time": "t2",
                    "fieldsV1": {"f:status": {"f:conditions": {}}},
                },
            ],
        },
        "spec": {"predictor": {"minReplicas": 1}},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": f"t{version}"}],
            "components": {"predictor": {"latestCreatedRevision": f"r{version}"}},
        },
    }


class Fake:
    """The operator's store, as its watches fill it, and its own writes."""

    def __init__(self) -> None:
        self.store = Store()
        self.writes = OwnWrites()
        self.writes.track(NS, NAME)

    def show(self, kind: Kind, *bodies: dict[str, Any]) -> set[tuple[str, str]]:
        """The watch now holds exactly ``bodies`` of ``kind``."""
        uids = frozenset(b["metadata"]["uid"] for b in bodies)
        changed = self.store.prune(kind, NS, uids)
        for body in bodies:
            changed |= self.store.put(kind, body)
        return changed

    def view(self) -> Any:
        return world(self.store, self.writes, NS, NAME)

    def packed(self) -> Any:
        return view(self.store, self.writes, NS, NAME)


def test_trimmed_objects_keep_what_reconciles_read_and_drop_the_rest() -> None:
    body = service("a", 5, ready="True")
    trimmed = trim_child(body)
    assert trimmed["status"] == {"conditions": [{"type": "Ready", "status": "True"}]}
    # What drift reads: an Apply entry whole, the spec fields of an Update; no status entry.
    assert trimmed["metadata"]["managedFields"] == [
        {
            "manager": "inference-pipelines",
            "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {"f:predictor": {}}},
        },
        {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {"f:x": {}}}},
    ]
    assert "resourceVersion" not in trimmed["metadata"]
    # A change only to what no reconcile reads compares equal, so it wakes nothing.
    assert cached(service("a", 6, ready="True")) == cached(body)
    assert cached(service("a", 6, ready="False")) != cached(body)
    assert "managedFields" not in trim_pipeline(pipeline(3))["metadata"]
    pod = {
        "metadata": {"labels": {"component": "predictor", "app": "x"}, "name": "p-1"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "message": "0/6 nodes", "reason": "U"},
                {"type": "Initialized", "status": "True"},
            ],
        },
    }
    assert trim_pod(pod) == {
        "metadata": {"labels": {"component": "predictor"}},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/6 nodes"}],
        },
    }


def test_the_store_keeps_each_object_packed_and_compares_it_by_content() -> None:
    body = service("a", 5)
    kept = cached(body)
    assert kept.key == ("InferenceService", "a") and kept.version == 5
    assert len(kept.packed.blob) < len(json.dumps(trim_child(body)))
    assert kept.body == trim_child(body)
    assert kept.body is not kept.body  # each reconcile opens its own copy
    # Opened, it keeps its keys in the order they came in (readers may rely on it).
    body["spec"] = {"z": 1, **body["spec"], "b": 2}
    assert list(cached(body).body["spec"]) == list(body["spec"])
    assert cached(body) == cached(json.loads(json.dumps(body)))
    # An object of a list names no kind: the store gives it.
    listed = {k: v for k, v in body.items() if k != "kind"}
    assert cached(listed, trim_child, "InferenceService").key == kept.key


def test_a_loop_keeps_a_packed_view_that_opens_into_the_world_a_reconcile_reads() -> None:
    fake = Fake()
    fake.show(PIPELINES, pipeline(3))
    fake.show(SERVICES, service("a", 5))
    packed = fake.packed()
    assert packed == fake.packed()
    assert packed.opened() == fake.view()
    assert all(
        c is fake.store.get(SERVICES, LABEL)[0]
        for c in packed.objects.values()
        if c.key[0] == "InferenceService"
    )


def test_an_own_write_shows_until_the_watch_delivers_it() -> None:
    fake = Fake()
    fake.show(PIPELINES, pipeline(10))
    fake.writes.record(NS, NAME, pipeline(12, phase="Healthy"))
    fake.writes.record(NS, NAME, service("a", 11))
    seen = fake.view()
    assert seen.pipeline["status"] == {"phase": "Healthy"}
    assert [c["metadata"]["name"] for c in seen.children] == ["a"]
    assert seen.versions[("InferencePipeline", NAME)] == 12

    # The watch delivers the status write, then someone edits the pipeline again.
    fake.show(PIPELINES, pipeline(14, phase="Paused"))
    fake.show(SERVICES, service("a", 11))
    seen = fake.view()
    assert seen.pipeline["status"] == {"phase": "Paused"}
    assert fake.writes.merge(NS, NAME, []) == {}  # nothing left to lay over the cache


def test_a_deleted_object_is_hidden_until_the_cache_agrees() -> None:
    fake = Fake()
    fake.show(SERVICES, service("a", 5), service("b", 6))
    fake.writes.deleted(NS, NAME, ("InferenceService", "a"), after=5)
    assert [c["metadata"]["name"] for c in fake.view().children] == ["b"]
    fake.show(SERVICES, service("b", 6))
    assert [c["metadata"]["name"] for c in fake.view().children] == ["b"]
    # Created again later: a newer version than the deleted one shows.
    fake.writes.deleted(NS, NAME, ("InferenceService", "b"), after=6)
    fake.show(SERVICES, service("b", 9))
    assert [c["metadata"]["name"] for c in fake.view().children] == ["b"]


def test_a_deletion_the_watch_saw_outranks_a_slower_response() -> None:
    fake = Fake()
    # The watch delivered the object's creation and deletion before the apply's response.
    fake.writes.deleted(NS, NAME, ("InferenceService", "a"), after=8)
    fake.writes.record(NS, NAME, service("a", 7))
    assert fake.view().children == ()


def test_writes_of_pipelines_without_a_reconcile_loop_are_not_kept() -> None:
    writes = OwnWrites()
    writes.record(NS, "other", pipeline(3))
    writes.track(NS, "other")
    assert writes.merge(NS, "other", []) == {}
    writes.record(NS, "other", service("a", 4))
    writes.forget(NS, "other")
    assert writes.merge(NS, "other", []) == {}


def test_what_a_reconcile_left_ignores_what_others_changed_meanwhile() -> None:
    fake = Fake()
    fake.show(PIPELINES, pipeline(10))
    fake.show(SERVICES, service("a", 11))
    before = fake.packed()
    # The reconcile writes status; meanwhile KServe reports the service Ready.
    fake.writes.record(NS, NAME, pipeline(13, phase="Progressing"))
    fake.show(SERVICES, service("a", 12, ready="True"))
    left = rewritten(before, fake.writes, NS, NAME)
    assert left.opened().pipeline["status"] == {"phase": "Progressing"}
    assert left.opened().children == before.opened().children
    assert fake.packed() != left  # the Ready service is news: reconcile again
    fake.show(SERVICES, service("a", 11))
    fake.show(PIPELINES, pipeline(13, phase="Progressing"))
    assert fake.packed() == left  # only its own writes came back: nothing to do


def test_a_view_holding_the_children_a_reconcile_wrote_is_reconciled_again() -> None:
    # The status of the reconcile that created a child was computed without it; the view
    # that holds it is news, or that status would say "missing" until something else changed.
    fake = Fake()
    fake.show(PIPELINES, pipeline(10))
    before = fake.packed()
    fake.writes.record(NS, NAME, service("a", 11))
    fake.writes.record(NS, NAME, pipeline(12, phase="Deploying"))
    left = rewritten(before, fake.writes, NS, NAME)
    assert left.opened().children == () and left.opened().pipeline["status"] == {
        "phase": "Deploying"
    }
    assert fake.packed() != left
    fake.show(SERVICES, service("a", 11))
    fake.show(PIPELINES, pipeline(12, phase="Deploying"))
    assert fake.packed() != left


def router(graph: str, version: int, available: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{graph}-router",
            "namespace": NS,
            "uid": f"uid-{graph}-router",
            "resourceVersion": str(version),
            "generation": 1,
            "labels": {ROUTER_LABEL: graph},
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"args": []}]}}},
        "status": {"observedGeneration": 1, "availableReplicas": available},
    }


def graph(name: str) -> dict[str, Any]:
    body = service(name, 3)
    body["kind"], body["metadata"]["uid"] = "InferenceGraph", f"uid-graph-{name}"
    return body


def test_the_store_names_the_pipelines_whose_view_changed() -> None:
    store = Store()
    assert store.put(PIPELINES, pipeline(1)) == {LABEL}
    assert store.pipelines(LABEL) == [NAME]
    assert store.put(SERVICES, service("a", 5)) == {LABEL}
    # Only fields no reconcile reads changed: no view changed.
    assert store.put(SERVICES, service("a", 6)) == set()
    assert store.put(SERVICES, service("a", 7, ready="True")) == {LABEL}
    # A router is its graph's pipeline's; one of a graph the store does not hold, no one's.
    assert store.put(ROUTERS, router("other", 8, 1)) == set()
    store.put(GRAPHS, graph(NAME))
    assert store.put(ROUTERS, router(NAME, 9, 0)) == {LABEL}
    assert world(store, OwnWrites(), NS, NAME).routers[NAME]["status"]["availableReplicas"] == 0
    # An object that lost its label leaves the store, and its pipeline is told.
    unlabelled = service("a", 10, ready="True")
    del unlabelled["metadata"]["labels"]
    assert store.put(SERVICES, unlabelled) == {LABEL}
    assert store.get(SERVICES, LABEL) == []
    assert store.delete("uid-unknown") == set()


def test_a_listing_removes_what_it_no_longer_holds() -> None:
    fake = Fake()
    fake.show(SERVICES, service("a", 5), service("b", 6))
    assert fake.show(SERVICES, service("b", 6)) == {LABEL}  # a was deleted while unwatched
    assert [c["metadata"]["name"] for c in fake.view().children] == ["b"]
    # A listing of another namespace leaves this one alone.
    assert fake.store.prune(SERVICES, "elsewhere", frozenset()) == set()
    assert fake.store.size() == 1


def test_a_relist_drops_the_own_writes_it_supersedes() -> None:
    """A watch error, then a relist: the child written at version 11 was deleted meanwhile (no
    DELETED event came), so the listing lacks it and the view must too; a write newer than
    the listing stays laid over it."""
    fake = Fake()
    fake.show(SERVICES, service("b", 5))
    fake.writes.record(NS, NAME, service("a", 11))
    fake.writes.record(NS, NAME, service("c", 25))
    assert {c["metadata"]["name"] for c in fake.view().children} == {"a", "b", "c"}

    fake.show(SERVICES, service("b", 5))  # the relist, as of version 20
    assert fake.writes.listed("InferenceService", NS, 20) == {(NS, NAME)}
    assert {c["metadata"]["name"] for c in fake.view().children} == {"b", "c"}
    # Other kinds' records, and other namespaces' listings, are left alone.
    fake.writes.record(NS, NAME, pipeline(12, phase="Healthy"))
    assert fake.writes.listed("InferenceService", "elsewhere", 30) == set()
    assert fake.writes.listed("InferenceService", NS, 20) == set()
    assert fake.view().pipeline["status"] == {"phase": "Healthy"}


def test_a_relist_that_drops_an_own_write_wakes_its_pipeline() -> None:
    async def scenario() -> None:
        fake = Fake()
        woken: list[Loop] = []

        async def run(namespace: str, name: str, loop: Loop) -> None:
            loop.woken = False
            woken.append(loop)
            await loop.sleep(None)

        memo = kopf.Memo(store=fake.store, loops=Loops(run, lambda *_: None))
        memo.reconciler = SimpleNamespace(writes=fake.writes)
        memo.loops.start([(NS, NAME)])
        await asyncio.sleep(0)
        [loop] = woken
        fake.writes.record(NS, NAME, service("a", 11))
        services = next(r for r in WATCHED if r.kind is SERVICES)
        wake_changed(memo, set(), Listed(services, NS, frozenset(), 20))
        assert loop.woken
        assert fake.view().children == ()
        await memo.loops.stop(1.0)

    asyncio.run(scenario())
