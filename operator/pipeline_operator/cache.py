"""What the operator knows of the cluster between API calls (pure).

kopf watches the pipelines and everything a reconcile reads of them (children, spec
snapshots, pods, router Deployments) and keeps each object in an index, trimmed to the fields
a reconcile reads (``trim_*``). A reconcile reads a :class:`World` of its pipeline from those
indexes, overlaid with the operator's own writes that the watch has not delivered yet
(:class:`OwnWrites`): no reconcile acts on a view older than its own last write.

Resource versions are compared as numbers (etcd revisions, as every apiserver backed by etcd
gives them): a cached object at or past the version a write returned has caught up with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_operator.api.v1alpha1 import KIND
from pipeline_operator.naming import LABEL_PIPELINE, fit_name, graph_name
from pipeline_operator.pods import COMPONENT_LABEL, SERVICE_LABEL

ROUTER_LABEL = "serving.kserve.io/inferencegraph"  # on the router Deployment KServe creates
POD_CONDITIONS = ("Ready", "PodScheduled")

Key = tuple[str, str]
"""(kind, name) of an object in its pipeline's namespace."""


def version(body: Mapping[str, Any]) -> int:
    """An object's resourceVersion as a number (0 when it has none or it is not a number)."""
    value = body.get("metadata", {}).get("resourceVersion") or ""
    return int(value) if value.isdigit() else 0


def key_of(body: Mapping[str, Any]) -> Key:
    return str(body["kind"]), str(body["metadata"]["name"])


@dataclass(frozen=True)
class Cached:
    """A trimmed object and its resourceVersion; equal when the trimmed fields are, so that a
    change of fields no reconcile reads replaces nothing and wakes nothing."""

    body: dict[str, Any]
    version: int = field(compare=False)


def cached(
    body: Mapping[str, Any], trimmer: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
) -> Cached:
    """``body`` trimmed (by kind, or with ``trimmer``), with its resourceVersion."""
    return Cached((trimmer or trim)(body), version(body))


def pipeline_label(name: str) -> str:
    """The value of the pipeline label on everything of pipeline ``name``."""
    return fit_name(name, limit=63)


def pipeline_key(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, pipeline label) of an object that carries the pipeline label."""
    meta = body.get("metadata", {})
    label = (meta.get("labels") or {}).get(LABEL_PIPELINE)
    return (meta.get("namespace"), label) if label else None


# -- what a reconcile reads of each kind ------------------------------------------------------


def _meta(body: Mapping[str, Any], *fields: str) -> dict[str, Any]:
    meta = body.get("metadata", {})
    return {f: meta[f] for f in fields if meta.get(f) is not None}


def trim_pipeline(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pipeline without its managedFields; its resourceVersion is kept (a status patch's
    precondition)."""
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind", KIND),
        "metadata": _meta(
            body,
            *("name", "namespace", "uid", "generation", "resourceVersion", "labels"),
            *("annotations", "finalizers", "deletionTimestamp"),
        ),
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


def _managed(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """managedFields without their timestamps: who owns which fields (see ``drift``)."""
    keep = ("manager", "operation", "subresource", "fieldsV1")
    return [{k: e[k] for k in keep if k in e} for e in entries]


def trim_child(body: Mapping[str, Any]) -> dict[str, Any]:
    """An InferenceService or InferenceGraph: metadata, ownership, spec, Ready and url."""
    meta = _meta(
        body,
        *("name", "namespace", "uid", "labels", "annotations", "ownerReferences"),
        "deletionTimestamp",
    )
    meta["managedFields"] = _managed(body.get("metadata", {}).get("managedFields") or [])
    status = body.get("status") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": meta,
        "spec": body.get("spec") or {},
        "status": {
            "conditions": [
                {k: c[k] for k in ("type", "status", "reason", "message") if k in c}
                for c in status.get("conditions") or []
            ],
            **({"url": status["url"]} if status.get("url") else {}),
        },
    }


def trim_revision(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ControllerRevision holding a spec snapshot."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": _meta(body, "name", "namespace", "uid", "labels"),
        "revision": body.get("revision", 0),
        "data": body.get("data"),
    }


def trim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's pod: its InferenceService and component, phase, Ready and PodScheduled."""
    labels = body.get("metadata", {}).get("labels") or {}
    status = body.get("status") or {}
    return {
        "metadata": {
            "labels": {k: labels[k] for k in (SERVICE_LABEL, COMPONENT_LABEL) if k in labels},
            **_meta(body, "deletionTimestamp"),
        },
        "status": {
            "phase": status.get("phase"),
            "conditions": [
                {k: c[k] for k in ("type", "status", "message") if k in c}
                for c in status.get("conditions") or []
                if c.get("type") in POD_CONDITIONS
            ],
        },
    }


def trim_router(body: Mapping[str, Any]) -> dict[str, Any]:
    """A graph's router Deployment: the routes its pods run and its rollout's progress."""
    spec = body.get("spec") or {}
    containers = spec.get("template", {}).get("spec", {}).get("containers") or []
    status = body.get("status") or {}
    counts = ("observedGeneration", "replicas", "updatedReplicas", "availableReplicas")
    return {
        "metadata": _meta(body, "generation"),
        "spec": {
            "replicas": spec.get("replicas", 1),
            "template": {
                "spec": {"containers": [{"args": c.get("args") or []} for c in containers]}
            },
        },
        "status": {k: status[k] for k in counts if k in status},
    }


