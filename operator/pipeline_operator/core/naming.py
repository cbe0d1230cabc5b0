"""Revisions (content hashes of the serving fields, and those fields as an annotation), child
names and labels (pure)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from pipeline_operator.api.v1alpha1 import GROUP, InferencePipelineSpec

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


def revision_of(spec: InferencePipelineSpec) -> str:
    """Content hash of everything that changes how requests are served (not rollout settings)."""
    return short_hash(serving_spec(spec))


def parse_serving_spec(value: str, revision: str) -> InferencePipelineSpec | None:
    """The spec a :func:`serving_spec` value holds, if it is intact and ``revision``'s."""
    try:
        spec = InferencePipelineSpec.model_validate_json(value)
    except ValidationError:
        return None
    return spec if revision_of(spec) == revision else None


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


def graph_name(pipeline: str, preview: bool = False) -> str:
    return fit_name(pipeline, "preview" if preview else "")


def labels(pipeline: str, revision: str | None = None, stage: str | None = None) -> dict[str, Any]:
    out = {LABEL_PIPELINE: fit_name(pipeline, limit=63), MANAGED_BY: OPERATOR_NAME}
    if revision:
        out[LABEL_REVISION] = revision
    if stage:
        out[LABEL_STAGE] = stage
    return out
