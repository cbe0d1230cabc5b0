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
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from pipeline_operator.api.v1alpha1 import API_VERSION, GROUP, PLURAL, SINGULAR, VERSION
from pipeline_operator.cli.errors import CliError
from pipeline_operator.k8s.client import Kube, RefusedError

FIELD_MANAGER = "kubectl-pipeline"
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
        self.kube = Kube(api, FIELD_MANAGER)
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
        except RefusedError as err:  # a patch the apiserver or an admission policy refused
            raise CliError(f"{what}: {err.message}") from None
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
                return dict(
                    self.kube.custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, name
                    )
                )
            except ApiException as err:
                if err.status == 404:
                    raise self._not_found(err, namespace, name) from None
                raise

    def list_pipelines(self, namespace: str | None) -> list[dict[str, Any]]:
        """Pipelines of ``namespace``, or of every namespace when None."""
        with self._errors(f"cannot list {PLURAL}"):
            try:
                return self.kube.list_pipelines(namespace)
            except ApiException as err:
                if err.status == 404:
                    raise self._not_found(err, namespace or "", "") from None
                raise

    def patch_pipeline(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        with self._errors(f"cannot patch {SINGULAR} {name!r}"):
            try:
                return self.kube.patch_pipeline(namespace, name, patch)
            except ApiException as err:
                if err.status == 404:
                    raise self._not_found(err, namespace, name) from None
                raise

    def pipeline_names(self, namespace: str) -> list[str]:
        """Names of the pipelines of ``namespace`` (for completion: a short timeout)."""
        with self._errors(f"cannot list {PLURAL}"):
            listed = self.kube.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _request_timeout=COMPLETION_TIMEOUT
            )
        return sorted(str(o["metadata"]["name"]) for o in listed.get("items", []))

    def namespace_names(self) -> list[str]:
        """Names of the cluster's namespaces (for completion: a short timeout)."""
        with self._errors("cannot list namespaces"):
            listed = self.kube.core.list_namespace(_request_timeout=COMPLETION_TIMEOUT)
        return sorted(str(n.metadata.name) for n in listed.items)

    def list_revisions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        with self._errors(f"cannot list the revisions of {SINGULAR} {name!r}"):
            return self.kube.list_revisions(namespace, name)

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