def trim(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the apiserver answered to a write of a pipeline, child or snapshot, trimmed."""
    kind = body.get("kind")
    if kind == KIND:
        return trim_pipeline(body)
    if kind == "ControllerRevision":
        return trim_revision(body)
    return trim_child(body)


# -- one pipeline's view ----------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What one reconcile reads of one pipeline (read-only); equal when the trimmed objects
    are, whatever their resource versions."""

    pipeline: dict[str, Any] | None
    children: tuple[dict[str, Any], ...] = ()
    revisions: tuple[dict[str, Any], ...] = ()
    pods: tuple[dict[str, Any], ...] = ()
    routers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    versions: Mapping[Key, int] = field(default_factory=dict, compare=False)
    """resourceVersion of each pipeline, child and snapshot above."""


class Indexes:
    """kopf's indexes, as plain mappings: (namespace, pipeline label, or graph for the
    routers) -> objects."""

    def __init__(
        self,
        pipelines: Mapping[tuple[str, str], Iterable[Cached]],
        children: Iterable[Mapping[tuple[str, str], Iterable[Cached]]],
        revisions: Mapping[tuple[str, str], Iterable[Cached]],
        pods: Mapping[tuple[str, str], Iterable[Cached]],
        routers: Mapping[tuple[str, str], Iterable[Cached]],
    ) -> None:
        self.pipelines = pipelines
        self.children = list(children)
        self.revisions = revisions
        self.pods = pods
        self.routers = routers


@dataclass
class _Written:
    version: int
    body: dict[str, Any] | None
    """None: deleted (by the operator, or seen deleted by the watch)."""


class OwnWrites:
    """The operator's writes per pipeline, until the watch has delivered them.

    A reconcile records what each write returned; :func:`world` shows a recorded object in
    place of an older cached one, hides one it deleted, and forgets a record once the cache
    holds that version or a newer one. A deletion the watch reports outranks an older record
    that a slow response brings in later. Records are kept for the pipelines whose reconcile
    loop runs (:meth:`track` to :meth:`forget`). Thread-safe: reconciles record from worker
    threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], dict[Key, _Written]] = {}

    def track(self, namespace: str, pipeline: str) -> None:
        with self._lock:
            self._pending.setdefault((namespace, pipeline), {})

    def forget(self, namespace: str, pipeline: str) -> None:
        with self._lock:
            self._pending.pop((namespace, pipeline), None)

    def record(self, namespace: str, pipeline: str, response: Mapping[str, Any]) -> None:
        """A write's response (a pipeline, child or snapshot), or a fresh read."""
        kept = cached(response)
        self._put(namespace, pipeline, key_of(response), _Written(kept.version, kept.body))

    def deleted(self, namespace: str, pipeline: str, key: Key, after: int) -> None:
        """``key`` was deleted (by this operator, or as the watch says) past version ``after``."""
        self._put(namespace, pipeline, key, _Written(after + 1, None))

    def _put(self, namespace: str, pipeline: str, key: Key, written: _Written) -> None:
        with self._lock:
            pending = self._pending.get((namespace, pipeline))
            if pending is None:
                return  # no reconcile loop for this pipeline: nothing reads a stale view
            known = pending.get(key)
            if known is None or known.version <= written.version:
                pending[key] = written

    def merge(self, namespace: str, pipeline: str, objects: Iterable[Cached]) -> dict[Key, Cached]:
        """``objects`` by key with this pipeline's records laid over them."""
        out = {key_of(c.body): c for c in objects}
        with self._lock:
            pending = self._pending.get((namespace, pipeline), {})
            for key, written in list(pending.items()):
                seen = out.get(key)
                if seen is not None and seen.version >= written.version:
                    del pending[key]  # the watch caught up
                elif written.body is not None:
                    out[key] = Cached(written.body, written.version)
                elif seen is None:
                    del pending[key]  # deleted, and the cache agrees
                else:
                    del out[key]  # deleted, not yet seen so
        return out


def world(indexes: Indexes, writes: OwnWrites, namespace: str, name: str) -> World:
    """The view one reconcile of ``namespace/name`` reads."""
    label = (namespace, pipeline_label(name))
    pipelines = [p for p in indexes.pipelines.get(label, ()) if p.body["metadata"]["name"] == name]
    children = [c for index in indexes.children for c in index.get(label, ())]
    graphs = (graph_name(name), graph_name(name, preview=True))
    routers = {g: next(iter(indexes.routers.get((namespace, g), ())), None) for g in graphs}
    return _view(
        writes,
        namespace,
        name,
        [*pipelines, *children, *indexes.revisions.get(label, ())],
        tuple(p.body for p in indexes.pods.get(label, ())),
        {g: r.body for g, r in routers.items() if r is not None},
    )


def rewritten(before: World, writes: OwnWrites, namespace: str, name: str) -> World:
    """``before`` with the operator's writes since laid over it: what a reconcile that read
    ``before`` left, whatever else changed meanwhile."""
    bodies = [*([before.pipeline] if before.pipeline else []), *before.children, *before.revisions]
    objects = [Cached(b, before.versions.get(key_of(b), 0)) for b in bodies]
    return _view(writes, namespace, name, objects, before.pods, before.routers)


def _view(
    writes: OwnWrites,
    namespace: str,
    name: str,
    objects: list[Cached],
    pods: tuple[dict[str, Any], ...],
    routers: Mapping[str, dict[str, Any]],
) -> World:
    merged = writes.merge(namespace, name, objects)
    pipeline = merged.get((KIND, name))
    return World(
        pipeline=pipeline.body if pipeline is not None else None,
        children=tuple(
            c.body for k, c in merged.items() if k[0] not in (KIND, "ControllerRevision")
        ),
        revisions=tuple(c.body for k, c in merged.items() if k[0] == "ControllerRevision"),
        pods=pods,
        routers=routers,
        versions={k: c.version for k, c in merged.items()},
    )
