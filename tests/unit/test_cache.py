"""The cache: what reconciles read instead of the API, never older than their own writes."""

from __future__ import annotations

from typing import Any

from pipeline_operator.cache import (
    Cached,
    Indexes,
    OwnWrites,
    cached,
    rewritten,
    trim_child,
    trim_pipeline,
    trim_pod,
    world,
)
from pipeline_operator.naming import LABEL_PIPELINE

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
                {"manager": "inference-pipelines", "operation": "Apply", "time": "t1"},
                {"manager": "kserve", "operation": "Update", "subresource": "status", "time": "t2"},
            ],
        },
        "spec": {"predictor": {"minReplicas": 1}},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": f"t{version}"}],
            "components": {"predictor": {"latestCreatedRevision": f"r{version}"}},
        },
    }


class Fake:
    """kopf's indexes: (namespace, pipeline label) -> the objects kopf has seen."""

    def __init__(self) -> None:
        self.pipelines: dict[tuple[str, str], list[Cached]] = {}
        self.services: dict[tuple[str, str], list[Cached]] = {}
        self.pods: dict[tuple[str, str], list[Cached]] = {}
        self.writes = OwnWrites()
        self.writes.track(NS, NAME)

    def indexes(self) -> Indexes:
        return Indexes(self.pipelines, [self.services], {}, self.pods, {})

    def view(self) -> Any:
        return world(self.indexes(), self.writes, NS, NAME)


def test_trimmed_objects_keep_what_reconciles_read_and_drop_the_rest() -> None:
    body = service("a", 5, ready="True")
    trimmed = trim_child(body)
    assert trimmed["status"] == {"conditions": [{"type": "Ready", "status": "True"}]}
    assert trimmed["metadata"]["managedFields"] == [
        {"manager": "inference-pipelines", "operation": "Apply"},
        {"manager": "kserve", "operation": "Update", "subresource": "status"},
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


def test_an_own_write_shows_until_the_watch_delivers_it() -> None:
    fake = Fake()
    fake.pipelines[LABEL] = [cached(pipeline(10))]
    fake.writes.record(NS, NAME, pipeline(12, phase="Healthy"))
    fake.writes.record(NS, NAME, service("a", 11))
    seen = fake.view()
    assert seen.pipeline["status"] == {"phase": "Healthy"}
    assert [c["metadata"]["name"] for c in seen.children] == ["a"]
    assert seen.versions[("InferencePipeline", NAME)] == 12

    # The watch delivers the status write, then someone edits the pipeline again.
    fake.pipelines[LABEL] = [cached(pipeline(14, phase="Paused"))]
    fake.services[LABEL] = [cached(service("a", 11))]
    seen = fake.view()
    assert seen.pipeline["status"] == {"phase": "Paused"}
    assert fake.writes.merge(NS, NAME, []) == {}  # nothing left to lay over the cache


def test_a_deleted_object_is_hidden_until_the_cache_agrees() -> None:
    fake = Fake()
    fake.services[LABEL] = [cached(service(n, v)) for n, v in (("a", 5), ("b", 6))]
    fake.writes.deleted(NS, NAME, ("InferenceService", "a"), after=5)
    assert [c["metadata"]["name"] for c in fake.view().children] == ["b"]
    fake.services[LABEL] = [cached(service("b", 6))]
    assert [c["metadata"]["name"] for c in fake.view().children] == ["b"]
    # Created again later: a newer version than the deleted one shows.
    fake.writes.deleted(NS, NAME, ("InferenceService", "b"), after=6)
    fake.services[LABEL] = [cached(service("b", 9))]
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
    fake.pipelines[LABEL] = [cached(pipeline(10))]
    fake.services[LABEL] = [cached(service("a", 11))]
    before = fake.view()
    # The reconcile writes status; meanwhile KServe reports the service Ready.
    fake.writes.record(NS, NAME, pipeline(13, phase="Progressing"))
    fake.services[LABEL] = [cached(service("a", 12, ready="True"))]
    left = rewritten(before, fake.writes, NS, NAME)
    assert left.pipeline["status"] == {"phase": "Progressing"}
    assert left.children == before.children
    assert fake.view() != left  # the Ready service is news: reconcile again
    fake.services[LABEL] = [cached(service("a", 11))]
    fake.pipelines[LABEL] = [cached(pipeline(13, phase="Progressing"))]
    assert fake.view() == left  # only its own writes came back: nothing to do
