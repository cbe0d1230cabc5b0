"""Pipeline objects in given rollout states, for the plugin's unit tests."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.core.naming import revision_of
from pipeline_operator.core.observe.snapshots import build
from pipeline_operator.core.planner import Owner
from tests import pipelines as p

NOW = "2024-05-01T12:00:00Z"
STEPS = [{"setWeight": 30}, {"pause": {"duration": "1m"}}, {"setWeight": 60}, {"pause": {}}]


def spec(model: str = "bert-v1") -> dict[str, Any]:
    return dict(p.classifier("clf", "ns", model=model, canary={"steps": STEPS})["spec"])


def revision(model: str) -> str:
    return revision_of(InferencePipelineSpec.model_validate(spec(model)))


V1, V2, V3 = revision("bert-v1"), revision("bert-v2"), revision("bert-v3")


def stages(rev: str, ready: bool = True) -> dict[str, Any]:
    return {
        "name": rev,
        "ready": ready,
        "stages": [
            {"name": "tokenize", "service": f"clf-tokenize-{rev}", "ready": True},
            {
                "name": "classify",
                "service": f"clf-classify-{rev}",
                "ready": ready,
                "message": "" if ready else "predictor: pods pending",
            },
        ],
    }


def pipeline(model: str = "bert-v1", paused: bool = False, **status: Any) -> dict[str, Any]:
    obj = p.classifier("clf", "ns", model=model, canary={"steps": STEPS})
    obj["spec"]["paused"] = paused
    obj["metadata"].update(creationTimestamp="2024-05-01T11:00:00Z", generation=2, uid="u-1")
    obj["status"] = {"observedGeneration": 2, **status}
    return obj


def healthy() -> dict[str, Any]:
    return pipeline(
        phase="Healthy",
        stableRevision=V1,
        strategy="Canary",
        ready="2/2",
        traffic=[{"revision": V1, "weight": 100}],
        revisions=[stages(V1)],
    )


def canary(phase: str = "Paused", ready: bool = True, **extra: Any) -> dict[str, Any]:
    status = {
        "phase": phase,
        "stableRevision": V1,
        "canaryRevision": V2,
        "strategy": "Canary",
        "currentStepIndex": 3,
        "canaryWeight": 60,
        "ready": "4/4",
        "step": "4/4",
        "weight": "60%",
        "message": f"canary {V2} at 60%, step 4/4: paused until promote",
        "traffic": [{"revision": V1, "weight": 40}, {"revision": V2, "weight": 60}],
        "revisions": [stages(V1), stages(V2, ready)],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Serving",
                "message": "stable serves",
                "lastTransitionTime": NOW,
            }
        ],
        "lastCommand": {
            "command": "promote:1",
            "result": "Accepted",
            "message": "skipped",
            "at": NOW,
        },
    }
    status.update(extra)
    return pipeline(model="bert-v2", **status)


def aborted() -> dict[str, Any]:
    return canary(
        phase="Aborted",
        canaryWeight=0,
        currentStepIndex=None,
        abortReason="aborted by user",
        traffic=[{"revision": V1, "weight": 100}],
    )


def revisions(*models: str) -> list[dict[str, Any]]:
    """ControllerRevisions numbered 1.. for the given models, as the operator writes them."""
    owner = Owner("clf", "ns", "u-1")
    out = []
    for number, model in enumerate(models, start=1):
        parsed = InferencePipelineSpec.model_validate(spec(model))
        obj = build(owner, revision_of(parsed), parsed, number)
        obj["metadata"]["creationTimestamp"] = "2024-05-01T11:30:00Z"
        out.append(obj)
    return out
