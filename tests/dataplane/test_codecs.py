"""Pure codecs: payload decoding, tensors, softmax/top-k, ensemble aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from pipeline_predictors.aggregator import aggregate, member_scores
from pipeline_predictors.batching import length_buckets
from pipeline_serving.codecs import (
    TextInstance,
    TokenInstance,
    instance_count,
    instances_from_v1,
    instances_from_v2,
    non_finite_output,
    output_array,
    pad,
    softmax,
    strip_padding,
    v2_input,
    v2_response,
)
from pipeline_transformers.codecs import (
    classification_v1,
    classification_v2,
    logits_from_response,
    texts_from_request,
    tokenized_request,
    top_k,
)

pytestmark = pytest.mark.dataplane


def test_v1_instances_of_every_shape() -> None:
    got = instances_from_v1(
        {
            "instances": [
                "plain text",
                {"text": "with lineage", "revisions": {"tok/transformer": "r1"}},
                {"input_ids": [2, 7, 9, 0, 0], "attention_mask": [1, 1, 1, 0, 0]},
            ]
        }
    )
    assert got == [
        TextInstance("plain text"),
        TextInstance("with lineage", {"tok/transformer": "r1"}),
        TokenInstance((2, 7, 9)),
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], 'expected a JSON object with an "instances" list'),
        ({"instances": "text"}, '"instances" must be a list, got str'),
        ({"instances": []}, '"instances" is empty'),
        ({"instances": [""]}, "instance 0 is an empty string"),
        ({"instances": ["ok", 3]}, "instance 1: expected a string"),
        ({"instances": [{"text": 5}]}, "'text' must be a string, got int"),
        ({"instances": [{"input_ids": ["a"]}]}, "expected integers only"),
        ({"instances": [{"input_ids": [1, 2], "attention_mask": [1]}]}, "has 1 positions"),
        ({"instances": [{"input_ids": [1], "attention_mask": [0]}]}, "masks every token"),
    ],
)
def test_v1_errors_say_what_is_wrong(payload: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        instances_from_v1(payload)


def bytes_request(texts: list[str]) -> InferRequest:
    return InferRequest("m", [InferInput("text", [len(texts)], "BYTES", texts)])


def test_v2_text_and_token_inputs() -> None:
    assert instances_from_v2(bytes_request(["a b", "c"])) == [
        TextInstance("a b"),
        TextInstance("c"),
    ]
    req = tokenized_request([(2, 5, 3), (2, 3)], "m", pad_id=0)
    assert [i.name for i in req.inputs] == ["input_ids", "attention_mask"]
    assert req.inputs[0].shape == [2, 3]
    assert instances_from_v2(req) == [TokenInstance((2, 5, 3)), TokenInstance((2, 3))]


def test_tensors_to_and_from_the_predictor_travel_as_raw_bytes() -> None:
    body, json_length = tokenized_request([(2, 5, 3), (2, 3)], "m", pad_id=0).to_rest()
    assert isinstance(body, bytes)
    assert json_length is not None and json_length < len(body)  # raw tensors after the JSON
    request = InferRequest.from_bytes(body, json_length, "m")
    assert request.use_binary_outputs  # the predictor is asked to answer in kind
    assert instances_from_v2(request) == [TokenInstance((2, 5, 3)), TokenInstance((2, 3))]
    logits = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -3.5]], dtype=np.float32)
    labels = np.array(["c", "a"], dtype=object)
    response = v2_response("m", {"logits": logits, "label": labels}, "id", binary=True)
    body, json_length = response.to_rest()
    assert isinstance(body, bytes)
    assert json_length is not None
    decoded = InferResponse.from_bytes(body, json_length)
    np.testing.assert_array_equal(output_array(decoded, "logits"), logits)
    assert output_array(decoded, "label").tolist() == ["c", "a"]
    as_json, no_length = v2_response("m", {"logits": logits}, "id").to_rest()
    assert no_length is None
    assert isinstance(as_json, dict)
    assert as_json["outputs"][0]["data"] == logits.reshape(-1).tolist()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (InferRequest("m", []), "the request has no inputs"),
        (InferRequest("m", [InferInput("x", [1], "FP32", [1.0])]), "got \\['x'\\]"),
        (InferRequest("m", [InferInput("text", [1], "FP32", [1.0])]), "must be BYTES"),
        (InferRequest("m", [InferInput("text", [1], "BYTES", [""])]), "element 0 is empty"),
        (InferRequest("m", [InferInput("input_ids", [3], "INT64", [1, 2, 3])]), "shape \\[batch"),
        (
            InferRequest("m", [InferInput("input_ids", [2, 2], "INT64", [1, 2, 3])]),
            "does not match",
        ),
    ],
)
def test_v2_errors_say_what_is_wrong(request_: InferRequest, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        instances_from_v2(request_)


def test_pad_and_strip_padding_round_trip() -> None:
    ids, mask = pad([(1, 2, 3), (4,)], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert strip_padding(ids[1].tolist(), mask[1].tolist()) == (4,)


def test_length_buckets_split_off_a_long_row_when_padding_costs_more_than_a_pass() -> None:
    lengths = [12, 60, 10, 11, 13, 12]
    # Padding five short rows to 60 wastes ~240 positions; a second pass costs 50.
    assert length_buckets(lengths, pass_cost=50) == [[2, 3, 0, 5, 4], [1]]
    # A pass dearer than the padding it saves: one group.
    assert length_buckets(lengths, pass_cost=1000) == [[2, 3, 0, 5, 4, 1]]
    assert length_buckets(lengths, pass_cost=float("inf")) == [[2, 3, 0, 5, 4, 1]]


def test_length_buckets_cover_every_row_once() -> None:
    lengths = [5, 9, 30, 31, 7, 64, 8, 33, 5]
    for cost in (0.0, 3.0, 20.0, 100.0):
        groups = length_buckets(lengths, cost)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        assert all(groups)
    # Free passes: one group per distinct length.
    assert len(length_buckets(lengths, 0.0)) == len(set(lengths))
    assert length_buckets([], 10.0) == []


def test_softmax_is_stable_and_normalized() -> None:
    p = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]]))
    assert np.allclose(p.sum(axis=-1), 1.0)
    assert np.allclose(p[0], [0.5, 0.5, 0.0])
    assert np.argmax(p[1]) == 2


def test_top_k_orders_best_first_and_breaks_ties_by_index() -> None:
    res = top_k(np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]]), 2, ["a", "b", "c"])
    assert res[0].labels == ("b", "c")
    assert res[0].scores == (0.5, 0.3)
    assert res[1].labels == ("a", "b")
    assert top_k(np.array([[0.1, 0.9]]), 5, ["x"])[0].labels == ("LABEL_1", "x")


def test_classification_payloads() -> None:
    res = top_k(np.array([[0.1, 0.9]]), 1, ["no", "yes"])
    assert classification_v1(res, [{"a/transformer": "r1"}]) == {
        "predictions": [
            {
                "label": "yes",
                "score": 0.9,
                "labels": ["yes"],
                "scores": [0.9],
                "revisions": {"a/transformer": "r1"},
            }
        ]
    }
    v2 = classification_v2(res, "m")
    assert output_array(v2, "label").tolist() == [["yes"]]


def test_texts_from_request_refuses_token_ids() -> None:
    with pytest.raises(InvalidInput, match="takes text, not token ids"):
        texts_from_request({"instances": [{"input_ids": [1, 2]}]})
    assert texts_from_request(bytes_request(["hi"])) == (["hi"], [{}])


def test_logits_from_v1_and_v2_responses() -> None:
    v2 = v2_response("m", {"logits": np.array([[1.0, 2.0]])})
    assert logits_from_response(v2).tolist() == [[1.0, 2.0]]
    assert isinstance(v2, InferResponse)
    rest, _ = v2.to_rest()
    assert logits_from_response(rest).tolist() == [[1.0, 2.0]]
    assert logits_from_response({"predictions": [{"logits": [3.0, 4.0]}]}).tolist() == [[3.0, 4.0]]
    with pytest.raises(InvalidInput, match="no output named 'logits'"):
        logits_from_response(v2_response("m", {"other": np.array([[1.0]])}))


def v1_member(rows: list[list[float]], label: str | None = None) -> dict[str, object]:
    return {"predictions": [{"probabilities": r, "label": label} for r in rows]}


def test_aggregate_mean_and_vote() -> None:
    a = member_scores("a", v1_member([[0.6, 0.4], [0.1, 0.9]]), "probabilities")
    b = member_scores("b", v1_member([[0.2, 0.8], [0.3, 0.7]]), "probabilities")
    c = member_scores("c", {"predictions": [[0.7, 0.3], [0.2, 0.8]]}, "probabilities")
    mean = aggregate([a, b], "mean", labels=["no", "yes"])
    assert mean[0]["label"] == "yes"
    assert mean[0]["probabilities"] == pytest.approx([0.4, 0.6])
    vote = aggregate([a, b, c], "vote", labels=["no", "yes"])
    assert vote[0]["label"] == "no"
    assert vote[0]["votes"] == {"no": 2, "yes": 1}
    assert vote[0]["score"] == pytest.approx(2 / 3)
    assert vote[1]["label"] == "yes"
    assert vote[1]["votes"] == {"yes": 3}


def test_vote_tie_goes_to_the_higher_mean() -> None:
    a = member_scores("a", v1_member([[0.9, 0.1]]), "probabilities")
    b = member_scores("b", v1_member([[0.4, 0.6]]), "probabilities")
    assert aggregate([a, b], "vote")[0]["label"] == "0"


def test_aggregate_logits_and_v2_members() -> None:
    v2, _ = v2_response("m", {"logits": np.array([[0.0, 2.0]])}).to_rest()
    a = member_scores("a", v2, "logits")
    b = member_scores("b", {"predictions": [{"logits": [0.0, 0.0]}]}, "logits")
    out = aggregate([a, b], "mean", "logits")
    assert out[0]["probabilities"] == pytest.approx(softmax(np.array([0.0, 1.0])).tolist())


def test_aggregate_errors() -> None:
    a = member_scores("a", v1_member([[0.5, 0.5]]), "probabilities")
    b = member_scores("b", v1_member([[0.5, 0.5], [0.5, 0.5]]), "probabilities")
    with pytest.raises(InvalidInput, match="disagree"):
        aggregate([a, b])
    with pytest.raises(InvalidInput, match="member 'x': prediction 0 has no numeric"):
        member_scores("x", {"predictions": [{"label": "a"}]}, "probabilities")
    with pytest.raises(InvalidInput, match="expected a v1 'predictions' list"):
        member_scores("x", {"error": "boom"}, "probabilities")


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            InferRequest(
                "m",
                [
                    InferInput("input_ids", [1, 2], "INT64", [2, 3]),
                    InferInput("attention_mask", [1, 2], "FP32", [1.0, NAN]),
                ],
            ),
            "tensor 'attention_mask' has a non-finite value: nan at [0, 1]",
        ),
        (
            InferRequest(
                "m",
                [
                    v2_input("input_ids", np.array([[2, 3]])),
                    v2_input("attention_mask", np.array([[-INF, 1.0]], dtype=np.float32)),
                ],
            ),
            "tensor 'attention_mask' has a non-finite value: -inf at [0, 0]",
        ),
    ],
    ids=["json", "binary"],
)
def test_non_finite_input_tensors_are_refused_naming_them(
    request_: InferRequest, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        instances_from_v2(request_)
    assert str(refused.value) == message


def test_non_finite_scores_received_are_refused() -> None:
    """A predictor's binary NaN, a JSON encoder's null for NaN (v2 and v1), an Ensemble
    member's: none becomes a score."""
    binary = v2_response("m", {"logits": np.array([[1.0, NAN]], dtype=np.float32)}, binary=True)
    body, length = binary.to_rest()
    assert length is not None
    with pytest.raises(
        InvalidInput, match=r"tensor 'logits' has a non-finite value: nan at \[0, 1\]"
    ):
        logits_from_response(InferResponse.from_bytes(body, length))
    nulled = {
        "outputs": [{"name": "logits", "shape": [1, 2], "datatype": "FP32", "data": [None, 1]}]
    }
    with pytest.raises(
        InvalidInput, match=r"output 'logits' has a non-finite value: nan at \[0, 0\]"
    ):
        logits_from_response(nulled)
    with pytest.raises(InvalidInput, match="logits has a non-finite value"):
        logits_from_response({"predictions": [{"logits": [1.0, None]}]})
    with pytest.raises(InvalidInput, match="output 'logits' has a non-finite value"):
        member_scores("a", nulled, "logits")


