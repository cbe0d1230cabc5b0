"""An in-memory stand-in for the operator's Kube client, for unit tests of the reconciler.

It stores what is written and can refuse writes the way the apiserver or an admission
webhook would; it runs no controller, so nothing it holds ever becomes Ready by itself. Its
:meth:`FakeKube.world` is what a reconcile reads, always up to date with every write.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.k8s.cache import World
from pipeline_operator.k8s.client import RefusedError

READY = {"type": "Ready", "status": "True"}


class FakeKube:
    def __init__(self, pipeline: dict[str, Any]) -> None:
        self.pipeline = copy.deepcopy(pipeline)
        self.children: dict[tuple[str, str], dict[str, Any]] = {}
        self.revisions: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.refuse: Callable[[dict[str, Any]], str | None] = lambda obj: None
        """Says why a write of ``obj`` is refused, or None to accept it."""
        self.applied: list[str] = []
        self.gateways: dict[tuple[str, str], dict[str, Any]] = {}
        self.gateway_classes: dict[str, dict[str, Any]] = {}
        self.gateway_reads = 0

    def world(self) -> World:
        """What a reconcile of the pipeline reads."""
        return World(
            pipeline=copy.deepcopy(self.pipeline),
            children=tuple(copy.deepcopy(c) for c in self.children.values()),
            revisions=tuple(copy.deepcopy(r) for r in self.revisions.values()),
            pods=tuple(self.pods()),
        )

    # -- pipelines
    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.pipeline)

    def patch_pipeline_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        status = self.pipeline.get("status") or {}
        self.pipeline["status"] = apply_merge_patch(status, patch)
        return copy.deepcopy(self.pipeline)

    # -- Gateways
    def read_gateway(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.gateway_reads += 1
        return copy.deepcopy(self.gateways.get((namespace, name)))

    def read_gateway_class(self, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.gateway_classes.get(name))

    # -- children
    def pods(self) -> list[dict[str, Any]]:
        """KServe's pods: as many ready ones per component as it asks for once marked Ready."""
        out = []
        for (kind, name), obj in self.children.items():
            ready = ((obj.get("status") or {}).get("conditions") or [{}])[0].get("status")
            if kind != "InferenceService" or ready != "True":
                continue
            for component, body in obj["spec"].items():
                labels = {"serving.kserve.io/inferenceservice": name, "component": component}
                pod = {
                    "metadata": {"labels": labels},
                    "status": {"phase": "Running", "conditions": [READY]},
                }
                out += [copy.deepcopy(pod) for _ in range(body.get("minReplicas", 1))]
        return out

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        refusal = self.refuse(obj)
        if refusal is not None:
            raise RefusedError(400, refusal)
        self.applied.append(name)
        self.children[(obj["kind"], name)] = copy.deepcopy(obj)
        return copy.deepcopy(obj)

    def annotate(self, obj: dict[str, Any], key: str, value: str | None) -> dict[str, Any]:
        stored = self.children[(obj["kind"], obj["metadata"]["name"])]
        annotations = stored["metadata"].setdefault("annotations", {})
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
        return copy.deepcopy(stored)

    def delete(self, obj: dict[str, Any]) -> None:
        self.children.pop((obj["kind"], obj["metadata"]["name"]), None)

    # -- snapshots and events
    def create_revision(self, body: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(
            self.revisions.setdefault(body["metadata"]["name"], copy.deepcopy(body))
        )

    def delete_revision(self, namespace: str, name: str) -> None:
        self.revisions.pop(name, None)

    def post_event(self, pipeline: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def mark_ready(self, kind: str = "InferenceService") -> None:
        """Report every child of ``kind`` Ready, as KServe would once its pods serve."""
        for (child_kind, _), obj in self.children.items():
            if child_kind == kind:
                obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}


def reconcile(reconciler: Reconciler, kube: FakeKube) -> float | None:
    """One reconcile of the pipeline ``kube`` holds, as the operator's loop runs it."""
    meta = kube.pipeline["metadata"]
    return asyncio.run(reconciler.reconcile(meta["namespace"], meta["name"], kube.world))


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: what the apiserver does with a merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out
