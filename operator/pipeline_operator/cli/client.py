"""The plugin's API layer: kubeconfig and context selection, calls, readable errors.

Every call the plugin makes to the cluster goes through :class:`Client`, which turns API
and connection failures into one-line :class:`~pipeline_operator.cli.errors.CliError`s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from pipeline_operator.api.v1alpha1 import API_VERSION, GROUP, PLURAL, SINGULAR, VERSION
from pipeline_operator.cli.errors import CliError
from pipeline_operator.core.naming import LABEL_PIPELINE, fit_name

MERGE_PATCH = "application/merge-patch+json"
DEFAULT_NAMESPACE = "default"
DEFAULT_KUBECONFIG = "~/.kube/config"
COMPLETION_TIMEOUT = 3.0  # seconds a shell completion waits for the cluster


@dataclass(frozen=True)
class Target:
    """The connection flags: kubeconfig file(s), context and namespace (None: the defaults)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


def kubeconfig_path(flag: str | None) -> str:
    """``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config`` (for messages)."""
    return flag or os.environ.get("KUBECONFIG") or os.path.expanduser(DEFAULT_KUBECONFIG)


def context_namespace(
    contexts: list[dict[str, Any]], active: dict[str, Any] | None, wanted: str | None
) -> str:
    """The namespace of context ``wanted`` (else the active one), else ``default``."""
    chosen = next((c for c in contexts if c.get("name") == wanted), None) if wanted else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else DEFAULT_NAMESPACE


def context_names(kubeconfig: str | None) -> list[str]:
    """The kubeconfig's contexts (for completion)."""
    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError, ValueError) as err:
        raise CliError(f"cannot load kubeconfig {kubeconfig_path(kubeconfig)}: {err}") from None
    return [str(c["name"]) for c in contexts]


def not_found(namespace: str, name: str) -> CliError:
    return CliError(f'{SINGULAR} "{name}" not found in namespace "{namespace}"')


def _api_message(err: ApiException) -> tuple[str, bool]:
    """The apiserver's message and whether the body was a Kubernetes Status (JSON)."""
    try:
        body = json.loads(err.body)
    except (TypeError, ValueError):
        return str(err.reason or err.status), False
    return str(body.get("message") or err.reason), True


def _connection_reason(err: Exception) -> str:
    reason = getattr(err, "reason", None) or err
    text = str(reason)
    # urllib3 prefixes the connection object's repr: "<...HTTPSConnection object at 0x..>: ..."
    if text.startswith("<") and ">: " in text:
        text = text.split(">: ", 1)[1]
    marker = "Failed to establish a new connection: "
    return text.split(marker, 1)[1] if marker in text else text


class Client:
    """The calls the plugin makes, on one kubeconfig context."""

    def __init__(self, target: Target) -> None:
        path = kubeconfig_path(target.kubeconfig)
        try:
            api = config.new_client_from_config(
                config_file=target.kubeconfig, context=target.context, persist_config=False
            )
            contexts, active = config.list_kube_config_contexts(config_file=target.kubeconfig)
        except (config.ConfigException, OSError, ValueError) as err:
            raise CliError(f"cannot load kubeconfig {path}: {err}") from None
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.host = str(api.configuration.host)
        self.namespace = target.namespace or context_namespace(contexts, active, target.context)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate API and connection failures into one-line errors."""
        try:
            yield
        except ApiException as err:
            message, _ = _api_message(err)
            if err.status in (401, 403):
                raise CliError(f"{what}: not allowed: {message}") from None
            raise CliError(f"{what}: {message}") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise CliError(
                f"cannot reach the Kubernetes API server at {self.host}: {_connection_reason(err)}"
            ) from None

    def _not_found(self, err: ApiException, namespace: str, name: str) -> CliError:
        _, is_status = _api_message(err)
        if not is_status:
            return CliError(
                f"the server at {self.host} does not serve {API_VERSION} {PLURAL}; "
                "is the InferencePipeline CRD installed?"
            )
        return not_found(namespace, name)

    # -- pipelines ---------------------------------------------------------------------------

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any]:
        with self._errors(f"cannot get {SINGULAR} {name!r}"):
            try:
                pipeline = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name
                )
                return dict(pipeline)
            except ApiException as err:
                if err.status == 404:
                    raise self._not_found(err, namespace, name) from None
                raise

    def list_pipelines(self, namespace: str | None) -> list[dict[str, Any]]:
        """Pipelines of ``namespace``, or of every namespace when None."""
        with self._errors(f"cannot list {PLURAL}"):
            try:
                if namespace is None:
                    listed = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
                else:
                    listed = self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL
                    )
                return list(listed.get("items", []))
            except ApiException as err:
                if err.status == 404:
                    raise self._not_found(err, namespace or "", "") from None
                raise

    def patch_pipeline(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of the pipeline: a command's annotation, ``spec.paused``, undo's spec
        (refused by the apiserver or the command admission policy with its message)."""
        with self._errors(f"cannot patch {SINGULAR} {name!r}"):
            try:
                patched = self.api.call_api(
                    f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
                    "PATCH",
                    header_params={"Content-Type": MERGE_PATCH, "Accept": "application/json"},
                    body=patch,
                    response_type="object",
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                )
                return dict(patched or {})
            except ApiException as err:
                if err.status == 404:
                    raise self._not_found(err, namespace, name) from None
                raise

    def pipeline_names(self, namespace: str) -> list[str]:
        """Names of the pipelines of ``namespace`` (for completion: a short timeout)."""
        with self._errors(f"cannot list {PLURAL}"):
            listed = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _request_timeout=COMPLETION_TIMEOUT
            )
        return sorted(str(o["metadata"]["name"]) for o in listed.get("items", []))

    def namespace_names(self) -> list[str]:
        """Names of the cluster's namespaces (for completion: a short timeout)."""
        with self._errors("cannot list namespaces"):
            listed = self.core.list_namespace(_request_timeout=COMPLETION_TIMEOUT)
        return sorted(str(n.metadata.name) for n in listed.items)

    def list_revisions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The ControllerRevisions holding the spec snapshots of the pipeline's revisions."""
        selector = f"{LABEL_PIPELINE}={fit_name(name, limit=63)}"
        with self._errors(f"cannot list the revisions of {SINGULAR} {name!r}"):
            listed = self.apps.list_namespaced_controller_revision(
                namespace, label_selector=selector
            )
        return [self.api.sanitize_for_serialization(r) for r in listed.items]

    def wait(
        self,
        namespace: str,
        name: str,
        done: Callable[[dict[str, Any]], bool],
        timeout: float,
        interval: float = 0.25,
    ) -> dict[str, Any] | None:
        """Poll the pipeline until ``done(obj)``; the object, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get_pipeline(namespace, name)
            if done(obj):
                return obj
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
