"""What the operator knows of the cluster between API calls (pure).

Watches (``informers``) fill a :class:`Store` with the pipelines and everything a reconcile
reads of them (children, spec snapshots, pods, router Deployments), each object trimmed to
the fields a reconcile reads (``trim_*``) and kept packed (:class:`Cached`). A reconcile
reads a :class:`World` of its pipeline, its few objects opened, from the store overlaid with
the operator's own writes that the watch has not delivered yet (:class:`OwnWrites`): no
reconcile acts on a view older than its own last write. Between reconciles, a loop keeps
only the :class:`View` it last read: references to packed objects the store holds anyway.

Resource versions are compared as numbers (etcd revisions, as every apiserver backed by etcd
gives them): a cached object at or past the version a write returned has caught up with it.
"""

from __future__ import annotations

import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from pipeline_operator.api.v1alpha1 import KIND
from pipeline_operator.core.naming import LABEL_PIPELINE, fit_name, graph_name
from pipeline_operator.core.observe.pods import (
    COMPONENT_LABEL,
    GRAPH_LABEL,
    SERVICE_LABEL,
    STUCK,
)

ROUTER_LABEL = GRAPH_LABEL  # on the router Deployment KServe creates
POD_CONDITIONS = ("Ready", "PodScheduled")

Key = tuple[str, str]
"""(kind, name) of an object in its pipeline's namespace."""


def version(body: Mapping[str, Any]) -> int:
    """An object's resourceVersion as a number (0 when it has none or it is not a number)."""
    value = body.get("metadata", {}).get("resourceVersion") or ""
    return int(value) if value.isdigit() else 0


def key_of(body: Mapping[str, Any]) -> Key:
    return str(body["kind"]), str(body["metadata"]["name"])


@dataclass(frozen=True, slots=True)
class Packed:
    """A JSON value kept compressed and decoded when read, its keys in the order they came in
    (the apiserver encodes an object alike each time). Equal when encoded alike."""

    blob: bytes

    @classmethod
    def of(cls, value: Any) -> Packed:
        return cls(zlib.compress(orjson.dumps(value)))

    def value(self) -> Any:
        return orjson.loads(zlib.decompress(self.blob))


@dataclass(frozen=True, slots=True)
class Cached:
    """A trimmed object, packed, with its key and resourceVersion; equal when the trimmed
    fields are, so that a change of fields no reconcile reads replaces nothing and wakes
    nothing.

    Packed, an object costs a few hundred bytes (its JSON, compressed) where its Python
    objects would cost several kilobytes, which the store would hold between reconciles for
    nothing: a reconcile reads each object of its pipeline whole or not at all, and opens
    (:attr:`body`) only the few of its own pipeline.
    """

    key: Key
    packed: Packed
    version: int = field(compare=False)

    @property
    def body(self) -> dict[str, Any]:
        """The trimmed object, decoded (a fresh copy each time)."""
        return dict(self.packed.value())


def cached(
    body: Mapping[str, Any],
    trimmer: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    kind: str | None = None,
) -> Cached:
    """``body`` trimmed (by kind, or with ``trimmer``) and packed, with its resourceVersion;
    ``kind`` for an object of a list, which names no kind of its own."""
    name = sys.intern(str(body.get("metadata", {}).get("name")))
    key = (kind, name) if kind is not None else key_of(body)
    return Cached(key, Packed.of((trimmer or trim)(body)), version(body))


def pipeline_label(name: str) -> str:
    """The value of the pipeline label on everything of pipeline ``name``."""
    return fit_name(name, limit=63)


# -- what a reconcile reads of each kind ------------------------------------------------------


