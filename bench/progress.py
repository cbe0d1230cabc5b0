"""What the operator benchmark sees of its namespace, from watch streams (no polling).

Per pipeline: when each child appeared (metadata-only watches of InferenceServices and
InferenceGraphs) and when its status first observed its spec (a watch of the pipelines).
Every change of a pipeline or a child after :meth:`Progress.mark` is counted, so that a
restart that writes nothing shows 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from kubernetes import client

from pipeline_operator.api.v1alpha1 import GROUP, PLURAL, VERSION

METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
CHILDREN = (("v1beta1", "inferenceservices"), ("v1alpha1", "inferencegraphs"))


class Stream(threading.Thread):
    """One watch of ``path`` (resumed when the apiserver closes it), each event to ``on``."""

    def __init__(
        self,
        api: client.ApiClient,
        path: str,
        on: Callable[[str, dict[str, Any]], None],
        metadata_only: bool = False,
    ) -> None:
        super().__init__(daemon=True, name=f"watch {path}")
        self.api, self.path, self.on = api, path, on
        self.accept = METADATA_ONLY if metadata_only else "application/json"
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.version = ""

    def run(self) -> None:
        while not self.closed.is_set():
            try:
                self._watch()
            except Exception:  # the stream broke: resume from the last version seen
                self.closed.wait(1)

    def _watch(self) -> None:
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", "3600")]
        if self.version:
            query.append(("resourceVersion", self.version))
        response = self.api.call_api(
            self.path,
            "GET",
            query_params=query,
            header_params={"Accept": self.accept},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        self.ready.set()
        pending = b""
        for chunk in response.stream(1 << 16):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                event = orjson.loads(line)
                if event["type"] == "ERROR":  # the version expired: watch from now on
                    self.version = ""
                    return
                obj = event["object"]
                self.version = obj.get("metadata", {}).get("resourceVersion", self.version)
                if event["type"] != "BOOKMARK":
                    self.on(event["type"], obj)


class Progress:
    """Children and observed status of the pipelines of one namespace, as they happen."""

    def __init__(self, api: client.ApiClient, namespace: str, children: int) -> None:
        self.children = children
        self.lock = threading.Lock()
        self.seen: dict[str, set[str]] = {}
        self.children_at: dict[str, float] = {}
        self.observed_at: dict[str, float] = {}
        self.child_times: list[float] = []
        self.changes = 0
        base = f"namespaces/{namespace}"
        self.streams = [Stream(api, f"/apis/{GROUP}/{VERSION}/{base}/{PLURAL}", self._pipeline)]
        for version, plural in CHILDREN:
            path = f"/apis/serving.kserve.io/{version}/{base}/{plural}"
            self.streams.append(Stream(api, path, self._child, metadata_only=True))
        for stream in self.streams:
            stream.start()
        for stream in self.streams:
            stream.ready.wait(30)

    def close(self) -> None:
        for stream in self.streams:
            stream.closed.set()

    def mark(self) -> None:
        """Count changes from now on."""
        with self.lock:
            self.changes = 0

    def _pipeline(self, kind: str, obj: dict[str, Any]) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        now = time.monotonic()
        with self.lock:
            self.changes += kind == "MODIFIED"
            name = meta["name"]
            if status.get("observedGeneration") == meta.get("generation"):
                self.observed_at.setdefault(name, now)

    def _child(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        owners = [o["name"] for o in meta.get("ownerReferences") or [] if o.get("controller")]
        now = time.monotonic()
        with self.lock:
            self.changes += kind == "MODIFIED"
            if kind != "ADDED" or not owners:
                return
            seen = self.seen.setdefault(owners[0], set())
            seen.add(meta["name"])
            self.child_times.append(now)
            if len(seen) == self.children:
                self.children_at.setdefault(owners[0], now)

    def converged_at(self, name: str) -> float | None:
        """When the pipeline had all of its children and a status for its spec."""
        with self.lock:
            times = (self.children_at.get(name), self.observed_at.get(name))
        return None if None in times else max(t for t in times if t is not None)

    def converged(self, names: Iterable[str]) -> int:
        return sum(self.converged_at(n) is not None for n in names)

    def wait(self, names: list[str], timeout: float, what: str) -> None:
        """Wait until every pipeline of ``names`` converged, logging the count every 10 s."""
        started = last = time.monotonic()
        while (done := self.converged(names)) < len(names):
            now = time.monotonic()
            if now - started > timeout:
                raise RuntimeError(f"{what}: only {done}/{len(names)} converged in {timeout:.0f}s")
            if now - last > 10:
                print(f"  {what}: {done}/{len(names)} converged", flush=True)
                last = now
            time.sleep(0.05)
