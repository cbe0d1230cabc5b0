"""Where a predictor serves: a replica given GPUs serves on CUDA or fails at load, saying why;
``--device=cpu`` serves it on the CPU deliberately."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_operator.api import v1alpha1
from pipeline_predictors.batching import BatchingConfig
from pipeline_predictors.classifier import SequenceClassifier
from pipeline_predictors.classifier.__main__ import build_parser
from pipeline_predictors.flags import encoder_options
from pipeline_predictors.runtime.device import GPUS_ENV, DeviceUnavailableError, resolve_device
from pipeline_predictors.runtime.onnx import CPU, CUDA, pick_providers, require_provider
from pipeline_predictors.runtime.options import EncoderOptions
from tests.harness.models import build_onnx_classifier

from .conftest import Models

pytestmark = pytest.mark.dataplane

REASON = "no CUDA here"


def test_the_operator_and_the_predictors_name_the_same_variable() -> None:
    assert GPUS_ENV == v1alpha1.GPUS_ENV
    assert GPUS_ENV in v1alpha1.RESERVED_ENV


@pytest.mark.parametrize(
    ("device", "gpus", "cuda", "expected"),
    [
        ("auto", 0, False, "cpu"),
        ("auto", 0, True, "cuda"),
        ("auto", 2, True, "cuda"),
        ("cpu", 2, False, "cpu"),
        ("cpu", 0, True, "cpu"),
        ("cuda:1", 1, True, "cuda:1"),
    ],
)
def test_a_device_that_can_serve_is_chosen(
    device: str, gpus: int, cuda: bool, expected: str
) -> None:
    assert resolve_device(device, gpus, cuda, REASON) == expected


def test_a_replica_given_gpus_never_falls_back_to_the_cpu_on_its_own() -> None:
    with pytest.raises(DeviceUnavailableError) as raised:
        resolve_device("auto", 2, False, REASON)
    assert str(raised.value) == (
        f"this replica was given 2 GPU(s) ({GPUS_ENV}) but {REASON}; "
        "pass --device=cpu to serve on the CPU instead"
    )
    with pytest.raises(DeviceUnavailableError, match=f"--device cuda:0 was asked for but {REASON}"):
        resolve_device("cuda:0", 0, False, REASON)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu", 0, True, REASON)


def test_onnx_runtime_needs_its_cuda_provider_and_must_start_it() -> None:
    with pytest.raises(DeviceUnavailableError, match="has no CUDA provider"):
        pick_providers("auto", [CPU], gpus=1)
    assert pick_providers("auto", [CUDA, CPU], gpus=1) == [(CUDA, {"device_id": "0"}), CPU]
    # A CUDA provider that fails to start leaves the session on the CPU: refused.
    with pytest.raises(DeviceUnavailableError, match=r"could not start its CUDA provider"):
        require_provider([(CUDA, {"device_id": "0"}), CPU], [CPU])
    require_provider([(CUDA, {"device_id": "0"}), CPU], [CUDA, CPU])
    require_provider([CPU], [CPU])


def test_the_gpus_flag_comes_from_the_operators_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(GPUS_ENV, "2")
    options = encoder_options(build_parser().parse_args(["--model_name=clf"]))
    assert (options.device, options.gpus) == ("auto", 2)
    monkeypatch.delenv(GPUS_ENV)
    assert encoder_options(build_parser().parse_args(["--model_name=clf"])).gpus == 0


def load(model_dir: Path, gpus: int, device: str = "auto") -> SequenceClassifier:
    batching = BatchingConfig(1, 0.001)
    options = EncoderOptions(str(model_dir), batching, device=device, gpus=gpus)
    model = SequenceClassifier("clf", options)
    model.load()
    return model


def test_a_gpu_stage_without_a_usable_gpu_fails_at_load_on_either_runtime(
    models: Models, tmp_path: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    onnx = tmp_path / "onnx"
    build_onnx_classifier(onnx, 1, models.root / "tokenizer")
    for model_dir, reason in [
        (models.model_r1, "CUDA is not available"),
        (onnx, "this ONNX Runtime has no CUDA provider"),
    ]:
        with pytest.raises(DeviceUnavailableError, match=reason):
            load(model_dir, gpus=1)
        model = load(model_dir, gpus=1, device="cpu")
        assert model.ready
        assert "cpu" in str(model.runtime).lower()
