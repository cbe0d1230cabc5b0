"""The one module that talks to the Kubernetes API (synchronous client, run in threads)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from pipeline_operator import metrics
from pipeline_operator.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from pipeline_operator.naming import LABEL_PIPELINE, fit_name
from pipeline_operator.rollout.clock import stamp

log = logging.getLogger(__name__)

ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")
GRAPH = ("serving.kserve.io", "v1alpha1", "inferencegraphs")
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
CHILD_KINDS = {"InferenceService": ISVC, "InferenceGraph": GRAPH}
ROUTER_LABEL = "serving.kserve.io/inferencegraph"  # on the router Deployment KServe creates


class ConflictError(Exception):
    """A write lost an optimistic-concurrency race (HTTP 409): re-read and try again."""


class RefusedError(Exception):
    """The apiserver or an admission webhook refused a write (a 4xx other than 409 and 429):
    schema, webhook validation, RBAC, quota. Retrying the same object does not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def load_config() -> client.ApiClient:
    """In-cluster config when running in a pod, else the local kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class Kube:
    """Typed-enough wrappers over the calls the operator makes, counting every write."""

    def __init__(self, api: client.ApiClient, field_manager: str) -> None:
        self.field_manager = field_manager
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    # -- pipelines ---------------------------------------------------------------------------

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_pipelines(self, namespace: str | None) -> list[dict[str, Any]]:
        """Pipelines of ``namespace``, or of every namespace when None."""
        if namespace is None:
            listed = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return list(listed.get("items", []))

    def patch_pipeline_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> None:
        """Merge-patch status; with ``resource_version``, a concurrent change fails with 409."""
        metrics.API_WRITES.labels(verb="patch", kind="InferencePipelineStatus").inc()
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        body: dict[str, Any] = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        self._patch(path, body, MERGE_PATCH)

    def patch_pipeline(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of the pipeline itself (commands and undo from the CLI)."""
        metrics.API_WRITES.labels(verb="patch", kind=KIND).inc()
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        return self._patch(path, patch, MERGE_PATCH)

    def _patch(
        self,
        path: str,
        body: dict[str, Any] | list[dict[str, Any]],
        content_type: str,
        **query: str,
    ) -> dict[str, Any]:
        try:
            result = self.api.call_api(
                path,
                "PATCH",
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                query_params=list(query.items()),
                body=body,
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as err:
            if err.status == 409:
                raise ConflictError(f"{path}: {_reason(err)}") from None
            if err.status is not None and 400 <= err.status < 500 and err.status != 429:
                raise RefusedError(err.status, _reason(err)) from None
            raise
        return dict(result or {})

    # -- children ----------------------------------------------------------------------------

    def list_children(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        """InferenceServices and InferenceGraphs labelled as this pipeline's."""
        selector = f"{LABEL_PIPELINE}={fit_name(pipeline, limit=63)}"
        items: list[dict[str, Any]] = []
        for kind, (group, version, plural) in CHILD_KINDS.items():
            listed = self.custom.list_namespaced_custom_object(
                group, version, namespace, plural, label_selector=selector
            )
            for item in listed.get("items", []):
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", f"{group}/{version}")
                items.append(item)
        return items

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply of a child under the operator's field manager."""
        group, version, plural = CHILD_KINDS[obj["kind"]]
        meta = obj["metadata"]
        metrics.API_WRITES.labels(verb="apply", kind=obj["kind"]).inc()
        path = f"/apis/{group}/{version}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
        self._patch(path, obj, APPLY_PATCH, fieldManager=self.field_manager, force="true")

    def remove_fields(self, obj: dict[str, Any], pointers: Sequence[str]) -> None:
        """Remove fields of a child (JSON pointers) with a JSON patch, e.g. ones added by hand."""
        group, version, plural = CHILD_KINDS[obj["kind"]]
        meta = obj["metadata"]
        metrics.API_WRITES.labels(verb="patch", kind=obj["kind"]).inc()
        path = f"/apis/{group}/{version}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
        body = [{"op": "remove", "path": pointer} for pointer in pointers]
        self._patch(path, body, JSON_PATCH, fieldManager=self.field_manager)

    def annotate(self, obj: dict[str, Any], key: str, value: str | None) -> None:
        """Set (or, with None, remove) one annotation of a child with a merge patch."""
        group, version, plural = CHILD_KINDS[obj["kind"]]
        meta = obj["metadata"]
        metrics.API_WRITES.labels(verb="patch", kind=obj["kind"]).inc()
        path = f"/apis/{group}/{version}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
        self._patch(path, {"metadata": {"annotations": {key: value}}}, MERGE_PATCH)

    def delete(self, obj: dict[str, Any]) -> None:
        group, version, plural = CHILD_KINDS[obj["kind"]]
        meta = obj["metadata"]
        metrics.API_WRITES.labels(verb="delete", kind=obj["kind"]).inc()
        try:
            self.custom.delete_namespaced_custom_object(
                group,
                version,
                meta["namespace"],
                plural,
                meta["name"],
                propagation_policy="Background",
            )
        except ApiException as err:
            if err.status != 404:
                raise

    def list_pods(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        """The pods KServe runs for this pipeline's InferenceServices (they carry its label)."""
        selector = f"{LABEL_PIPELINE}={fit_name(pipeline, limit=63)}"
        listed = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return [self.core.api_client.sanitize_for_serialization(p) for p in listed.items]

    def list_routers(self, namespace: str, graphs: list[str]) -> dict[str, dict[str, Any]]:
        """The router Deployments KServe made for these InferenceGraphs, by graph name."""
        selector = f"{ROUTER_LABEL} in ({','.join(graphs)})"
        listed = self.apps.list_namespaced_deployment(namespace, label_selector=selector)
        out: dict[str, dict[str, Any]] = {}
        for item in listed.items:
            body = self.apps.api_client.sanitize_for_serialization(item)
            out[body["metadata"]["labels"][ROUTER_LABEL]] = body
        return out

    # -- revision snapshots ------------------------------------------------------------------

    def list_revisions(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        """ControllerRevisions holding the spec snapshots of this pipeline's revisions."""
        selector = f"{LABEL_PIPELINE}={fit_name(pipeline, limit=63)}"
        listed = self.apps.list_namespaced_controller_revision(namespace, label_selector=selector)
        return [self.apps.api_client.sanitize_for_serialization(r) for r in listed.items]

    def create_revision(self, body: dict[str, Any]) -> None:
        metrics.API_WRITES.labels(verb="create", kind="ControllerRevision").inc()
        try:
            self.apps.create_namespaced_controller_revision(body["metadata"]["namespace"], body)
        except ApiException as err:
            if err.status != 409:
                raise

    def delete_revision(self, namespace: str, name: str) -> None:
        metrics.API_WRITES.labels(verb="delete", kind="ControllerRevision").inc()
        try:
            self.apps.delete_namespaced_controller_revision(name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise

    # -- events ------------------------------------------------------------------------------

    def post_event(self, pipeline: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the pipeline; failures are logged, never raised."""
        meta = pipeline["metadata"]
        now = stamp(datetime.now(UTC))
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": pipeline["apiVersion"],
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
        }
        metrics.API_WRITES.labels(verb="create", kind="Event").inc()
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException as err:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], _reason(err))


def _reason(err: ApiException) -> str:
    try:
        return str(json.loads(err.body).get("message", err.reason))
    except (TypeError, ValueError):
        return str(err.reason)
