"""The stages against real open-inference-protocol clients: Triton's HTTP client
(``tritonclient.http``) and KServe's own ``InferenceRESTClient``, JSON and binary tensors alike.

A classifier (with a confidence threshold), an embedding predictor and a transformer in front
of the classifier run as processes; the clients read their metadata, infer, and ask for some
outputs only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient  # type: ignore[import-untyped]
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput
from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

from pipeline_serving.codecs import v2_response
from pipeline_transformers.tokenizer import TokenizerTransformer

from .conftest import Models
from .harness import CORPUS, Baseline, Stage, stage, start_all

pytestmark = pytest.mark.dataplane

TEXTS = CORPUS[:3]
THRESHOLD = 0.5


@dataclass(frozen=True)
class Servers:
    classifier: Stage  # with a confidence threshold: logits, probabilities, label, confident
    embedding: Stage
    transformer: Stage  # top 2 labels from the classifier


@pytest.fixture(scope="module")
def servers(models: Models, log_dir: Path) -> Iterator[Servers]:
    model_dir = str(models.model_r1)
    clf = stage(
        "clients-classifier",
        "pipeline_predictors.classifier",
        ["--model_dir", model_dir, "--num_threads", "1", "--confidence_threshold", str(THRESHOLD)],
        log_dir,
        model_name="clf",
    )
    emb = stage(
        "clients-embedding",
        "pipeline_predictors.embedding",
        ["--model_dir", model_dir, "--num_threads", "1"],
        log_dir,
        model_name="emb",
    )
    tf = stage(
        "clients-transformer",
        "pipeline_transformers.tokenizer",
        [
            *("--model_dir", model_dir, "--top_k", "2"),
            *("--predictor_host", f"127.0.0.1:{clf.port}", "--predictor_protocol", "v2"),
        ],
        log_dir,
        model_name="clf",
    )
    everything = [clf, emb, tf]
    start_all(everything)
    try:
        yield Servers(clf, emb, tf)
    finally:
        for s in everything:
            s.stop()


def triton(server: Stage) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(f"127.0.0.1:{server.port}", network_timeout=30.0)


def text_input(binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=binary)
    return tensor


def requested(names: list[str], binary: bool) -> list[httpclient.InferRequestedOutput]:
    return [httpclient.InferRequestedOutput(name, binary_data=binary) for name in names]


def strings(values: np.ndarray) -> list[str]:
    """A BYTES output's elements as str (JSON answers hold str, binary ones bytes)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.reshape(-1)]


def output_names(result: httpclient.InferResult) -> list[str]:
    return [o["name"] for o in result.get_response()["outputs"]]


def test_triton_reads_each_stages_metadata(servers: Servers) -> None:
    clf = triton(servers.classifier).get_model_metadata("clf")
    inputs = {"text": ("BYTES", [-1]), "input_ids": ("INT64", [-1, -1])}
    inputs["attention_mask"] = inputs["input_ids"]
    assert {t["name"]: (t["datatype"], t["shape"]) for t in clf["inputs"]} == inputs
    assert {t["name"]: (t["datatype"], t["shape"]) for t in clf["outputs"]} == {
        "logits": ("FP32", [-1, 3]),
        "probabilities": ("FP32", [-1, 3]),
        "label": ("BYTES", [-1]),
        "confident": ("BOOL", [-1]),
    }
    emb = triton(servers.embedding).get_model_metadata("emb")
    assert [t["name"] for t in emb["inputs"]] == ["text", "input_ids", "attention_mask"]
    ((embedding,),) = [emb["outputs"]]
    assert embedding["name"] == "embedding" and embedding["datatype"] == "FP32"
    answer = triton(servers.embedding).infer("emb", [text_input(binary=True)])
    assert embedding["shape"] == [-1, answer.as_numpy("embedding").shape[1]]
    tf = triton(servers.transformer).get_model_metadata("clf")
    assert tf["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert tf["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1, 2]},
        {"name": "score", "datatype": "FP32", "shape": [-1, 2]},
    ]


def test_tokenize_only_metadata_lists_the_tokens(models: Models) -> None:
    tokenizer = TokenizerTransformer("tok", str(models.model_r1))
    tokenizer.load()
    assert tokenizer.get_output_types() == [
        {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]},
    ]