def _meta(body: Mapping[str, Any], *fields: str) -> dict[str, Any]:
    meta = body.get("metadata", {})
    return {f: meta[f] for f in fields if meta.get(f) is not None}


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""What ``kubectl apply`` (client-side) leaves on a pipeline: a copy of the manifest that no
reconcile reads, often the largest annotation."""


def trim_pipeline(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pipeline without its managedFields and ``kubectl apply``'s copy of its manifest; its
    resourceVersion is kept (a status patch's precondition)."""
    meta = _meta(
        body,
        *("name", "namespace", "uid", "generation", "resourceVersion", "labels"),
        *("annotations", "finalizers", "deletionTimestamp"),
    )
    if LAST_APPLIED in meta.get("annotations", {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind", KIND),
        "metadata": meta,
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


def _managed(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """managedFields as ``drift`` reads them: who owns which fields, without timestamps.

    Entries of a subresource (status) are dropped, and an Update entry keeps only the spec
    fields it owns (none: it is dropped): drift reads the whole set of an Apply entry (the
    operator's) and the spec fields of every other entry.
    """
    kept = []
    for entry in entries:
        if entry.get("subresource"):
            continue
        fields = entry.get("fieldsV1") or {}
        if entry.get("operation") != "Apply":
            if "f:spec" not in fields:
                continue  # owns no spec field: drift reads nothing of it
            fields = {"f:spec": fields["f:spec"]}
        kept.append(
            {
                "manager": entry.get("manager"),
                "operation": entry.get("operation"),
                "fieldsV1": fields,
            }
        )
    return kept


CHILD_CONDITIONS = ("Ready",)
"""The conditions of a child a reconcile reads (readiness reads an InferenceService's Ready);
KServe reports several more on each, of which only those that are False are kept: why a
component failed (``TransformerReady``: ``ReconcileFailed``), which Ready may not say."""


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
                if c.get("type") in CHILD_CONDITIONS or c.get("status") == "False"
            ],
            **({"url": status["url"]} if status.get("url") else {}),
        },
    }


def trim_route(body: Mapping[str, Any]) -> dict[str, Any]:
    """An HTTPRoute: what a child keeps, its generation, and each Gateway's verdict on it
    (``status.parents``: the parent, and its Accepted and ResolvedRefs conditions)."""
    child = trim_child(body)
    generation = body.get("metadata", {}).get("generation")
    if generation is not None:
        child["metadata"]["generation"] = generation
    child["status"] = {
        "parents": [
            {
                "parentRef": parent.get("parentRef") or {},
                "conditions": [
                    {k: c[k] for k in ROUTE_CONDITION_KEYS if k in c}
                    for c in parent.get("conditions") or []
                    if c.get("type") in ("Accepted", "ResolvedRefs")
                ],
            }
            for parent in (body.get("status") or {}).get("parents") or []
        ]
    }
    return child


