"""Validation, placement and deletion of pipelines on the real control plane."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, InferencePipelineStatus
from pipeline_operator.controller.loop import LEGACY_FINALIZER
from pipeline_operator.core.naming import LABEL_PIPELINE, revision_of
from pipeline_operator.core.planner import Owner, plan
from tests import pipelines as p
from tests.harness import Cluster, Topology
from tests.harness.operator_process import OperatorProcess
from tests.support import kubectl_json, wait_for

pytestmark = pytest.mark.cluster


def test_apiserver_refuses_an_invalid_pipeline_naming_the_field(
    cluster: Cluster, namespace: str
) -> None:
    pipeline = p.classifier("clf", namespace)
    pipeline["spec"]["stages"][1]["nodePool"] = "gpu-a100"  # not a pool of the pipeline
    pipeline["spec"]["rollout"] = {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 20}]}}
    result = cluster.kubectl("create", "-f", "-", stdin=json.dumps(pipeline), check=False)
    assert result.returncode != 0
    assert "every stages[].nodePool must name an entry of spec.nodePools" in result.stderr
    assert "spec.rollout.canary" in result.stderr
    assert "setWeight steps must not decrease" in result.stderr


def test_a_cycle_the_schema_cannot_see_is_reported_in_status_and_events(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    pipeline = p.classifier("clf", namespace)
    pipeline["spec"]["graph"] = {
        "root": "a",
        "nodes": [
            {"name": "a", "steps": [{"stage": "tokenize"}, {"node": "b"}]},
            {"name": "b", "steps": [{"stage": "classify"}, {"node": "a"}]},
        ],
    }
    p.apply(cluster, pipeline)
    st = p.wait_status(cluster, namespace, "clf", "the cycle to be reported", phase="Degraded")
    assert "cycle" in st["message"]
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "spec.graph.nodes" in ready["message"]
    assert "InvalidSpec" in p.events(cluster, namespace, "clf")
    assert p.children(cluster, namespace, "inferenceservices") == []
    assert "Traceback" not in operator.logs()


def test_a_stage_asking_for_more_gpus_than_its_pool_has_is_reported(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    pipeline = p.classifier("clf", namespace)
    pipeline["spec"]["stages"][1]["resources"]["gpus"] = 16  # the pool has 8 per node
    p.apply(cluster, pipeline)
    st = p.wait_status(
        cluster, namespace, "clf", "the GPU over-ask to be reported", phase="Degraded"
    )
    assert "16 GPUs" in st["message"]
    assert "gpu-h100" in st["message"]
    assert p.children(cluster, namespace, "inferenceservices") == []


@pytest.mark.local_only
def test_kserve_places_each_stage_on_the_pool_it_names(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    # (A transformer's placement, off the GPU pools on any CPU node, is checked on the real
    # nodes, where it lands: tests/e2e/test_examples.py.)
    pipeline = p.classifier("clf", namespace)
    p.apply(cluster, pipeline)
    p.wait_status(cluster, namespace, "clf", "pipeline Healthy", phase="Healthy")
    pool_label = Topology.load().pool_label
    gpu_pools = {"gpu-h100", "gpu-l4"}
    placed: dict[tuple[str, str], set[str]] = {}
    for isvc in p.children(cluster, namespace, "inferenceservices"):
        stage = isvc["metadata"]["labels"]["pipelines.inference.dev/stage"]
        selector = f"serving.kserve.io/inferenceservice={isvc['metadata']['name']}"
        # The Deployments and pods are KServe's, made from the InferenceService.
        pods = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", selector)["items"]
        for pod in pods:
            assert pod["status"].get("phase") == "Running", pod["status"]
            node = kubectl_json(cluster, "get", "node", pod["spec"]["nodeName"])
            component = pod["metadata"]["labels"]["component"]
            placed.setdefault((stage, component), set()).add(node["metadata"]["labels"][pool_label])
    assert placed[("tokenize", "predictor")] == {"cpu"}
    assert placed[("classify", "predictor")] <= {"gpu-h100"} and placed[("classify", "predictor")]
    assert not placed[("tokenize", "predictor")] & gpu_pools


def test_deleting_the_pipeline_deletes_its_children(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    p.apply(cluster, p.classifier("clf", namespace))
    p.wait_status(cluster, namespace, "clf", "pipeline Healthy", phase="Healthy")
    assert p.children(cluster, namespace, "inferenceservices")
    cluster.kubectl("delete", p.PLURAL, "clf", "-n", namespace, "--timeout=30s")

    def all_gone() -> bool:
        return not any(
            p.children(cluster, namespace, kind)
            for kind in ("inferenceservices", "inferencegraphs", "controllerrevisions")
        )

    wait_for(all_gone, 60, "garbage collection of the pipeline's children")


def test_every_planned_object_passes_server_side_validation(
    cluster: Cluster, namespace: str
) -> None:
    """A pipeline using every feature: ensemble, switch, transformer, batching, two revisions."""
    spec = InferencePipelineSpec.model_validate(
        {
            "nodePools": [p.GPU_POOL, p.CPU_POOL],
            "stages": [
                {
                    "name": "tokenize",
                    "predictor": {"container": {"image": "tok:1", "args": ["--x"]}},
                    "nodePool": "cpu",
                    "scaling": {"minReplicas": 2, "maxReplicas": 4, "metric": "cpu", "target": 70},
                },
                {
                    "name": "small",
                    "predictor": {
                        "model": {
                            "modelFormat": {"name": "huggingface"},
                            "storageUri": "pvc://m/small",
                            "protocolVersion": "v2",
                        }
                    },
                    "transformer": {"image": "pre:1", "env": [{"name": "A", "value": "1"}]},
                    "resources": {"gpus": 1},
                    "nodePool": "gpu-h100",
                    "batching": {"maxBatchSize": 16, "maxLatencyMs": 20},
                },
                {
                    "name": "large",
                    "predictor": {
                        "model": {
                            "modelFormat": {"name": "huggingface"},
                            "storageUri": "pvc://m/large",
                        }
                    },
                    "resources": {"gpus": 4},
                    "nodePool": "gpu-h100",
                },
                {"name": "vote", "predictor": {"container": {"image": "agg:1"}}, "nodePool": "cpu"},
            ],
            "graph": {
                "root": "main",
                "nodes": [
                    {
                        "name": "main",
                        "type": "Sequence",
                        "steps": [{"stage": "tokenize"}, {"node": "cascade"}],
                    },
                    {
                        "name": "cascade",
                        "type": "Switch",
                        "steps": [
                            {"condition": "confidence < 0.9", "node": "both"},
                            {
                                "condition": "confidence >= 0.9",
                                "stage": "small",
                                "dependency": "Soft",
                            },
                        ],
                    },
                    {
                        "name": "both",
                        "type": "Ensemble",
                        "steps": [{"stage": "small"}, {"stage": "large"}],
                    },
                ],
            },
        }
    )
    other = spec.model_copy(deep=True)
    other.stages[2].resources.gpus = 8
    old, new = revision_of(spec), revision_of(other)
    status = InferencePipelineStatus.model_validate(
        {
            "stableRevision": old,
            "canaryRevision": new,
            "strategy": "BlueGreen",
            "phase": "Progressing",
            "traffic": [{"revision": old, "weight": 100}],
        }
    )
    owner = Owner(
        name="everything", namespace=namespace, uid="00000000-0000-0000-0000-000000000001"
    )
    objects = plan(owner, {old: spec, new: other}, status)
    assert {o["kind"] for o in objects} == {"InferenceService", "InferenceGraph"}
    for obj in objects:
        result = cluster.kubectl(
            "create",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
            stdin=json.dumps(obj),
            check=False,
        )
        assert result.returncode == 0, f"{obj['kind']} {obj['metadata']['name']}: {result.stderr}"


def test_an_unknown_command_is_rejected_in_status_and_events(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    p.apply(cluster, p.classifier("clf", namespace))
    p.wait_status(cluster, namespace, "clf", "pipeline Healthy", phase="Healthy")
    p.command(cluster, namespace, "clf", "launch", "1")

    def rejected() -> dict | None:
        ack = p.status(cluster, namespace, "clf").get("lastCommand") or {}
        return ack if ack.get("command") == "launch:1" else None

    ack = wait_for(rejected, 30, "the unknown command to be acknowledged")
    assert ack["result"] == "Rejected"
    assert "expected one of promote" in ack["message"]
    assert "CommandRejected" in p.events(cluster, namespace, "clf")
    assert p.status(cluster, namespace, "clf")["phase"] == "Healthy"


def test_a_pipeline_name_kserve_cannot_take_is_reported_not_retried_silently(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    p.apply(cluster, p.classifier("1st-classifier", namespace))  # KServe names start with a letter
    st = p.wait_status(
        cluster, namespace, "1st-classifier", "the name to be reported", phase="Degraded"
    )
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PlanFailed"
    assert "1st-classifier" in ready["message"]
    assert "PlanFailed" in p.events(cluster, namespace, "1st-classifier")
    assert p.children(cluster, namespace, "inferenceservices") == []
    assert p.children(cluster, namespace, "controllerrevisions") == [], "no snapshot stored"


def test_the_finalizer_of_earlier_releases_goes_and_a_pipeline_needs_no_operator_to_go(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """Earlier releases kept a finalizer on every pipeline for a kopf daemon; the operator
    removes it (with the chart's RBAC) and keeps none, so a pipeline deleted while no operator
    runs goes at once, its children with it."""
    old = p.classifier("old", namespace)
    old["metadata"]["finalizers"] = [LEGACY_FINALIZER, "example.com/keep"]
    p.apply(cluster, old)
    p.apply(cluster, p.classifier("clf", namespace))
    for name in ("old", "clf"):
        p.wait_status(cluster, namespace, name, f"{name} Healthy", phase="Healthy")

    def finalizers(name: str) -> list[str]:
        got = kubectl_json(cluster, "get", p.PLURAL, name, "-n", namespace)
        return list(got["metadata"].get("finalizers") or [])

    wait_for(lambda: finalizers("old") == ["example.com/keep"], 30, "the old finalizer to go")
    assert finalizers("clf") == []
    operator.stop()
    cluster.kubectl("delete", p.PLURAL, "clf", "-n", namespace, "--timeout=30s")

    def services_of(name: str) -> list[dict[str, Any]]:
        return [
            s
            for s in p.children(cluster, namespace, "inferenceservices")
            if s["metadata"]["labels"].get(LABEL_PIPELINE) == name
        ]

    wait_for(lambda: not services_of("clf"), 60, "the deleted pipeline's children to go with it")
    assert services_of("old")
    patch = json.dumps({"metadata": {"finalizers": None}})
    cluster.kubectl("patch", p.PLURAL, "old", "-n", namespace, "--type=merge", "-p", patch)
