"""Revisions (content hashes of the serving fields, and those fields as an annotation), child
names and labels (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline_operator.api.quantity import canonical, quantity
from pipeline_operator.api.v1alpha1 import GROUP, InferencePipelineSpec, Scaling

LABEL_PIPELINE = f"{GROUP}/pipeline"
LABEL_REVISION = f"{GROUP}/revision"
LABEL_STAGE = f"{GROUP}/stage"
LABEL_ROLE = f"{GROUP}/role"
SERVING_SPEC_ANNOTATION = f"{GROUP}/serving-spec"
MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR_NAME = "inference-pipelines"

# KServe derives Deployment/Service names from an InferenceService's name plus suffixes such
# as "-predictor" and "-transformer"; keeping names at 40 characters leaves room for them
# within the 63-character DNS label limit.
MAX_CHILD_NAME = 40
REVISION_LENGTH = 8


def short_hash(value: str, length: int = REVISION_LENGTH) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:length]


def serving_spec(spec: InferencePipelineSpec) -> str:
    """The serving fields as canonical JSON: what a revision is, and enough to rebuild it."""
    return json.dumps(spec.serving_fields(), sort_keys=True, separators=(",", ":"))


def _by_value(block: BaseModel | None) -> BaseModel | None:
    """``block`` with its quantities (cpu, memory) in one spelling: the default's, where the
    amount is the default's, else the canonical one."""
    if block is None:
        return None
    update: dict[str, str] = {}
    for name in ("cpu", "memory"):
        value, default = getattr(block, name), type(block).model_fields[name].default
        update[name] = default if quantity(value) == quantity(default) else canonical(value)
    return block.model_copy(update=update)


def revision_fields(spec: InferencePipelineSpec) -> dict[str, Any]:
    """What makes a revision: the serving fields less capacity (``stages[].scaling`` applies
    in place to every revision), with quantities by value (``cpu: 1000m`` is ``cpu: 1``)."""
    stages = [
        stage.model_copy(
            update={
                "scaling": Scaling(),
                "resources": _by_value(stage.resources),
                "transformer": _by_value(stage.transformer),
            }
        )
        for stage in spec.stages
    ]
    return spec.model_copy(update={"stages": stages}).serving_fields()


def revision_of(spec: InferencePipelineSpec) -> str:
    """Content hash of what changes how requests are served (not capacity, not rollout
    settings)."""
    return short_hash(json.dumps(revision_fields(spec), sort_keys=True, separators=(",", ":")))


def legacy_revision_of(spec: InferencePipelineSpec) -> str:
    """The hash revisions were named by before capacity left it: over every serving field,
    scaling and quantity spellings included. Revisions named so keep their names."""
    return short_hash(serving_spec(spec))


def is_revision(spec: InferencePipelineSpec, revision: str) -> bool:
    """Whether ``revision`` is the name of ``spec``'s content, under either hash."""
    return revision in (revision_of(spec), legacy_revision_of(spec))


def parse_serving_spec(value: str, revision: str) -> InferencePipelineSpec | None:
    """The spec a :func:`serving_spec` value holds, if it is intact and ``revision``'s."""
    try:
        spec = InferencePipelineSpec.model_validate_json(value)
    except ValidationError:
        return None
    return spec if is_revision(spec, revision) else None


def fit_name(*parts: str, limit: int = MAX_CHILD_NAME) -> str:
    """Join parts with '-', truncating and appending a hash of the full name when too long."""
    name = "-".join(p for p in parts if p)
    if len(name) <= limit:
        return name
    suffix = short_hash(name, 6)
    return f"{name[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def service_name(pipeline: str, stage: str, revision: str) -> str:
    """InferenceService name of one stage of one revision."""
    return fit_name(pipeline, stage, revision)


DNS_LABEL_LIMIT = 63


def host_label(service: str, component: str, namespace: str) -> str:
    """The first label of the host name KServe gives a component of an InferenceService
    under its default domain template (``{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}``,
    the name being ``<service>-<component>``): it must fit a DNS label, 63 characters, or
    KServe does not reconcile the component."""
    return f"{service}-{component}-{namespace}"


def graph_name(pipeline: str, preview: bool = False) -> str:
    return fit_name(pipeline, "preview" if preview else "")


def revision_graph_name(pipeline: str, revision: str) -> str:
    """The graph that serves ``revision`` alone (revisions are hex: never ``preview``)."""
    return fit_name(pipeline, revision)


def mirror_name(pipeline: str) -> str:
    """The TraefikService that mirrors a pipeline's stable revision to its canary."""
    return fit_name(pipeline, "mirror")


def labels(pipeline: str, revision: str | None = None, stage: str | None = None) -> dict[str, Any]:
    out = {LABEL_PIPELINE: fit_name(pipeline, limit=63), MANAGED_BY: OPERATOR_NAME}
    if revision:
        out[LABEL_REVISION] = revision
    if stage:
        out[LABEL_STAGE] = stage
    return out


def long_hosts(
    spec: InferencePipelineSpec, pipeline: str, namespace: str, revision: str
) -> Iterator[str]:
    """A stage whose component's host name KServe would not fit in a DNS label."""
    for i, stage in enumerate(spec.stages):
        service = service_name(pipeline, stage.name, revision)
        components = ["predictor", *(["transformer"] if stage.transformer else [])]
        for component in components:
            label = host_label(service, component, namespace)
            if len(label) > DNS_LABEL_LIMIT:
                yield (
                    f"spec.stages[{i}] ({stage.name}): KServe names the host of its {component} "
                    f"{label} ({len(label)} characters) under its default domain template, "
                    f"over the {DNS_LABEL_LIMIT} a DNS label holds, and will not reconcile it: "
                    "shorten the pipeline's, the stage's or the namespace's name, or set "
                    "KServe's domainTemplate"
                )