ROUTE_CONDITION_KEYS = ("type", "status", "reason", "message", "observedGeneration")


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
    """A stage's or router's pod: its InferenceService and component (or graph), phase, Ready
    and PodScheduled, the containers stuck in an error, and whether it is being deleted."""
    labels = body.get("metadata", {}).get("labels") or {}
    status = body.get("status") or {}
    kept = (SERVICE_LABEL, COMPONENT_LABEL, GRAPH_LABEL)
    trimmed: dict[str, Any] = {
        "metadata": {
            "labels": {k: labels[k] for k in kept if k in labels},
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
    stuck = [
        {"name": c.get("name"), "reason": waiting["reason"], "message": waiting.get("message", "")}
        for c in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
        if (waiting := (c.get("state") or {}).get("waiting") or {}).get("reason") in STUCK
    ]
    if stuck:
        trimmed["status"]["stuck"] = stuck
    return trimmed


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


Label = tuple[str, str]
"""(namespace, pipeline label): what every object of a pipeline is filed under; a router
Deployment is filed under (namespace, its graph)."""


@dataclass(frozen=True)
class Kind:
    """A kind of watched object: how it is trimmed and where it is filed."""

    name: str
    trim: Callable[[Mapping[str, Any]], dict[str, Any]]
    label: str | None = LABEL_PIPELINE
    """The label whose value files it (None: a pipeline, filed under its own name's label)."""

    def filed_under(self, body: Mapping[str, Any]) -> Label | None:
        meta = body.get("metadata", {})
        if self.label is None:
            value: str | None = pipeline_label(str(meta.get("name")))
        else:
            value = (meta.get("labels") or {}).get(self.label)
        if not value:
            return None
        # Interned: every object of a pipeline is filed under the same two strings.
        return sys.intern(str(meta.get("namespace"))), sys.intern(str(value))


PIPELINES = Kind(KIND, trim_pipeline, None)
SERVICES = Kind("InferenceService", trim_child)
GRAPHS = Kind("InferenceGraph", trim_child)
ROUTES = Kind("HTTPRoute", trim_route)
MIRRORS = Kind("TraefikService", trim_child)
SNAPSHOTS = Kind("ControllerRevision", trim_revision)
PODS = Kind("Pod", trim_pod)
ROUTERS = Kind("Deployment", trim_router, ROUTER_LABEL)
OWNED = (SERVICES, GRAPHS, ROUTES, MIRRORS, SNAPSHOTS)
"""The kinds the operator writes for a pipeline."""


class Store:
    """Every watched object, trimmed, by kind and :data:`Label`.

    Each change returns the labels of the pipelines whose view it changed (a router's is the
    pipeline of its graph); a change of fields no reconcile reads changes no view. Used from
    the event loop alone.
    """

    def __init__(self) -> None:
        self._objects: dict[str, dict[Label, dict[str, Cached]]] = {}
        self._where: dict[str, tuple[Kind, Label, str]] = {}
        """uid -> the object's kind, where it is filed, and its name."""
        self._graphs: dict[Label, Label] = {}
        """(namespace, graph) -> its pipeline's label."""

    def get(self, kind: Kind, label: Label) -> list[Cached]:
        return list(self._objects.get(kind.name, {}).get(label, {}).values())

    def size(self) -> int:
        """How many objects it holds."""
        return len(self._where)

    def put(self, kind: Kind, body: Mapping[str, Any]) -> set[Label]:
        """An object as listed, added or modified (one that lost its label leaves)."""
        meta = body.get("metadata", {})
        uid, name = str(meta.get("uid")), sys.intern(str(meta.get("name")))
        label = kind.filed_under(body)
        if label is None:
            return self.delete(uid)
        where = self._where.get(uid)
        moved = where is not None and where[:2] != (kind, label)
        changed = self.delete(uid) if moved else set()
        stored = self._objects.setdefault(kind.name, {}).setdefault(label, {})
        new = cached(body, kind.trim, kind.name)
        same = stored.get(uid) == new
        stored[uid] = new
        self._where[uid] = (kind, label, name)
        if kind is GRAPHS:
            self._graphs[(label[0], name)] = label
        return changed if same else changed | self._owners(kind, label)

    def delete(self, uid: str) -> set[Label]:
        """The object ``uid`` was deleted (or left the watch)."""
        where = self._where.pop(uid, None)
        if where is None:
            return set()
        kind, label, name = where
        stored = self._objects[kind.name][label]
        del stored[uid]
        if not stored:
            del self._objects[kind.name][label]
        if kind is GRAPHS:
            self._graphs.pop((label[0], name), None)
        return self._owners(kind, label)

    def prune(self, kind: Kind, namespace: str | None, keep: frozenset[str]) -> set[Label]:
        """A listing of ``kind`` in ``namespace`` (None: every namespace) held only ``keep``:
        the others were deleted."""
        changed: set[Label] = set()
        for uid, (other, label, _) in list(self._where.items()):
            if other is kind and namespace in (None, label[0]) and uid not in keep:
                changed |= self.delete(uid)
        return changed

    def pipelines(self, label: Label) -> list[str]:
        """Names of the pipelines filed under ``label``."""
        return [c.key[1] for c in self.get(PIPELINES, label)]

    def every_pipeline(self) -> list[tuple[str, str]]:
        """(namespace, name) of every pipeline held."""
        return [
            (label[0], c.key[1])
            for label, filed in self._objects.get(PIPELINES.name, {}).items()
            for c in filed.values()
        ]

    def holds_pipeline(self, namespace: str, name: str) -> bool:
        filed = self._objects.get(PIPELINES.name, {}).get((namespace, pipeline_label(name)), {})
        return any(c.key[1] == name for c in filed.values())

    def _owners(self, kind: Kind, label: Label) -> set[Label]:
        if kind is not ROUTERS:
            return {label}
        owner = self._graphs.get(label)
        return {owner} if owner else set()


@dataclass
class _Written:
    version: int
    kept: Cached | None
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
        self._put(namespace, pipeline, kept.key, _Written(kept.version, kept))

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

    def listed(self, kind: str, namespace: str | None, version: int) -> set[tuple[str, str]]:
        """A listing of ``kind`` in ``namespace`` (None: every namespace) as of ``version``:
        drop the records of that kind it supersedes. An object the listing holds is cached at
        that version or a newer one; one it lacks was deleted since the write (a relist after
        a watch error sees no DELETED event), and its record must not keep it in the view.
        Returns the pipelines whose records it dropped: their views changed."""
        dropped: set[tuple[str, str]] = set()
        with self._lock:
            for (ns, pipeline), pending in self._pending.items():
                if namespace not in (None, ns):
                    continue
                stale = [k for k, w in pending.items() if k[0] == kind and w.version <= version]
                for key in stale:
                    del pending[key]
                if stale:
                    dropped.add((ns, pipeline))
        return dropped

    def merge(self, namespace: str, pipeline: str, objects: Iterable[Cached]) -> dict[Key, Cached]:
        """``objects`` by key with this pipeline's records laid over them."""
        out = {c.key: c for c in objects}
        with self._lock:
            pending = self._pending.get((namespace, pipeline), {})
            for key, written in list(pending.items()):
                seen = out.get(key)
                if seen is not None and seen.version >= written.version:
                    del pending[key]  # the watch caught up
                elif written.kept is not None:
                    out[key] = written.kept
                elif seen is None:
                    del pending[key]  # deleted, and the cache agrees
                else:
                    del out[key]  # deleted, not yet seen so
        return out


@dataclass(frozen=True)
class View:
    """One pipeline's objects as the store holds them (packed), with its own writes laid
    over: what its loop compares between wake-ups (equal when the trimmed objects are), and
    what :meth:`opened` decodes into the :class:`World` a reconcile reads."""

    objects: Mapping[Key, Cached]
    """The pipeline, its children and snapshots."""
    pods: tuple[Cached, ...] = ()
    routers: Mapping[str, Cached] = field(default_factory=dict)

    def pipeline(self) -> dict[str, Any] | None:
        """The pipeline alone, opened."""
        kept = next((c for k, c in self.objects.items() if k[0] == KIND), None)
        return kept.body if kept is not None else None

    def opened(self) -> World:
        bodies = {key: c.body for key, c in self.objects.items()}
        return World(
            pipeline=next((b for k, b in bodies.items() if k[0] == KIND), None),
            children=tuple(
                b for k, b in bodies.items() if k[0] not in (KIND, "ControllerRevision")
            ),
            revisions=tuple(b for k, b in bodies.items() if k[0] == "ControllerRevision"),
            pods=tuple(p.body for p in self.pods),
            routers={g: r.body for g, r in self.routers.items()},
            versions={k: c.version for k, c in self.objects.items()},
        )


def view(store: Store, writes: OwnWrites, namespace: str, name: str) -> View:
    """What a reconcile of ``namespace/name`` reads, packed."""
    label = (namespace, pipeline_label(name))
    pipelines = [p for p in store.get(PIPELINES, label) if p.key[1] == name]
    children = [
        *(c for kind in (SERVICES, GRAPHS, ROUTES, MIRRORS) for c in store.get(kind, label))
    ]
    graphs = (graph_name(name), graph_name(name, preview=True))
    routers = {g: next(iter(store.get(ROUTERS, (namespace, g))), None) for g in graphs}
    return View(
        writes.merge(namespace, name, [*pipelines, *children, *store.get(SNAPSHOTS, label)]),
        tuple(store.get(PODS, label)),
        {g: r for g, r in routers.items() if r is not None},
    )


def world(store: Store, writes: OwnWrites, namespace: str, name: str) -> World:
    """The view one reconcile of ``namespace/name`` reads, opened."""
    return view(store, writes, namespace, name).opened()


def rewritten(before: View, writes: OwnWrites, namespace: str, name: str) -> View:
    """``before`` with the reconcile's own write of the pipeline (its status) laid over it:
    the view that status was computed from, as it reads once the write comes back, whatever
    else changed meanwhile. Its writes of children and snapshots are not laid over: a view
    that holds them is not the one the status was computed from, so it is reconciled again."""
    key = (KIND, name)
    after = writes.merge(namespace, name, before.objects.values())
    objects = {k: c for k, c in before.objects.items() if k != key}
    if key in after:
        objects[key] = after[key]
    return replace(before, objects=objects)
