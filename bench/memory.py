"""Where the operator's memory goes, without a cluster (``make bench-memory``).

Builds N synthetic pipelines' worth of the objects the operator watches, as it stores them:
each pipeline (as ``kubectl apply`` leaves it) is reconciled by the
real :class:`~pipeline_operator.controller.reconcile.Reconciler` against a simulated
apiserver (server-side apply's managedFields, resource versions) and KServe (its finalizer,
its status of each InferenceService and InferenceGraph, a pod per stage, the router
Deployment and its pod), reading its view from a real
:class:`~pipeline_operator.k8s.cache.Store` fed with what a watch would deliver (each object
decoded from JSON on its own), until it is Healthy. Older revision snapshots, up to the
history limit, are built by the real snapshot code with other images.

Then, with tracemalloc, the objects are put in a fresh store kind by kind as a listing would,
and the heap each term retains is measured: the store per kind, the operator's own-write
records (every pipeline with the writes of one reconcile in flight, the worst case; none
once the watch caught up), and the per-pipeline state term by term (the loop's last view,
the metrics series, the loop's task and wake-up event).
Prints bytes per object, per pipeline, and totals at 2,550 and 10,000 pipelines.

tracemalloc counts the Python heap the objects hold; the process's RSS adds the interpreter
and its imports (the baseline below), allocator slack, and transients (a listing's pages).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND, InferencePipelineSpec
from pipeline_operator.api.v1alpha1 import InferencePipelineStatus as Status
from pipeline_operator.controller.loop import Loop, Loops
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.core.naming import revision_of
from pipeline_operator.core.observe import snapshots
from pipeline_operator.core.observe.pods import COMPONENT_LABEL, GRAPH_LABEL, SERVICE_LABEL
from pipeline_operator.core.planner import Owner
from pipeline_operator.k8s import cache
from pipeline_operator.k8s.cache import (
    GRAPHS,
    PIPELINES,
    PODS,
    ROUTERS,
    SERVICES,
    SNAPSHOTS,
    Kind,
    OwnWrites,
    Store,
)
from pipeline_operator.settings import OperatorSettings
from pipeline_operator.telemetry import metrics
from tests.unit.fake_kube import apply_merge_patch

NAMESPACE = "bench"
POOL = "pipelines.inference.dev/pool"
KSERVE_MANAGER = "manager"
STAMP = "2026-01-01T00:00:00Z"
SCALES = (2550, 10000)
KINDS: tuple[Kind, ...] = (PIPELINES, SERVICES, GRAPHS, SNAPSHOTS, PODS, ROUTERS)


# -- what the user applies -----------------------------------------------------------------


def manifest(name: str, stages: int, image: int = 1) -> dict[str, Any]:
    """The benchmark's pipeline (bench/operator_bench.py), with ``stages`` stages: tokenizer
    (CPU), classifier (one GPU), post-processing (CPU), then more post-processing stages."""
    fake = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
    taint = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}
    gpu = {
        "name": "gpu",
        "nodeSelector": {POOL: "gpu-h100", "type": "kwok"},
        "tolerations": [{**taint, "effect": "NoSchedule"}, fake],
    }
    cpu = {"name": "cpu", "nodeSelector": {POOL: "cpu", "type": "kwok"}, "tolerations": [fake]}
    model = {"modelFormat": {"name": "huggingface"}, "storageUri": f"pvc://models/{name}"}
    shapes: list[dict[str, Any]] = [
        {"name": "tokenize", "predictor": {"container": {"image": f"tok:{image}"}}},
        {"name": "classify", "predictor": {"model": model}, "resources": {"gpus": 1}},
        {"name": "label", "predictor": {"container": {"image": f"post:{image}"}}},
    ]
    out = []
    for i in range(stages):
        stage = copy.deepcopy(shapes[min(i, 2)])
        if i > 2:
            stage["name"] = f"post{i - 1}"
        stage["nodePool"] = "gpu" if "resources" in stage else "cpu"
        out.append(stage)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"nodePools": [gpu, cpu], "stages": out},
    }


# -- a simulated apiserver and KServe --------------------------------------------------------


def fieldset(value: Any, keyed: bool = True) -> dict[str, Any]:
    """The fieldsV1 set that owns every field of ``value``. Lists of named maps are keyed by
    name (or uid) as in KServe's CRDs and the built-in kinds (``keyed``), or atomic, as every
    list of the pipeline CRD is (it declares no list type)."""
    if isinstance(value, dict):
        return {f"f:{k}": fieldset(v, keyed) for k, v in value.items()}
    if keyed and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for key in ("name", "uid"):
            if all(key in v for v in value):
                out: dict[str, Any] = {}
                for item in value:
                    name = json.dumps({key: item[key]}, separators=(",", ":"))
                    out[f"k:{name}"] = {".": {}, **fieldset(item)}
                return out
    return {}  # a scalar, or an atomic list


def entry(
    manager: str, operation: str, api: str, fields: dict[str, Any], sub: str = ""
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api,
        "time": STAMP,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if sub:
        out["subresource"] = sub
    return out


def owned_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        f"f:{k}": fieldset(meta[k])
        for k in ("labels", "annotations", "ownerReferences")
        if k in meta
    }


def isvc_status(name: str, generation: int) -> dict[str, Any]:
    """KServe's status of a Ready InferenceService (Standard deployment mode)."""
    cond = [
        {"lastTransitionTime": STAMP, "status": "True", "type": t}
        for t in ("IngressReady", "LatestDeploymentReady", "PredictorReady", "Ready")
    ]
    cond[2]["severity"] = "Info"
    cond.append({"lastTransitionTime": STAMP, "status": "False", "type": "Stopped"})
    url = f"http://{name}-{NAMESPACE}.example.com"
    return {
        "address": {"url": f"http://{name}-predictor.{NAMESPACE}.svc.cluster.local"},
        "components": {"predictor": {"url": f"http://{name}-predictor-{NAMESPACE}.example.com"}},
        "conditions": cond,
        "deploymentMode": "RawDeployment",
        "modelStatus": {
            "copies": {"failedCopies": 0, "totalCopies": 1},
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            "transitionStatus": "UpToDate",
        },
        "observedGeneration": generation,
        "url": url,
    }


def pod(name: str, labels: dict[str, str], image: str) -> dict[str, Any]:
    """A Running, Ready pod as the kubelet reports it."""
    conditions = [
        {"lastProbeTime": None, "lastTransitionTime": STAMP, "status": "True", "type": t}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    ] + [
        {
            "lastProbeTime": None,
            "lastTransitionTime": STAMP,
            "status": "True",
            "type": "PodScheduled",
        }
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-5d9c7b8f4-x2k9q",
            "generateName": f"{name}-5d9c7b8f4-",
            "namespace": NAMESPACE,
            "uid": f"pod-{name}",
            "resourceVersion": "1",
            "creationTimestamp": STAMP,
            "labels": {**labels, "pod-template-hash": "5d9c7b8f4"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{name}-5d9c7b8f4",
                    "uid": f"rs-{name}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "kserve-container",
                    "image": image,
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "terminationMessagePath": "/dev/termination-log",
                }
            ],
            "nodeName": "kwok-node-0",
            "restartPolicy": "Always",
            "serviceAccountName": "default",
        },
        "status": {
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": "kserve-container",
                    "image": image,
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": STAMP}},
                }
            ],
            "hostIP": "10.0.0.1",
            "phase": "Running",
            "podIP": "10.244.0.7",
            "qosClass": "Guaranteed",
            "startTime": STAMP,
        },
    }


class Apiserver:
    """What the reconciler writes to, as the apiserver and KServe answer (no I/O)."""

    def __init__(self, manager: str) -> None:
        self.manager = manager
        self.version = 100
        self.pipeline: dict[str, Any] = {}
        self.children: dict[tuple[str, str], dict[str, Any]] = {}
        self.revisions: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.routers: dict[str, dict[str, Any]] = {}

    def bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        return obj

    def applied(self, body: dict[str, Any]) -> None:
        """The user's ``kubectl apply`` (client-side: last-applied-configuration)."""
        body = copy.deepcopy(body)
        last = json.dumps(body, separators=(",", ":"))
        meta = body["metadata"]
        meta.update(
            uid=f"uid-{meta['name']}",
            generation=1,
            creationTimestamp=STAMP,
            annotations={"kubectl.kubernetes.io/last-applied-configuration": last + "\n"},
        )
        meta["managedFields"] = [
            entry(
                "kubectl-client-side-apply",
                "Update",
                API_VERSION,
                {
                    "f:metadata": {
                        "f:annotations": {
                            ".": {},
                            "f:kubectl.kubernetes.io/last-applied-configuration": {},
                        }
                    },
                    "f:spec": fieldset(body["spec"], keyed=False),
                },
            )
        ]
        self.pipeline = self.bump(body)

    # -- the Kube client's methods the reconciler calls
    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.pipeline)

    def patch_pipeline_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        status = apply_merge_patch(self.pipeline.get("status") or {}, patch)
        self.pipeline["status"] = status
        managed = [
            e for e in self.pipeline["metadata"]["managedFields"] if not e.get("subresource")
        ]
        managed.append(
            entry(
                self.manager,
                "Update",
                API_VERSION,
                {"f:status": fieldset(status, keyed=False)},
                "status",
            )
        )
        self.pipeline["metadata"]["managedFields"] = managed
        return copy.deepcopy(self.bump(self.pipeline))

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        key = (obj["kind"], obj["metadata"]["name"])
        live = copy.deepcopy(obj)
        meta = live["metadata"]
        old = self.children.get(key)
        meta.update(
            uid=old["metadata"]["uid"] if old else f"uid-{key[0]}-{key[1]}",
            generation=(old["metadata"]["generation"] + 1) if old else 1,
            creationTimestamp=STAMP,
        )
        api = obj["apiVersion"]
        fields = {"f:metadata": owned_metadata(obj), "f:spec": fieldset(obj["spec"])}
        managed = [entry(self.manager, "Apply", api, fields)]
        if obj["kind"] == "InferenceService":
            meta["finalizers"] = ["inferenceservice.finalizers"]
            managed.append(
                entry(
                    KSERVE_MANAGER,
                    "Update",
                    api,
                    {
                        "f:metadata": {
                            "f:finalizers": {".": {}, 'v:"inferenceservice.finalizers"': {}}
                        }
                    },
                )
            )
        if old and "status" in old:
            live["status"] = old["status"]
            managed += [e for e in old["metadata"]["managedFields"] if e.get("subresource")]
        meta["managedFields"] = managed
        self.children[key] = self.bump(live)
        return copy.deepcopy(live)

    def remove_fields(self, obj: dict[str, Any], pointers: Any) -> dict[str, Any]:
        raise AssertionError("nothing edits the children here")

    def annotate(self, obj: dict[str, Any], key: str, value: str | None) -> dict[str, Any]:
        raise AssertionError("nothing retires a child here")

    def delete(self, obj: dict[str, Any]) -> None:
        self.children.pop((obj["kind"], obj["metadata"]["name"]), None)

    def create_revision(self, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        if name in self.revisions:
            return None
        self.revisions[name] = self.stored_revision(body)
        return copy.deepcopy(self.revisions[name])

    def stored_revision(self, body: dict[str, Any]) -> dict[str, Any]:
        live = copy.deepcopy(body)
        meta = live["metadata"]
        meta.update(uid=f"uid-cr-{meta['name']}", creationTimestamp=STAMP)
        fields = {"f:data": {}, "f:metadata": owned_metadata(body), "f:revision": {}}
        meta["managedFields"] = [entry(self.manager, "Update", "apps/v1", fields)]
        return self.bump(live)

    def delete_revision(self, namespace: str, name: str) -> None:
        self.revisions.pop(name, None)

    def post_event(self, pipeline: dict[str, Any], type_: str, reason: str, message: str) -> None:
        pass

    # -- KServe and the kubelet
    def serve(self) -> None:
        """KServe brings every child Ready: status, a pod per stage, the graph's router."""
        for (kind, name), obj in self.children.items():
            generation = obj["metadata"]["generation"]
            labels = obj["metadata"].get("labels") or {}
            if kind == "InferenceService":
                obj["status"] = isvc_status(name, generation)
                predictor = obj["spec"]["predictor"]
                image = (predictor.get("containers") or [{}])[0].get("image", "kserve/huggingface")
                self.pods[name] = pod(
                    f"{name}-predictor",
                    {
                        **predictor.get("labels", {}),
                        **labels,
                        "app": f"isvc.{name}-predictor",
                        SERVICE_LABEL: name,
                        COMPONENT_LABEL: "predictor",
                    },
                    image,
                )
            else:
                obj["status"] = {
                    "conditions": [
                        {"lastTransitionTime": STAMP, "status": "True", "type": "Ready"}
                    ],
                    "deploymentMode": "RawDeployment",
                    "observedGeneration": generation,
                    "url": f"http://{name}.{NAMESPACE}.svc.cluster.local",
                }
                self.routers[name] = self.router(name, obj, labels)
                self.pods[name] = pod(name, {**labels, "app": name, GRAPH_LABEL: name}, "router")
            status_fields = {"f:status": fieldset(obj["status"])}
            managed = [e for e in obj["metadata"]["managedFields"] if not e.get("subresource")]
            api = obj["apiVersion"]
            managed.append(entry(KSERVE_MANAGER, "Update", api, status_fields, "status"))
            obj["metadata"]["managedFields"] = managed
            self.bump(obj)

    def router(self, name: str, graph: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
        args = ["--graph-json", json.dumps(graph["spec"], separators=(",", ":"))]
        container = {
            "name": name,
            "image": "kserve/router:v0.14.1",
            "args": args,
            "env": [{"name": "SERVING_NAMESPACE", "value": NAMESPACE}],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "resources": {
                "limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "100m", "memory": "256Mi"},
            },
        }
        template_labels = {**labels, "app": name, GRAPH_LABEL: name}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": f"deploy-{name}",
                "resourceVersion": "1",
                "generation": 1,
                "creationTimestamp": STAMP,
                "labels": template_labels,
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [
                    {
                        "apiVersion": "serving.kserve.io/v1alpha1",
                        "kind": "InferenceGraph",
                        "name": name,
                        "uid": graph["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "managedFields": [
                    entry(
                        KSERVE_MANAGER,
                        "Update",
                        "apps/v1",
                        {
                            "f:metadata": owned_metadata({"metadata": {"labels": template_labels}}),
                            "f:spec": fieldset(
                                {"replicas": 1, "template": {"spec": {"containers": [container]}}}
                            ),
                        },
                    )
                ],
            },
            "spec": {
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": name}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
                "template": {
                    "metadata": {"labels": template_labels},
                    "spec": {"containers": [container], "restartPolicy": "Always"},
                },
            },
            "status": {
                "availableReplicas": 1,
                "observedGeneration": 1,
                "readyReplicas": 1,
                "replicas": 1,
                "updatedReplicas": 1,
                "conditions": [
                    {
                        "type": t,
                        "status": "True",
                        "lastTransitionTime": STAMP,
                        "lastUpdateTime": STAMP,
                        "reason": r,
                        "message": m,
                    }
                    for t, r, m in (
                        (
                            "Available",
                            "MinimumReplicasAvailable",
                            "Deployment has minimum availability.",
                        ),
                        (
                            "Progressing",
                            "NewReplicaSetAvailable",
                            f'ReplicaSet "{name}-5d9c7b8f4" has successfully progressed.',
                        ),
                    )
                ],
            },
        }

    def watched(self) -> Iterator[tuple[Kind, dict[str, Any]]]:
        """Everything the operator's watches list, by kind."""
        yield PIPELINES, self.pipeline
        for (kind, _), obj in self.children.items():
            yield (SERVICES if kind == "InferenceService" else GRAPHS), obj
        for obj in self.revisions.values():
            yield SNAPSHOTS, obj
        for obj in self.pods.values():
            yield PODS, obj
        for obj in self.routers.values():
            yield ROUTERS, obj


# -- one pipeline, converged -------------------------------------------------------------------


def decoded(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as a watch delivers it: decoded from JSON on its own."""
    return dict(json.loads(json.dumps(obj)))


@dataclass
class Converged:
    """One pipeline's watched objects as JSON (compressed), and the last writes' responses."""

    objects: dict[str, list[bytes]] = field(default_factory=dict)
    writes: list[bytes] = field(default_factory=list)
    traffic: dict[str, int] = field(default_factory=dict)
    step: int | None = None
    phase: str | None = None


class Recording(Apiserver):
    """An apiserver that keeps the responses of the writes of the last reconcile."""

    def __init__(self, manager: str) -> None:
        super().__init__(manager)
        self.responses: list[dict[str, Any]] = []

    def patch_pipeline_status(self, *args: Any) -> dict[str, Any]:
        out = super().patch_pipeline_status(*args)
        self.responses.append(out)
        return out

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = super().apply(obj)
        self.responses.append(out)
        return out

    def create_revision(self, body: dict[str, Any]) -> dict[str, Any] | None:
        out = super().create_revision(body)
        if out is not None:
            self.responses.append(out)
        return out


def converge(name: str, stages: int, history: int, settings: OperatorSettings) -> Converged:
    """Reconcile pipeline ``name`` until it is Healthy, with ``history`` snapshots in all."""
    api = Recording(settings.field_manager)
    api.applied(manifest(name, stages))
    reconciler = Reconciler(api, settings)  # type: ignore[arg-type]
    writes = reconciler.writes
    writes.track(NAMESPACE, name)
    writes_of_a_reconcile: list[dict[str, Any]] = []
    phase = None
    for _ in range(8):
        store = Store()
        for kind, obj in api.watched():
            store.put(kind, decoded(obj))
        api.responses = []
        read = functools.partial(cache.world, store, writes, NAMESPACE, name)
        asyncio.run(reconciler.reconcile(NAMESPACE, name, read))
        if len(api.responses) > len(writes_of_a_reconcile):
            writes_of_a_reconcile = api.responses
        api.serve()
        phase = api.pipeline.get("status", {}).get("phase")
        if phase == "Healthy" and not api.responses:
            break
    else:
        raise RuntimeError(f"{name} did not converge: phase {phase}")
    # Older revisions' snapshots, as the real code builds them for other images.
    owner = Owner(name, NAMESPACE, api.pipeline["metadata"]["uid"])
    current = max(s["revision"] for s in api.revisions.values())
    for number in range(current + 1, current + history):
        spec = InferencePipelineSpec.model_validate(manifest(name, stages, image=number)["spec"])
        body = snapshots.build(owner, revision_of(spec), spec, number)
        api.revisions[body["metadata"]["name"]] = api.stored_revision(body)
    out = Converged()
    for kind, obj in api.watched():
        out.objects.setdefault(kind.name, []).append(zlib.compress(json.dumps(obj).encode()))
    out.writes = [zlib.compress(json.dumps(r).encode()) for r in writes_of_a_reconcile]
    status = Status.model_validate(api.pipeline["status"])
    out.traffic = {t.revision: t.weight for t in status.traffic}
    out.step, out.phase = status.current_step_index, str(status.phase)
    metrics.forget_pipeline(NAMESPACE, name)
    return out


# -- measuring ---------------------------------------------------------------------------------


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def load(blob: bytes) -> dict[str, Any]:
    return dict(json.loads(zlib.decompress(blob)))


@dataclass
class Term:
    name: str
    objects: int
    bytes: int


def measure(pipelines: list[tuple[str, Converged]], settings: OperatorSettings) -> list[Term]:
    """The heap each term retains, measured in the order an operator fills them."""
    terms: list[Term] = []
    store = Store()
    tracemalloc.start()
    for kind in KINDS:
        before, count = traced(), 0
        for _, one in pipelines:
            for blob in one.objects.get(kind.name, []):
                store.put(kind, load(blob))
                count += 1
        terms.append(Term(f"store: {kind.name}", count, traced() - before))

    writes = OwnWrites()
    before, count = traced(), 0
    for name, one in pipelines:
        writes.track(NAMESPACE, name)
        for blob in one.writes:
            writes.record(NAMESPACE, name, load(blob))
            count += 1
    terms.append(Term("own writes in flight (worst case)", count, traced() - before))
    for name, _ in pipelines:  # the watch caught up: only the tracking itself is left
        cache.view(store, writes, NAMESPACE, name)

    terms += asyncio.run(per_pipeline_state(pipelines, store, writes))
    tracemalloc.stop()
    return terms


async def per_pipeline_state(
    pipelines: list[tuple[str, Converged]], store: Store, writes: OwnWrites
) -> list[Term]:
    """What the operator holds per pipeline besides the store, term by term: the loop's last
    view, the metrics series, and the loop's task waiting in its sleep with its wake-up
    event."""
    await asyncio.sleep(0)
    count = len(pipelines)
    held: list[Any] = []
    terms = []

    before = traced()
    for name, _ in pipelines:
        held.append(
            cache.rewritten(cache.view(store, writes, NAMESPACE, name), writes, NAMESPACE, name)
        )
    terms.append(Term("per pipeline: the loop's last view", count, traced() - before))

    before = traced()
    for name, one in pipelines:
        metrics.export_pipeline(NAMESPACE, name, one.step, one.traffic, one.phase)
    terms.append(Term("per pipeline: metrics series", count, traced() - before))

    async def sleeping(namespace: str, name: str, control: Loop) -> None:
        await control.sleep(3600.0)  # where a reconcile loop waits between reconciles

    before = traced()
    loops = Loops(sleeping, lambda *_: None)
    loops.start((NAMESPACE, name) for name, _ in pipelines)
    await asyncio.sleep(0)  # every task waits in its sleep
    await asyncio.sleep(0)
    terms.append(Term("per pipeline: its loop's task and wake-up", count, traced() - before))
    await loops.stop(0.0)
    return terms


def baseline_rss_mib() -> float:
    """RSS of a process that imported kopf and the operator package, and nothing else."""
    code = (
        "import kopf, pipeline_operator.controller.handlers, pipeline_operator.__main__\n"
        "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


# -- the table ---------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def table(terms: list[Term], pipelines: int, stages: int, history: int, base: float) -> str:
    rows = [("term", "objects", "bytes/object", "bytes/pipeline")]
    rows += [
        (
            t.name,
            f"{t.objects:,}",
            f"{t.bytes / max(t.objects, 1):,.0f}",
            f"{t.bytes / pipelines:,.0f}",
        )
        for t in terms
    ]
    steady = sum(t.bytes for t in terms if not t.name.startswith("own writes"))
    worst = sum(t.bytes for t in terms)
    per, per_worst = steady / pipelines, worst / pipelines
    rows.append(("total (watch caught up)", "", "", f"{per:,.0f}"))
    rows.append(("total (all writes in flight)", "", "", f"{per_worst:,.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"operator heap by term: {pipelines:,} pipelines of {stages} stages, "
        f"{history} snapshots each (tracemalloc)"
    ]
    for i, row in enumerate(rows):
        cells = [
            f"{row[0]:<{widths[0]}}",
            *(f"{c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  " + "  ".join(cells))
        if i == 0 or i == len(terms):
            lines.append("  " + "  ".join("-" * w for w in widths))
    lines.append(f"  per 1,000 pipelines: {mib(per * 1000)} ({mib(per_worst * 1000)} worst case)")
    lines.append(f"  process baseline (import kopf + the operator, RSS): {base:.1f} MiB")
    for scale in SCALES:
        lines.append(
            f"  at {scale:,} pipelines: heap {mib(per * scale)} ({mib(per_worst * scale)} worst "
            f"case); with the baseline {mib(per * scale + base * 2**20)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=500, help="pipelines built (500)")
    parser.add_argument("--stages", type=int, default=3, help="stages per pipeline (3)")
    parser.add_argument(
        "--snapshots",
        type=int,
        default=None,
        help="revision snapshots per pipeline (default: the revision history limit, 10)",
    )
    parser.add_argument("--json", help="also write the terms here as JSON")
    args = parser.parse_args(argv)
    settings = OperatorSettings()
    history = args.snapshots or settings.revision_history_limit
    started = time.monotonic()
    converge("warm-up", args.stages, history, settings)  # caches filled before measuring
    built = []
    for i in range(args.pipelines):
        name = f"large-{i:04d}"
        built.append((name, converge(name, args.stages, history, settings)))
    print(
        f"built {args.pipelines:,} pipelines in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    terms = measure(built, settings)
    base = baseline_rss_mib()
    print(table(terms, args.pipelines, args.stages, history, base))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  (this tool's own peak RSS: {peak:.0f} MiB)", file=sys.stderr)
    if args.json:
        figures = {
            "pipelines": args.pipelines,
            "stages": args.stages,
            "snapshots": history,
            "baseline_rss_mib": base,
            "terms": [t.__dict__ for t in terms],
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
