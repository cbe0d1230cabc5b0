"""One InferenceService (serving.kserve.io/v1beta1) per stage and revision."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline_operator.api.v1alpha1 import (
    GPUS_ENV,
    InferencePipelineSpec,
    Resources,
    Scaling,
    Stage,
)
from pipeline_operator.core import naming
from pipeline_operator.core.planner.containers import (
    build_container,
    build_identity_env,
    build_model,
)
from pipeline_operator.core.planner.metadata import build_metadata
from pipeline_operator.core.planner.options import Owner, PlanError, PlanOptions
from pipeline_operator.core.planner.placement import (
    build_predictor_placement,
    build_resources,
    build_stage_resources,
    build_transformer_placement,
)
from pipeline_operator.core.revisions import replicas

ISVC_API_VERSION = "serving.kserve.io/v1beta1"
ISVC_KIND = "InferenceService"
# Every stage serves its metrics on KServe's HTTP port: the pod annotations a Prometheus with
# the common `kubernetes_sd` pod relabelling (prometheus.io/*) discovers them by.
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "8080",
    "prometheus.io/path": "/metrics",
}


def capacity(spec: InferencePipelineSpec) -> dict[str, Scaling]:
    """Each stage's scaling in ``spec``: what every revision's stage of that name runs (capacity
    is no part of a revision; it applies in place)."""
    return {stage.name: stage.scaling for stage in spec.stages}


def build_replicas(scaling: Scaling, scale: int) -> dict[str, int]:
    """minReplicas and maxReplicas of a component, ``scale`` percent of the stage's (a canary
    follows its share of the traffic; see :func:`pipeline_operator.core.revisions.replicas`)."""
    low = replicas(scaling.min_replicas, scale)
    return {
        "minReplicas": low,
        "maxReplicas": max(low, replicas(scaling.max_replicas, scale)),
    }


def build_scaling(scaling: Scaling, scale: int) -> dict[str, Any]:
    """ComponentExtensionSpec autoscaling fields (scaleMetric enum: cpu/memory/concurrency/rps)."""
    return {
        **build_replicas(scaling, scale),
        "scaleMetric": scaling.metric,
        "scaleTarget": scaling.target,
    }


def build_batcher(stage: Stage) -> dict[str, Any]:
    """KServe's batcher sidecar settings; maxLatency is in milliseconds."""
    if stage.batching is None:
        return {}
    return {
        "batcher": {
            "maxBatchSize": stage.batching.max_batch_size,
            "maxLatency": stage.batching.max_latency_ms,
        }
    }


def build_predictor_spec(
    spec: InferencePipelineSpec,
    stage: Stage,
    pod_labels: dict[str, Any],
    identity: list[dict[str, str]],
    name: str,
    scaling: dict[str, Any],
) -> dict[str, Any]:
    """spec.predictor: scaling, batcher, placement, then the model or the custom container;
    a predictor given GPUs is told how many (it must then serve on them)."""
    resources = build_stage_resources(spec, stage)
    if stage.resources.gpus:
        identity = [*identity, {"name": GPUS_ENV, "value": str(stage.resources.gpus)}]
    out: dict[str, Any] = {**scaling, **build_batcher(stage)}
    out["labels"] = dict(pod_labels)
    out["annotations"] = dict(SCRAPE_ANNOTATIONS)
    out.update(build_predictor_placement(spec, stage))
    if stage.predictor.model is not None:
        out["model"] = build_model(stage.predictor.model, resources, identity)
    elif stage.predictor.container is not None:
        container = build_container(stage.predictor.container, resources, identity, name)
        out["containers"] = [container]
    else:
        raise PlanError(f"stage {stage.name}: predictor has neither model nor container")
    return out


def build_transformer_spec(
    spec: InferencePipelineSpec,
    stage: Stage,
    pod_labels: dict[str, Any],
    identity: list[dict[str, str]],
    replica_bounds: dict[str, int],
) -> dict[str, Any] | None:
    """spec.transformer: CPU only, never on a GPU pool, scaled like its predictor."""
    transformer = stage.transformer
    if transformer is None:
        return None
    resources = build_resources(Resources(gpus=0, cpu=transformer.cpu, memory=transformer.memory))
    out: dict[str, Any] = {
        **replica_bounds,
        "labels": dict(pod_labels),
        "annotations": dict(SCRAPE_ANNOTATIONS),
    }
    out.update(build_transformer_placement(spec, stage))
    out["containers"] = [build_container(transformer, resources, identity)]
    return out


def build_inference_service(
    owner: Owner,
    spec: InferencePipelineSpec,
    stage: Stage,
    revision: str,
    options: PlanOptions,
    scale: int = 100,
    scaling: Scaling | None = None,
) -> dict[str, Any]:
    """The InferenceService of ``stage`` in ``revision``, running ``scale`` percent of
    ``scaling``'s replicas (the stage's own by default)."""
    scaling = scaling or stage.scaling
    labels = naming.labels(owner.name, revision, stage.name)
    identity = build_identity_env(owner.name, stage.name, revision)
    name = naming.service_name(owner.name, stage.name, revision)
    autoscaling = build_scaling(scaling, scale)
    predictor = build_predictor_spec(spec, stage, labels, identity, name, autoscaling)
    body: dict[str, Any] = {"predictor": predictor}
    bounds = build_replicas(scaling, scale)
    transformer = build_transformer_spec(spec, stage, labels, identity, bounds)
    if transformer is not None:
        body["transformer"] = transformer
    metadata = build_metadata(owner, name, labels, options)
    # The revision's spec lives on with its children should its snapshot be deleted.
    metadata["annotations"][naming.SERVING_SPEC_ANNOTATION] = naming.serving_spec(spec)
    return {"apiVersion": ISVC_API_VERSION, "kind": ISVC_KIND, "metadata": metadata, "spec": body}


def build_inference_services(
    owner: Owner,
    spec: InferencePipelineSpec,
    revision: str,
    options: PlanOptions,
    scale: int,
    capacity: Mapping[str, Scaling],
) -> list[dict[str, Any]]:
    """Every stage's InferenceService of one revision, in stage order; a stage named in
    ``capacity`` runs that scaling, any other its own."""
    return [
        build_inference_service(owner, spec, s, revision, options, scale, capacity.get(s.name))
        for s in spec.stages
    ]
