"""Playing KServe's part on the local cluster, where its controllers do not run.

:class:`KServeSimulator` marks the InferenceServices and InferenceGraphs of a namespace Ready
(as KServe's controllers would once the pods serve), except those it is told to hold back,
and can stand up the Deployment KServe would create for a predictor so that the real
scheduler places its pods on the kwok node pools.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from pipeline_operator.rollout.clock import stamp

KSERVE = "serving.kserve.io"
KINDS = {
    "InferenceService": ("v1beta1", "inferenceservices"),
    "InferenceGraph": ("v1alpha1", "inferencegraphs"),
}


def api_client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def ready_status(kind: str, name: str, namespace: str) -> dict[str, Any]:
    now = stamp(datetime.now(UTC))
    host = f"{name}.{namespace}.svc.cluster.local"
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        "url": f"http://{host}",
    }
    if kind == "InferenceService":
        status["address"] = {"url": f"http://{host}"}
    return status


class KServeSimulator:
    """Marks children Ready in the background until stopped."""

    def __init__(self, kubeconfig: str, namespace: str, interval: float = 0.25) -> None:
        self.custom = client.CustomObjectsApi(api_client(kubeconfig))
        self.namespace = namespace
        self.interval = interval
        self.hold: set[str] = set()  # names (or name prefixes) never marked Ready
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kserve-sim", daemon=True)

    def __enter__(self) -> KServeSimulator:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        version, plural = KINDS[kind]
        listed = self.custom.list_namespaced_custom_object(KSERVE, version, self.namespace, plural)
        return list(listed.get("items", []))

    def _held(self, name: str) -> bool:
        return any(name.startswith(prefix) for prefix in self.hold)

    def _run(self) -> None:
        while not self._stop.is_set():
            for kind in KINDS:
                # The namespace going away, an object deleted meanwhile: next round.
                with contextlib.suppress(ApiException):
                    self._mark(kind, self.objects(kind))
            self._stop.wait(self.interval)

    def _mark(self, kind: str, objects: Iterable[dict[str, Any]]) -> None:
        version, plural = KINDS[kind]
        for obj in objects:
            name = obj["metadata"]["name"]
            conditions = (obj.get("status") or {}).get("conditions") or []
            if self._held(name) or any(c.get("type") == "Ready" for c in conditions):
                continue
            self.custom.patch_namespaced_custom_object_status(
                KSERVE,
                version,
                self.namespace,
                plural,
                name,
                {"status": ready_status(kind, name, self.namespace)},
            )


def predictor_deployment(isvc: dict[str, Any]) -> dict[str, Any]:
    """The Deployment KServe's raw mode would create for an InferenceService's predictor."""
    predictor = isvc["spec"]["predictor"]
    name = f"{isvc['metadata']['name']}-predictor"
    container = dict(predictor.get("model") or predictor["containers"][0])
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "kserve-container",
                "image": container.get("image", "kserve/huggingfaceserver:v0.17.0"),
                "resources": container.get("resources", {}),
            }
        ],
    }
    for key in ("nodeSelector", "tolerations", "affinity"):
        if key in predictor:
            pod_spec[key] = predictor[key]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": isvc["metadata"]["namespace"]},
        "spec": {
            "replicas": predictor.get("minReplicas", 1) or 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }
