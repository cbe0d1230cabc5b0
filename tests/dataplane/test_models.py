"""The model classes in-process: readiness follows loading; input limits are enforced; a
Hugging Face ONNX export is served by ONNX Runtime with the same answers' shape."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from kserve.errors import InvalidInput

from pipeline_predictors.batching import BatchingConfig
from pipeline_predictors.classifier import SequenceClassifier
from pipeline_predictors.embedding import SentenceEmbedder
from pipeline_predictors.runtime.onnx import OnnxRuntime, pick_providers
from pipeline_predictors.runtime.options import EncoderOptions
from pipeline_predictors.runtime.torch import TorchRuntime, pick_device, pick_dtype
from tests.harness.models import build_onnx_classifier

from .conftest import Models

pytestmark = pytest.mark.dataplane


def classifier(model_dir: Path) -> SequenceClassifier:
    options = EncoderOptions(model_dir=str(model_dir), batching=BatchingConfig(4, 0.001))
    return SequenceClassifier("clf", options)


def test_ready_only_after_load(models: Models) -> None:
    model = classifier(models.model_r1)
    assert not model.ready
    model.start()  # KServe calls start(); it must not make an unloaded model ready
    assert not model.ready
    assert model.load()
    assert model.ready
    assert model.labels == ["negative", "neutral", "positive"]
    assert isinstance(model.runtime, TorchRuntime)
    assert model.runtime.device.type == "cpu"


def test_load_fails_on_a_missing_directory(tmp_path: Path) -> None:
    model = classifier(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.load()
    assert not model.ready


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ({"input_ids": list(range(2, 80))}, "has 78 tokens; this model takes at most 64"),
        ({"input_ids": [2, 99999, 3]}, "outside the vocabulary"),
    ],
)
def test_limits_are_invalid_input(models: Models, instance: object, message: str) -> None:
    model = classifier(models.model_r1)
    model.load()
    with pytest.raises(InvalidInput, match=message):
        asyncio.run(model.predict({"instances": [instance]}))


def test_length_buckets_give_the_same_rows_as_one_padded_pass(models: Models) -> None:
    model = classifier(models.model_r1)
    model.load()
    assert model.pass_cost > 0  # measured at load on this machine
    rows = [tuple(range(5, 5 + n)) for n in (3, 40, 4, 12, 3, 7)]
    model.pass_cost = float("inf")
    together = model.forward_rows(rows)
    model.pass_cost = 0.0  # every distinct length in a pass of its own
    split = model.forward_rows(rows)
    for a, b in zip(together, split, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_device_and_dtype_choice() -> None:
    import torch

    cpu = pick_device("cpu")
    assert pick_dtype("auto", cpu) == torch.float32
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert pick_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        pick_dtype("int3", cpu)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_a_confidence_threshold_marks_each_prediction(models: Models) -> None:
    options = EncoderOptions(model_dir=str(models.model_r1), batching=BatchingConfig(4, 0.001))
    texts = ["the service was great", "an average day", "terrible and late"]
    plain = SequenceClassifier("clf", options)
    plain.load()
    scores = [p["score"] for p in asyncio.run(plain.predict({"instances": texts}))["predictions"]]
    threshold = sorted(scores)[1]  # one prediction below, two at or above
    model = SequenceClassifier("clf", options, confidence_threshold=threshold)
    model.load()
    answer = asyncio.run(model.predict({"instances": texts}))["predictions"]
    assert [p["confident"] for p in answer] == [s >= threshold for s in scores]
    assert sorted(p["confident"] for p in answer) == [False, True, True]
    assert all(
        "confident" not in p
        for p in asyncio.run(plain.predict({"instances": texts}))["predictions"]
    )


@pytest.fixture(scope="module")
def onnx_models(models: Models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ONNX exports beside the torch models, sharing their tokenizer."""
    root = tmp_path_factory.mktemp("onnx")
    tokenizer = models.root / "tokenizer"
    built = {"wide": root / "wide", "short": root / "short"}
    build_onnx_classifier(built["wide"], 1, tokenizer)
    build_onnx_classifier(built["short"], 1, tokenizer, max_positions=16)
    return built


def test_an_onnx_export_is_served_by_onnx_runtime(onnx_models: dict[str, Path]) -> None:
    model = classifier(onnx_models["wide"])
    assert model.load()
    assert isinstance(model.runtime, OnnxRuntime)
    assert model.labels == ["negative", "neutral", "positive"]
    texts = ["the service was great", "an average day", "terrible and late"]
    answer = asyncio.run(model.predict({"instances": texts}))["predictions"]
    for p in answer:
        assert p["label"] == model.labels[int(np.argmax(p["logits"]))]
        assert sum(p["probabilities"]) == pytest.approx(1.0)
    # Each row depends on its own tokens only, not on the batch it was padded into.
    alone = [asyncio.run(model.predict({"instances": [t]}))["predictions"][0] for t in texts]
    for together, single in zip(answer, alone, strict=True):
        np.testing.assert_allclose(together["logits"], single["logits"], rtol=1e-5, atol=1e-6)


def test_an_onnx_export_keeps_its_position_limit(onnx_models: dict[str, Path]) -> None:
    model = classifier(onnx_models["short"])
    model.load()
    assert model.max_length == 16
    long = {"input_ids": list(range(5, 25))}
    with pytest.raises(InvalidInput, match="has 20 tokens; this model takes at most 16"):
        asyncio.run(model.predict({"instances": [long]}))


def test_an_onnx_export_is_refused_where_it_cannot_be_served(
    onnx_models: dict[str, Path],
) -> None:
    embedder = SentenceEmbedder("emb", EncoderOptions(model_dir=str(onnx_models["wide"])))
    with pytest.raises(ValueError, match="holds an ONNX export; SentenceEmbedder serves torch"):
        embedder.load()
    half = EncoderOptions(model_dir=str(onnx_models["wide"]), dtype="float16")
    with pytest.raises(ValueError, match="exported in; leave --dtype auto"):
        SequenceClassifier("clf", half).load()
    assert pick_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    gpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert pick_providers("cuda:1", gpu)[0] == ("CUDAExecutionProvider", {"device_id": "1"})
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        pick_providers("tpu", gpu)
    with pytest.raises(ValueError, match="no CUDA provider"):
        pick_providers("cuda", ["CPUExecutionProvider"])
