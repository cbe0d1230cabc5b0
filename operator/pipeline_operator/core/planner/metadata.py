"""Object metadata shared by every child: labels, annotations, ownerReferences."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND
from pipeline_operator.core.planner.options import Owner, PlanOptions

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


def build_owner_reference(owner: Owner) -> dict[str, Any]:
    """The controller reference that lets garbage collection delete children with the owner."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_annotations(options: PlanOptions) -> dict[str, str]:
    if options.deployment_mode is None:
        return {}
    return {DEPLOYMENT_MODE_ANNOTATION: options.deployment_mode}


def build_metadata(
    owner: Owner, name: str, labels: dict[str, Any], options: PlanOptions
) -> dict[str, Any]:
    """metadata of a child object in the owner's namespace."""
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "annotations": build_annotations(options),
        "ownerReferences": [build_owner_reference(owner)],
    }
