"""An in-memory stand-in for the operator's Kube client, for unit tests of the reconciler.

It stores what is written and can refuse writes the way the apiserver or an admission
webhook would; it runs no controller, so nothing it holds ever becomes Ready by itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from pipeline_operator.kube import RefusedError

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

    # -- pipelines
    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.pipeline)

    def patch_pipeline_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> None:
        status = self.pipeline.get("status") or {}
        self.pipeline["status"] = apply_merge_patch(status, patch)

    # -- children
    def list_children(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(c) for c in self.children.values()]

    def list_routers(self, namespace: str, graphs: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def list_pods(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
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

    def apply(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        refusal = self.refuse(obj)
        if refusal is not None:
            raise RefusedError(400, refusal)
        self.applied.append(name)
        self.children[(obj["kind"], name)] = copy.deepcopy(obj)

    def annotate(self, obj: dict[str, Any], key: str, value: str | None) -> None:
        stored = self.children[(obj["kind"], obj["metadata"]["name"])]
        annotations = stored["metadata"].setdefault("annotations", {})
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value

    def delete(self, obj: dict[str, Any]) -> None:
        self.children.pop((obj["kind"], obj["metadata"]["name"]), None)

    # -- snapshots and events
    def list_revisions(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for r in self.revisions.values()]

    def create_revision(self, body: dict[str, Any]) -> None:
        self.revisions.setdefault(body["metadata"]["name"], copy.deepcopy(body))

    def delete_revision(self, namespace: str, name: str) -> None:
        self.revisions.pop(name, None)

    def post_event(self, pipeline: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def mark_ready(self, kind: str = "InferenceService") -> None:
        """Report every child of ``kind`` Ready, as KServe would once its pods serve."""
        for (child_kind, _), obj in self.children.items():
            if child_kind == kind:
                obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}


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