def test_triton_json_and_binary_tensors_get_the_same_answer(
    servers: Servers, baseline: Baseline
) -> None:
    expected = np.array(baseline.probabilities(TEXTS))
    labels = [baseline.labels[i] for i in expected.argmax(axis=1)]
    for binary in (False, True):  # JSON: tritonclient sends no Content-Type
        result = triton(servers.classifier).infer("clf", [text_input(binary)])
        assert output_names(result) == ["logits", "probabilities", "label", "confident"]
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
        assert strings(result.as_numpy("label")) == labels
        confident = (expected.max(axis=1) >= THRESHOLD).tolist()
        assert result.as_numpy("confident").tolist() == confident


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_gets_the_outputs_it_asks_for(
    servers: Servers, baseline: Baseline, binary: bool
) -> None:
    client = triton(servers.classifier)
    wanted = ["label", "probabilities"]
    result = client.infer("clf", [text_input(binary)], outputs=requested(wanted, binary))
    assert output_names(result) == wanted
    assert result.as_numpy("logits") is None
    expected = np.array(baseline.probabilities(TEXTS))
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
    for output in result.get_response()["outputs"]:
        assert ("data" in output) is not binary  # binary: raw after the JSON header
    # Each requested output raw or JSON as it says, whatever the others do.
    mixed = client.infer(
        "clf",
        [text_input(binary)],
        outputs=[*requested(["label"], True), *requested(["confident"], False)],
    )
    label, confident = mixed.get_response()["outputs"]
    assert "data" not in label and "data" in confident
    assert mixed.as_numpy("confident").tolist() == (expected.max(axis=1) >= THRESHOLD).tolist()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_an_unknown_requested_output_is_a_400_naming_it(servers: Servers, binary: bool) -> None:
    with pytest.raises(InferenceServerException) as failure:
        triton(servers.classifier).infer(
            "clf", [text_input(binary)], outputs=requested(["label", "logit"], binary)
        )
    assert failure.value.status() == "400"
    assert "no output 'logit'" in failure.value.message()
    assert "'logits'" in failure.value.message()  # and what there is instead


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_through_the_transformer_and_the_embedding(
    servers: Servers, baseline: Baseline, binary: bool
) -> None:
    result = triton(servers.transformer).infer(
        "clf", [text_input(binary)], outputs=requested(["label"], binary)
    )
    assert output_names(result) == ["label"]
    top1 = [label for label, _ in baseline.top1(TEXTS)]
    assert strings(result.as_numpy("label")[:, 0]) == top1
    embedded = triton(servers.embedding).infer("emb", [text_input(binary)])
    vectors = embedded.as_numpy("embedding")
    assert vectors.shape[0] == len(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def kserve_infer(server: Stage, request: InferRequest) -> InferResponse:
    async def call() -> InferResponse:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            response = await client.infer(server.url, request, model_name=request.model_name)
        finally:
            await client.close()
        assert isinstance(response, InferResponse)
        return response

    return asyncio.run(call())


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_client_gets_the_outputs_it_asks_for(
    servers: Servers, baseline: Baseline, binary: bool
) -> None:
    text = InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=binary)
    request = InferRequest(
        "clf",
        [text],
        request_outputs=[RequestedOutput("probabilities", {"binary_data": binary})],
    )
    response = kserve_infer(servers.classifier, request)
    assert [o.name for o in response.outputs] == ["probabilities"]
    expected = np.array(baseline.probabilities(TEXTS))
    np.testing.assert_allclose(response.outputs[0].as_numpy(), expected, atol=1e-5)
    unknown = InferRequest("clf", [text], request_outputs=[RequestedOutput("scores")])
    with pytest.raises(httpx.HTTPStatusError, match="no output 'scores'") as failure:
        kserve_infer(servers.classifier, unknown)
    assert failure.value.response.status_code == 400


def test_a_body_without_the_binary_header_is_json_whatever_its_content_type(
    servers: Servers,
) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": TEXTS[:1]}]}
    for content_type in (None, "application/octet-stream", "text/plain; charset=utf-8"):
        headers = {"content-type": content_type} if content_type else {}
        r = httpx.post(
            servers.classifier.v2_url,
            content=json.dumps(body),
            headers=headers,
            timeout=30.0,
        )
        assert r.status_code == 200, (content_type, r.text)
        assert [o["name"] for o in r.json()["outputs"]][:3] == ["logits", "probabilities", "label"]


def test_a_requested_output_without_binary_data_follows_binary_data_output() -> None:
    logits = np.array([[0.5, -1.0]], dtype=np.float32)
    labels = np.array(["a"], dtype=object)
    outputs = {"logits": logits, "label": labels}
    chosen = [RequestedOutput("label"), RequestedOutput("logits", {"binary_data": False})]
    body, json_length = v2_response("m", outputs, binary=True, requested=chosen).to_rest()
    assert isinstance(body, bytes) and json_length is not None
    label, as_json = json.loads(body[:json_length])["outputs"]
    assert "data" not in label  # raw, as binary_data_output says
    assert as_json["name"] == "logits" and as_json["data"] == [0.5, -1.0]  # JSON, as it asked
    decoded = InferResponse.from_bytes(body, json_length)
    assert decoded.outputs[0].as_numpy().tolist() == ["a"]