@pytest.mark.parametrize(
    ("response", "where"),
    [
        ({"predictions": [{"label": "a", "score": 0.5, "scores": [0.5, 0.5]}]}, None),
        ({"predictions": [[1.0, 2, True]], "members": ["a"]}, None),
        ({"predictions": [{"label": "a", "score": NAN}]}, "predictions[0].score is nan"),
        ({"predictions": [[0.1, 0.2], [0.3, -INF]]}, "predictions[1][1] is -inf"),
        (
            {"predictions": [{"documents": [{"id": "d", "score": INF}]}]},
            "predictions[0].documents[0].score is inf",
        ),
        ([1.0, NAN], "[1] is nan"),
        (NAN, "the response is nan"),
        ({"predictions": [[1e308, 1e308]]}, None),  # their sum overflows; neither is infinite
        (
            v2_response(
                "m", {"logits": np.array([[0.0, 1.0]]), "label": np.array(["a"], dtype=object)}
            ),
            None,
        ),
        (v2_response("m", {"logits": np.array([[0.0, NAN]])}), "output 'logits': nan at [0, 1]"),
        (v2_response("m", {"e": np.array([[INF]])}, binary=True), "output 'e': inf at [0, 0]"),
    ],
)
def test_non_finite_outputs_are_found_where_they_are(response: object, where: str | None) -> None:
    assert non_finite_output(response) == where


@pytest.mark.parametrize(
    ("body", "count"),
    [
        ({"instances": ["a", "b", "c"]}, 3),
        ({"predictions": [[0.1], [0.2]]}, 2),
        (bytes_request(["a", "b"]), 2),
        (tokenized_request([(1, 2), (3,), (4,)], "m", pad_id=0), 3),
        ({"a": {"predictions": [1, 2]}, "b": {"outputs": [{"name": "x", "shape": [5, 2]}]}}, 5),
        ({"text": "no instances"}, 0),
        ([1, 2, 3], 0),
    ],
)
def test_instance_count_of_every_request_shape(body: object, count: int) -> None:
    assert instance_count(body) == count
