"""The operator's calls to the Kubernetes API (synchronous client, run in threads).

The operator reads what it watches (see ``informers`` and ``cache``); here are its writes,
each returning what the apiserver answered so that the next reconcile reads at least that
version, and the few reads it makes directly (a pipeline after a conflict or a change of
leader).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from pipeline_operator.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from pipeline_operator.core.rollout.clock import stamp
from pipeline_operator.telemetry import metrics

log = logging.getLogger(__name__)

ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")
GRAPH = ("serving.kserve.io", "v1alpha1", "inferencegraphs")
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
ROUTE = ("gateway.networking.k8s.io", "v1", "httproutes")
GATEWAY_API = "/apis/gateway.networking.k8s.io/v1"
MIRRORING = ("traefik.io", "v1alpha1", "traefikservices")
CHILD_KINDS = {
    "InferenceService": ISVC,
    "InferenceGraph": GRAPH,
    "HTTPRoute": ROUTE,
    "TraefikService": MIRRORING,
}
LEASE_TIMEOUT = 5.0  # seconds: a renewal that takes longer is as good as failed
READ_TIMEOUT = 10.0  # seconds: a direct read (a web metric's Secret)
WRITE_TIMEOUT = 30.0  # seconds: the longest any write may take
MIN_WRITE_WINDOW = 1.0  # seconds: with less left on the Lease, a write is not sent


class ConflictError(Exception):
    """A write lost an optimistic-concurrency race (HTTP 409): re-read and try again."""


class NotLeadingError(Exception):
    """This replica does not hold the leader Lease (any more): it must not write."""


class RefusedError(Exception):
    """The apiserver or an admission webhook refused a write (a 4xx other than 409 and 429):
    schema, webhook validation, RBAC, quota. Retrying the same object does not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def load_config(connections: int) -> client.ApiClient:
    """In-cluster config when running in a pod, else the local kubeconfig; up to
    ``connections`` HTTP connections kept open (one per thread that calls the API)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


class Kube:
    """Typed-enough wrappers over the calls the operator makes, counting every call.

    ``write_window`` is asked before every write: the seconds this replica may still write
    (what is left of its leader Lease; None: it runs alone, no limit). Each write's timeout
    is the smaller of that and :data:`WRITE_TIMEOUT`, so the client never waits on a write
    past the Lease's deadline; with less than :data:`MIN_WRITE_WINDOW` left (or none: the
    Lease is lost) the write is not sent and :class:`NotLeadingError` is raised.
    """

    def __init__(
        self,
        api: client.ApiClient,
        field_manager: str,
        write_window: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.field_manager = field_manager
        self.write_window = write_window
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    # -- pipelines ---------------------------------------------------------------------------

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        metrics.API_READS.labels(verb="get", kind=KIND).inc()
        try:
            return dict(
                self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def patch_pipeline_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        """Merge-patch status; with ``resource_version``, a concurrent change fails with 409."""
        return self._merge_pipeline(
            namespace, name, "/status", {"status": patch}, {}, resource_version
        )

    def patch_pipeline_finalizers(
        self, namespace: str, name: str, finalizers: list[str], resource_version: str | None
    ) -> dict[str, Any]:
        """Set the pipeline's finalizers; a concurrent change fails with 409."""
        return self._merge_pipeline(
            namespace, name, "", {}, {"finalizers": finalizers}, resource_version
        )

    def _merge_pipeline(
        self,
        namespace: str,
        name: str,
        subresource: str,
        body: dict[str, Any],
        meta: dict[str, Any],
        resource_version: str | None,
    ) -> dict[str, Any]:
        """A merge patch of a pipeline (``subresource``: "" or "/status"), preconditioned on
        ``resource_version`` when given."""
        timeout = self._writing("patch", f"{KIND}Status" if subresource else KIND)
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}{subresource}"
        meta = {**meta, **({"resourceVersion": resource_version} if resource_version else {})}
        return self._patch(
            path, {**body, **({"metadata": meta} if meta else {})}, MERGE_PATCH, timeout
        )

    def _writing(self, verb: str, kind: str) -> float:
        """Count a write about to be sent and give its timeout; refuse it when this replica
        may not write long enough."""
        window = self.write_window()
        if window is not None and window < MIN_WRITE_WINDOW:
            raise NotLeadingError(
                f"not the leader (or not for {MIN_WRITE_WINDOW:g}s more): {verb} {kind} not sent"
            )
        metrics.API_WRITES.labels(verb=verb, kind=kind).inc()
        return WRITE_TIMEOUT if window is None else min(WRITE_TIMEOUT, window)

    def _patch(
        self,
        path: str,
        body: dict[str, Any] | list[dict[str, Any]],
        content_type: str,
        timeout: float,
        **query: str,
    ) -> dict[str, Any]:
        return self._send("PATCH", path, body, content_type, timeout, query=query)

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | list[dict[str, Any]] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            result = self.api.call_api(
                path,
                method,
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                query_params=list((query or {}).items()),
                body=body,
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as err:
            if err.status == 409:
                raise ConflictError(f"{path}: {_reason(err)}") from None
            if err.status is not None and 400 <= err.status < 500 and err.status != 429:
                raise RefusedError(err.status, _reason(err)) from None
            raise
        return dict(result or {})

    # -- children ----------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of a child under the operator's field manager."""
        timeout = self._writing("apply", obj["kind"])
        path = _child_path(obj)
        return self._patch(
            path, obj, APPLY_PATCH, timeout, fieldManager=self.field_manager, force="true"
        )

    def remove_fields(self, obj: dict[str, Any], pointers: Sequence[str]) -> dict[str, Any]:
        """Remove fields of a child (JSON pointers) with a JSON patch, e.g. ones added by hand."""
        timeout = self._writing("patch", obj["kind"])
        body = [{"op": "remove", "path": pointer} for pointer in pointers]
        return self._patch(
            _child_path(obj), body, JSON_PATCH, timeout, fieldManager=self.field_manager
        )

    def annotate(self, obj: dict[str, Any], key: str, value: str | None) -> dict[str, Any]:
        """Set (or, with None, remove) one annotation of a child with a merge patch."""
        timeout = self._writing("patch", obj["kind"])
        body = {"metadata": {"annotations": {key: value}}}
        return self._patch(_child_path(obj), body, MERGE_PATCH, timeout)

    def delete(self, obj: dict[str, Any]) -> None:
        """Delete a child, that very object: one recreated under its name since (another
        uid) is left alone, as one already gone is."""
        group, version, plural = CHILD_KINDS[obj["kind"]]
        meta = obj["metadata"]
        timeout = self._writing("delete", obj["kind"])
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        if meta.get("uid"):
            options["preconditions"] = {"uid": meta["uid"]}
        try:
            self.custom.delete_namespaced_custom_object(
                group,
                version,
                meta["namespace"],
                plural,
                meta["name"],
                body=options,
                _request_timeout=timeout,
            )
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    # -- revision snapshots ------------------------------------------------------------------

    def create_revision(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a snapshot; None when one of that name exists (it holds the same spec)."""
        timeout = self._writing("create", "ControllerRevision")
        try:
            created = self.apps.create_namespaced_controller_revision(
                body["metadata"]["namespace"],
                body,
                _preload_content=False,
                _request_timeout=timeout,
            )
        except ApiException as err:
            if err.status != 409:
                raise
            return None
        return dict(json.loads(created.data))

    def delete_revision(self, namespace: str, name: str) -> None:
        timeout = self._writing("delete", "ControllerRevision")
        try:
            self.apps.delete_namespaced_controller_revision(
                name, namespace, _request_timeout=timeout
            )
        except ApiException as err:
            if err.status != 404:
                raise

    # -- Secrets (a web metric's header credentials) ---------------------------------------

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, decoded (None: not found); a refusal raises RefusedError. Never
        cached, never logged."""
        metrics.API_READS.labels(verb="get", kind="Secret").inc()
        try:
            secret = self._send(
                "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}", timeout=READ_TIMEOUT
            )
        except RefusedError as err:
            if err.status == 404:
                return None
            raise
        data = secret.get("data") or {}
        return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}

    # -- Gateways (what a pipeline's HTTPRoute attaches to) -------------------------------

    def read_gateway(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Gateway API Gateway (None: not found); a refusal raises RefusedError."""
        return self._read("Gateway", f"{GATEWAY_API}/namespaces/{namespace}/gateways/{name}")

    def read_gateway_class(self, name: str) -> dict[str, Any] | None:
        """A GatewayClass (None: not found); a refusal raises RefusedError."""
        return self._read("GatewayClass", f"{GATEWAY_API}/gatewayclasses/{name}")

    def _read(self, kind: str, path: str) -> dict[str, Any] | None:
        metrics.API_READS.labels(verb="get", kind=kind).inc()
        try:
            return self._send("GET", path, timeout=READ_TIMEOUT)
        except RefusedError as err:
            if err.status == 404:
                return None
            raise

    # -- Jobs (a job metric's measurements) ------------------------------------------------

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Job (None: not found); a refusal raises RefusedError."""
        return self._read("Job", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")

    def create_job(self, body: dict[str, Any]) -> None:
        """Create a Job; one of that name already there is left as it is."""
        timeout = self._writing("create", "Job")
        path = f"/apis/batch/v1/namespaces/{body['metadata']['namespace']}/jobs"
        with contextlib.suppress(ConflictError):  # created by an earlier try of it
            self._send("POST", path, body, timeout=timeout)

    def job_log(self, namespace: str, name: str, lines: int) -> str:
        """The last ``lines`` of the log of the Job's latest pod ("" when it has none)."""
        metrics.API_READS.labels(verb="list", kind="Pod").inc()
        pods = (
            self._send(
                "GET",
                f"/api/v1/namespaces/{namespace}/pods",
                timeout=READ_TIMEOUT,
                query={"labelSelector": f"batch.kubernetes.io/job-name={name}"},
            ).get("items")
            or []
        )
        if not pods:
            return ""
        latest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        metrics.API_READS.labels(verb="get", kind="PodLog").inc()
        try:
            log = self.core.read_namespaced_pod_log(
                latest["metadata"]["name"],
                namespace,
                tail_lines=lines,
                limit_bytes=16384,
                _request_timeout=READ_TIMEOUT,
            )
        except ApiException as err:
            if err.status is not None and 400 <= err.status < 500:
                raise RefusedError(err.status, _reason(err)) from None
            raise
        return str(log)

    # -- the leader Lease (bookkeeping of the election: neither fenced nor counted) ---------

    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._send("GET", _lease_path(namespace, name), timeout=LEASE_TIMEOUT)
        except RefusedError as err:
            if err.status == 404:
                return None
            raise

    def write_lease(self, lease: dict[str, Any], create: bool) -> dict[str, Any]:
        """Create the Lease, or replace it (a concurrent change fails with ConflictError)."""
        meta = lease["metadata"]
        path = _lease_path(meta["namespace"], "" if create else meta["name"])
        return self._send("POST" if create else "PUT", path, lease, timeout=LEASE_TIMEOUT)

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
        timeout = self._writing("create", "Event")
        try:
            self.core.create_namespaced_event(meta["namespace"], body, _request_timeout=timeout)
        except ApiException as err:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], _reason(err))


def _lease_path(namespace: str, name: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}".rstrip("/")


def _child_path(obj: dict[str, Any]) -> str:
    group, version, plural = CHILD_KINDS[obj["kind"]]
    meta = obj["metadata"]
    return f"/apis/{group}/{version}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


def _reason(err: ApiException) -> str:
    try:
        return str(json.loads(err.body).get("message", err.reason))
    except (TypeError, ValueError):
        return str(err.reason)
