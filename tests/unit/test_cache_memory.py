"""What the store leaves out or packs to stay small, and that a reconcile reads the same from it.

Each cut has two sides: the field a reconcile reads is still there (or reads the same), and
the one dropped does not come back.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bench.memory import converge
from pipeline_operator.api import command_annotation
from pipeline_operator.api.v1alpha1 import (
    API_VERSION,
    COMMAND_ANNOTATION,
    KIND,
    InferencePipelineSpec,
    InferencePipelineStatus,
)
from pipeline_operator.core.naming import SERVING_SPEC_ANNOTATION, revision_of
from pipeline_operator.core.objects import condition
from pipeline_operator.core.observe import snapshots
from pipeline_operator.core.observe.drift import drift
from pipeline_operator.core.planner import Owner
from pipeline_operator.k8s.cache import LAST_APPLIED, cached, trim_pipeline
from pipeline_operator.settings import OperatorSettings
from tests.unit import test_drift as cases

MANAGER = cases.MANAGER


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the store holds it, decoded from JSON on its own as a watch delivers it."""
    return cached(json.loads(json.dumps(body))).body


def child(*others: dict[str, Any], edit: Any = None) -> dict[str, Any]:
    obj = cases.live(*others, edit=edit)
    obj.update(apiVersion="serving.kserve.io/v1beta1", kind="InferenceService")
    obj["metadata"].update(namespace="ml", uid="u-1", resourceVersion="7")
    return obj


def gpu_added(obj: dict[str, Any]) -> None:
    obj["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] = "1"


GPU_FIELDS: dict[str, Any] = {
    "f:predictor": {"f:model": {"f:resources": {"f:limits": {"f:nvidia.com/gpu": {}}}}}
}
SCALED = cases.patched({"f:spec": {"f:predictor": {"f:minReplicas": {}}}})
DRIFTS = {
    "none": (cases.DESIRED, child()),
    "added by hand": (
        cases.DESIRED,
        child(cases.patched({"f:spec": GPU_FIELDS}), edit=gpu_added),
    ),
    "changed by hand": (
        cases.DESIRED,
        child(SCALED, edit=lambda o: o["spec"]["predictor"].update(minReplicas=5)),
    ),
    "no longer planned": (
        {**cases.DESIRED, "spec": {"predictor": {"containers": [cases.CONTAINER]}}},
        child(),
    ),
}


@pytest.mark.parametrize("case", DRIFTS)
def test_drift_reads_the_same_from_a_stored_child(case: str) -> None:
    desired, live = DRIFTS[case]
    assert drift(desired, stored(live), MANAGER) == drift(desired, live, MANAGER)


def test_fieldsets_are_kept_without_timestamps_and_entries_owning_no_spec_go() -> None:
    [ours] = stored(child())["metadata"]["managedFields"]  # KServe's finalizer entry owns no spec
    assert ours == {key: cases.OURS[key] for key in ("manager", "operation", "fieldsV1")}
    # An Update entry that owns spec fields stays: drift reads them.
    edited = stored(child(SCALED))
    assert [e["manager"] for e in edited["metadata"]["managedFields"]] == [
        MANAGER,
        "kubectl-patch",
    ]


def test_a_child_keeps_its_ready_condition_and_those_that_failed() -> None:
    live = child()
    live["status"] = {
        "url": "http://clf",
        "conditions": [
            {"type": "IngressReady", "status": "True", "lastTransitionTime": "t"},
            {"type": "Ready", "status": "False", "reason": "R", "message": "M", "severity": "x"},
            {"type": "PredictorReady", "status": "False", "reason": "R"},
        ],
    }
    kept = stored(live)
    assert kept["status"] == {
        "url": "http://clf",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "R", "message": "M"},
            {"type": "PredictorReady", "status": "False", "reason": "R"},
        ],
    }
    # What readiness reads: the Ready condition's status, message and reason.
    assert condition(kept, "Ready") == {
        "type": "Ready",
        "status": "False",
        "reason": "R",
        "message": "M",
    }


def test_children_of_a_revision_cost_a_fraction_of_their_json_in_the_store() -> None:
    spec = json.dumps({"stages": [{"name": f"stage-{i}", "image": "model:1"} for i in range(20)]})
    obj = child()
    obj["metadata"]["annotations"] = {SERVING_SPEC_ANNOTATION: spec}
    kept = cached(json.loads(json.dumps(obj)))
    assert kept.body["metadata"]["annotations"][SERVING_SPEC_ANNOTATION] == spec
    assert len(kept.packed.blob) < len(json.dumps(kept.body)) / 3


def pipeline() -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "clf", "namespace": "ml"},
        "spec": {"stages": [{"name": "m", "predictor": {"container": {"image": "m:1"}}}]},
    }
    body = copy.deepcopy(manifest)
    body["metadata"].update(
        uid="u1",
        resourceVersion="9",
        generation=2,
        finalizers=["pipelines.inference.dev/daemons"],
        annotations={
            LAST_APPLIED: json.dumps(manifest),
            COMMAND_ANNOTATION: "pause:1",
            "team": "search",
        },
    )
    return body


def test_a_pipeline_drops_kubectls_copy_of_its_manifest_and_keeps_its_other_annotations() -> None:
    kept = stored(pipeline())["metadata"]
    assert LAST_APPLIED not in kept["annotations"]
    assert kept["annotations"] == {COMMAND_ANNOTATION: "pause:1", "team": "search"}
    assert command_annotation.pending(kept["annotations"], InferencePipelineStatus()) == "pause:1"
    assert kept["finalizers"] == ["pipelines.inference.dev/daemons"]
    assert (kept["resourceVersion"], kept["generation"]) == ("9", 2)
    assert trim_pipeline(pipeline())["metadata"]["annotations"] == kept["annotations"]


def revision(image: str, number: int) -> dict[str, Any]:
    spec = InferencePipelineSpec.model_validate(
        {"stages": [{"name": "m", "predictor": {"container": {"image": image}}}]}
    )
    body = snapshots.build(Owner("clf", "ml", "u1"), revision_of(spec), spec, number)
    body["metadata"].update(uid=f"cr-{number}", resourceVersion=str(number))
    return body


def test_a_snapshot_is_stored_and_parses_as_the_api_object_does() -> None:
    raw = revision("m:1", 3)
    kept = stored(raw)
    assert kept["data"] == raw["data"]
    assert snapshots.parse([kept]) == snapshots.parse([raw])
    [snap] = snapshots.parse([kept]).values()
    assert (snap.number, snap.name) == (3, raw["metadata"]["name"])
    # Compared by content: the same spec stored again is no change, another spec is one.
    assert cached(revision("m:1", 3)) == cached(raw)
    assert cached(revision("m:2", 3)) != cached(raw)


def test_a_pipeline_reconciled_from_the_store_converges_then_writes_nothing() -> None:
    """bench/memory.py's apiserver: every reconcile reads its view from a store filled as the
    watches fill it; the pipeline becomes Healthy and a reconcile after that writes nothing
    (drift, readiness and snapshots read the same from the stored objects)."""
    figures = converge("clf", stages=3, history=3, settings=OperatorSettings())
    assert figures.phase == "Healthy"
    assert len(figures.objects["ControllerRevision"]) == 3
