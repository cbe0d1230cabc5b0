"""InferenceService planning: placement, resources, model vs container, transformer."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.core.naming import serving_spec
from pipeline_operator.core.planner import Owner, PlanOptions
from pipeline_operator.core.planner.inference_service import build_inference_service
from pipeline_operator.core.planner.placement import is_gpu_pool

DEFAULT_OPTIONS = PlanOptions()
OWNER = Owner(name="demo", namespace="ml", uid="uid-1")
GPU_POOL = {
    "name": "gpu-l4",
    "nodeSelector": {"pool": "gpu-l4", "accelerator": "l4"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "gpuResource": "nvidia.com/gpu",
    "gpusPerNode": 4,
}
AMD_POOL = {"name": "gpu-amd", "nodeSelector": {"pool": "amd"}, "gpuResource": "amd.com/gpu"}
CPU_POOL = {
    "name": "cpu",
    "nodeSelector": {"pool": "cpu"},
    "tolerations": [{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}],
}
MODEL = {
    "model": {
        "modelFormat": {"name": "huggingface", "version": "1"},
        "storageUri": "pvc://models/clf",
        "runtime": "kserve-huggingfaceserver",
        "protocolVersion": "v2",
        "args": ["--max_length=128"],
        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
    }
}
CONTAINER = {
    "container": {
        "image": "registry.local/tok:1",
        "command": ["python", "-m", "tok"],
        "args": ["--model_name=tok"],
        "env": [{"name": "A", "value": "b"}],
        "port": 8081,
    }
}
HARDENED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
    "runAsNonRoot": True,
}


def isvc(
    stage: dict[str, Any],
    pools: list[dict[str, Any]] | None = None,
    options: PlanOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    spec = InferencePipelineSpec.model_validate(
        {"nodePools": pools or [GPU_POOL, AMD_POOL, CPU_POOL], "stages": [stage]}
    )
    return build_inference_service(OWNER, spec, spec.stages[0], "abcd1234", options)


@pytest.mark.parametrize(
    ("stage", "selector", "tolerations", "gpu"),
    [
        pytest.param(
            {"name": "llm", "predictor": MODEL, "nodePool": "gpu-l4", "resources": {"gpus": 2}},
            {"accelerator": "l4", "pool": "gpu-l4"},
            GPU_POOL["tolerations"],
            {"nvidia.com/gpu": "2"},
            id="gpu-stage-on-gpu-pool",
        ),
        pytest.param(
            {"name": "llm", "predictor": MODEL, "nodePool": "gpu-amd", "resources": {"gpus": 1}},
            {"pool": "amd"},
            None,
            {"amd.com/gpu": "1"},
            id="pool-gpu-resource-name",
        ),
        pytest.param(
            {"name": "tok", "predictor": CONTAINER, "nodePool": "cpu"},
            {"pool": "cpu"},
            [{"key": "dedicated", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}],
            {},
            id="cpu-stage-on-cpu-pool",
        ),
        pytest.param(
            {"name": "tok", "predictor": CONTAINER}, None, None, {}, id="cpu-stage-without-pool"
        ),
        pytest.param(
            {"name": "llm", "predictor": MODEL, "resources": {"gpus": 1}},
            None,
            None,
            {"nvidia.com/gpu": "1"},
            id="gpu-stage-without-pool",
        ),
    ],
)
def test_predictor_placement_and_resources(
    stage: dict[str, Any],
    selector: dict[str, str] | None,
    tolerations: list[dict[str, Any]] | None,
    gpu: dict[str, str],
) -> None:
    predictor = isvc(stage)["spec"]["predictor"]
    assert predictor.get("nodeSelector") == selector
    assert predictor.get("tolerations") == tolerations
    server = predictor["model"] if "model" in predictor else predictor["containers"][0]
    expected = {"cpu": "1", "memory": "2Gi", **gpu}
    assert server["resources"] == {"requests": expected, "limits": expected}


def test_pool_affinity_is_copied() -> None:
    affinity = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]
                    },
                }
            ]
        }
    }
    pool = {**CPU_POOL, "affinity": affinity}
    predictor = isvc({"name": "tok", "predictor": CONTAINER, "nodePool": "cpu"}, [pool])
    assert predictor["spec"]["predictor"]["affinity"] == affinity


def test_model_predictor() -> None:
    predictor = isvc({"name": "clf", "predictor": MODEL})["spec"]["predictor"]
    assert "containers" not in predictor
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "huggingface", "version": "1"}
    assert model["storageUri"] == "pvc://models/clf"
    assert model["runtime"] == "kserve-huggingfaceserver"
    assert model["protocolVersion"] == "v2"
    assert model["args"] == ["--max_length=128"]
    assert model["env"][-1] == {"name": "HF_HUB_OFFLINE", "value": "1"}
    assert model["securityContext"]["allowPrivilegeEscalation"] is False
    assert "runAsNonRoot" not in model["securityContext"]


def test_minimal_model_leaves_optional_fields_out() -> None:
    minimal = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/m"}}
    model = isvc({"name": "clf", "predictor": minimal})["spec"]["predictor"]["model"]
    assert set(model) == {"modelFormat", "storageUri", "env", "resources", "securityContext"}
    assert model["modelFormat"] == {"name": "sklearn"}


def test_container_predictor() -> None:
    predictor = isvc({"name": "tok", "predictor": CONTAINER})["spec"]["predictor"]
    assert "model" not in predictor
    [container] = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "registry.local/tok:1"
    assert container["command"] == ["python", "-m", "tok"]
    assert container["args"] == ["--model_name=tok"]
    assert container["env"][-1] == {"name": "A", "value": "b"}
    assert container["ports"] == [{"name": "http1", "containerPort": 8081, "protocol": "TCP"}]
    assert container["securityContext"] == HARDENED


def test_a_container_may_run_as_a_user_it_names_root_included() -> None:
    security = {"runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0}
    stage = {
        "name": "tok",
        "predictor": {"container": {**CONTAINER["container"], "securityContext": security}},
    }
    [container] = isvc(stage)["spec"]["predictor"]["containers"]
    assert container["securityContext"] == {
        **{k: v for k, v in HARDENED.items() if k != "runAsNonRoot"},
        "runAsUser": 0,
        "runAsGroup": 0,
    }
    named = {
        "name": "tok",
        "predictor": {
            "container": {**CONTAINER["container"], "securityContext": {"runAsUser": 1000}}
        },
    }
    [container] = isvc(named)["spec"]["predictor"]["containers"]
    assert container["securityContext"] == {**HARDENED, "runAsUser": 1000}


def test_every_container_knows_its_pipeline_stage_and_revision() -> None:
    stage = {"name": "clf", "predictor": MODEL, "transformer": {"image": "pre:1"}}
    body = isvc(stage)["spec"]
    expected = {
        "INFERENCE_PIPELINE": "demo",
        "INFERENCE_PIPELINE_STAGE": "clf",
        "INFERENCE_PIPELINE_REVISION": "abcd1234",
    }
    for env in (body["predictor"]["model"]["env"], body["transformer"]["containers"][0]["env"]):
        assert {e["name"]: e["value"] for e in env if e["name"] in expected} == expected


def test_a_predictor_given_gpus_is_told_how_many_and_nothing_else_is() -> None:
    def gpus_env(env: list[dict[str, str]]) -> list[str]:
        return [e["value"] for e in env if e["name"] == "INFERENCE_PIPELINE_GPUS"]

    gpu = {
        "name": "clf",
        "predictor": CONTAINER,
        "transformer": {"image": "pre:1"},
        "nodePool": "gpu-l4",
        "resources": {"gpus": 2},
    }
    body = isvc(gpu)["spec"]
    assert gpus_env(body["predictor"]["containers"][0]["env"]) == ["2"]
    assert gpus_env(body["transformer"]["containers"][0]["env"]) == []
    served = isvc({**gpu, "predictor": MODEL})["spec"]["predictor"]["model"]["env"]
    assert gpus_env(served) == ["2"]
    cpu = isvc({"name": "clf", "predictor": CONTAINER, "nodePool": "cpu"})["spec"]
    assert gpus_env(cpu["predictor"]["containers"][0]["env"]) == []


def test_a_custom_predictor_serves_its_model_under_the_inference_service_name() -> None:
    predictor = {"container": {"image": "agg:1", "args": ["--method=mean"]}}
    body = isvc({"name": "agg", "predictor": predictor})
    [container] = body["spec"]["predictor"]["containers"]
    assert container["args"] == ["--method=mean", f"--model_name={body['metadata']['name']}"]
    named = isvc({"name": "tok", "predictor": CONTAINER})["spec"]["predictor"]["containers"]
    assert named[0]["args"] == ["--model_name=tok"]  # the user's own name is kept


def test_a_container_with_storage_gets_kserve_storage_uri() -> None:
    transformer = {"image": "pre:1", "storageUri": "pvc://models/tok"}
    stage = {"name": "clf", "predictor": CONTAINER, "transformer": transformer}
    [container] = isvc(stage)["spec"]["transformer"]["containers"]
    assert {"name": "STORAGE_URI", "value": "pvc://models/tok"} in container["env"]
    [predictor] = isvc(stage)["spec"]["predictor"]["containers"]
    assert "STORAGE_URI" not in {e["name"] for e in predictor["env"]}


def test_scaling_and_batcher() -> None:
    stage = {
        "name": "clf",
        "predictor": MODEL,
        "scaling": {"minReplicas": 2, "maxReplicas": 5, "metric": "cpu", "target": 70},
        "batching": {"maxBatchSize": 16, "maxLatencyMs": 20},
    }
    predictor = isvc(stage)["spec"]["predictor"]
    assert predictor["minReplicas"] == 2
    assert predictor["maxReplicas"] == 5
    assert predictor["scaleMetric"] == "cpu"
    assert predictor["scaleTarget"] == 70
    assert predictor["batcher"] == {"maxBatchSize": 16, "maxLatency": 20}
    assert "batcher" not in isvc({"name": "clf", "predictor": MODEL})["spec"]["predictor"]


@pytest.mark.parametrize(
    ("pool", "expect_selector", "expect_avoid"),
    [
        pytest.param("gpu-l4", None, True, id="gpu-pool"),
        pytest.param("cpu", {"pool": "cpu"}, False, id="cpu-pool"),
        pytest.param(None, None, False, id="no-pool"),
    ],
)
def test_transformer_stays_off_gpu(
    pool: str | None, expect_selector: dict[str, str] | None, expect_avoid: bool
) -> None:
    stage: dict[str, Any] = {
        "name": "clf",
        "predictor": MODEL,
        "transformer": {"image": "pre:1"},
        "nodePool": pool,
        "resources": {"gpus": 1 if pool == "gpu-l4" else 0},
    }
    transformer = isvc(stage)["spec"]["transformer"]
    [container] = transformer["containers"]
    assert container["name"] == "kserve-container"
    assert container["securityContext"] == HARDENED
    resources = container["resources"]
    assert resources["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert resources["requests"] == resources["limits"]
    assert transformer.get("nodeSelector") == expect_selector
    if pool == "gpu-l4":
        assert "tolerations" not in transformer
    terms = (
        transformer.get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms")
    )
    if expect_avoid:
        assert terms == [
            {"matchExpressions": [{"key": "accelerator", "operator": "NotIn", "values": ["l4"]}]},
            {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["gpu-l4"]}]},
        ]
    else:
        assert terms is None


def test_transformer_resources_are_the_stages() -> None:
    transformer = {"image": "pre:1", "cpu": "500m", "memory": "256Mi"}
    stage = {"name": "clf", "predictor": MODEL, "transformer": transformer}
    [container] = isvc(stage)["spec"]["transformer"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert container["resources"]["requests"] == container["resources"]["limits"]


def test_no_transformer_key_without_transformer() -> None:
    assert "transformer" not in isvc({"name": "clf", "predictor": MODEL})["spec"]


def test_gpu_pool_detection() -> None:
    spec = InferencePipelineSpec.model_validate(
        {
            "nodePools": [{"name": "a"}, {"name": "b", "gpusPerNode": 8}, {"name": "c"}],
            "stages": [
                {"name": "s", "predictor": MODEL, "nodePool": "a", "resources": {"gpus": 1}},
                {"name": "t", "predictor": MODEL, "nodePool": "c"},
            ],
        }
    )
    assert [is_gpu_pool(spec, p) for p in spec.node_pools] == [True, True, False]


def test_metadata() -> None:
    obj = isvc({"name": "clf", "predictor": MODEL})
    assert obj["apiVersion"] == "serving.kserve.io/v1beta1"
    assert obj["kind"] == "InferenceService"
    meta = obj["metadata"]
    assert meta["name"] == "demo-clf-abcd1234"
    assert meta["namespace"] == "ml"
    assert meta["labels"]["pipelines.inference.dev/pipeline"] == "demo"
    assert meta["labels"]["pipelines.inference.dev/revision"] == "abcd1234"
    assert meta["labels"]["pipelines.inference.dev/stage"] == "clf"
    assert obj["spec"]["predictor"]["labels"] == meta["labels"]
    spec = InferencePipelineSpec.model_validate(
        {
            "nodePools": [GPU_POOL, AMD_POOL, CPU_POOL],
            "stages": [{"name": "clf", "predictor": MODEL}],
        }
    )
    assert meta["annotations"] == {
        "serving.kserve.io/deploymentMode": "Standard",
        "pipelines.inference.dev/serving-spec": serving_spec(spec),
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "pipelines.inference.dev/v1alpha1",
            "kind": "InferencePipeline",
            "name": "demo",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_deployment_mode_can_be_omitted() -> None:
    obj = isvc({"name": "clf", "predictor": MODEL}, options=PlanOptions(deployment_mode=None))
    assert "serving.kserve.io/deploymentMode" not in obj["metadata"]["annotations"]
