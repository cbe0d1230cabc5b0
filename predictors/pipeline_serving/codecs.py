"""Pure codecs between request payloads (v1 JSON, v2 open inference protocol) and arrays.

No model, no I/O: everything here is a function of its arguments, so it is tested directly.
Errors a client can fix raise ``kserve.errors.InvalidInput`` (answered with HTTP 400) and say
what was wrong and where. Numbers received are finite: a NaN or an infinity in a tensor is
refused like any other bad input.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
)

TEXT_INPUT = "text"
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
REVISIONS = "revisions"
BINARY_OUTPUTS = "binary_data_output"  # v2 request parameter: answer with raw output tensors
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})


@dataclass(frozen=True)
class TextInstance:
    """One raw-text instance, with the revisions of the stages it went through so far."""

    text: str
    revisions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenInstance:
    """One pre-tokenized instance (padding already removed)."""

    input_ids: tuple[int, ...]
    revisions: Mapping[str, str] = field(default_factory=dict)


Instance = TextInstance | TokenInstance


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def non_finite_at(array: np.ndarray) -> str | None:
    """``nan at [0, 2]``: the first NaN or infinity of a float array, else None."""
    if array.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    index = [int(i) for i in np.argwhere(bad)[0]]
    return f"{array[tuple(index)]} at {index}"


def require_finite(array: np.ndarray, what: str) -> np.ndarray:
    """``array``, unless it holds a NaN or an infinity: then ``InvalidInput`` naming ``what``."""
    where = non_finite_at(array)
    if where is not None:
        raise InvalidInput(f"{what} has a non-finite value: {where}")
    return array


def _non_finite_path(value: object) -> tuple[float, list[str | int]] | None:
    """The first NaN or infinity in a JSON-like value and its path (innermost key first)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (value, [])
    items: Iterable[tuple[str | int, object]]
    if isinstance(value, list):
        # Numbers only, all finite (a NaN or an infinity makes the sum one): the usual case,
        # summed in C. Anything else is walked.
        with contextlib.suppress(TypeError, OverflowError):
            if math.isfinite(sum(value)):
                return None
        items = enumerate(value)
    elif isinstance(value, Mapping):
        items = value.items()
    else:
        return None
    for key, item in items:
        found = _non_finite_path(item)
        if found is not None:
            found[1].append(key)
            return found
    return None


def non_finite_output(response: object) -> str | None:
    """Where a response (v1 body or ``InferResponse``) holds a NaN or an infinity, which JSON
    would carry as null: ``output 'logits': nan at [0, 2]``, ``predictions[0].score is nan``;
    None when every number is finite."""
    if isinstance(response, InferResponse):
        for output in response.outputs:
            if output.datatype not in FLOAT_DATATYPES:
                continue
            if isinstance(output.data, list) and _non_finite_path(output.data) is None:
                continue  # JSON data, found finite without building an array
            where = non_finite_at(np.asarray(output.as_numpy()))
            if where is not None:
                return f"output {output.name!r}: {where}"
        return None
    found = _non_finite_path(response)
    if found is None:
        return None
    value, path = found
    keys = [f"[{k}]" if isinstance(k, int) else f".{k}" for k in reversed(path)]
    return f"{''.join(keys).lstrip('.') or 'the response'} is {value}"


def instance_count(body: object) -> int:
    """The instances of a request: the batch dimension of a v2 request's inputs, the length of
    a v1 ``instances`` (or ``predictions``) list, or for an Ensemble node's response
    ``{step: response}`` (the aggregator's request), the most that one member holds."""
    if isinstance(body, InferRequest):
        return max((int(t.shape[0]) for t in body.inputs or [] if t.shape), default=0)
    listed = _listed_instances(body)
    if listed is not None:
        return listed
    if isinstance(body, Mapping):
        return max((_listed_instances(member) or 0 for member in body.values()), default=0)
    return 0


def _listed_instances(body: object) -> int | None:
    """The length of a v1 body's instances or predictions, the batch dimension of a v2 JSON
    response's outputs; None for anything else."""
    if not isinstance(body, Mapping):
        return None
    for key in ("instances", "predictions"):
        if isinstance(body.get(key), list):
            return len(body[key])
    outputs = body.get("outputs")
    if isinstance(outputs, list):
        shapes = [o.get("shape") for o in outputs if isinstance(o, Mapping)]
        return max(
            (s[0] for s in shapes if isinstance(s, list) and s and isinstance(s[0], int)),
            default=0,
        )
    return None


def _revisions(item: Mapping[str, Any], where: str) -> dict[str, str]:
    raw = item.get(REVISIONS, {})
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise InvalidInput(f"{where}: {REVISIONS!r} must be an object of strings")
    return dict(raw)


def _int_list(value: object, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{where}: expected a non-empty list of integers")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise InvalidInput(f"{where}: expected integers only")
    return value


def strip_padding(
    input_ids: Sequence[int], attention_mask: Sequence[int] | None
) -> tuple[int, ...]:
    """Drop the positions whose attention mask is 0 (padding)."""
    if attention_mask is None:
        return tuple(int(i) for i in input_ids)
    if len(attention_mask) != len(input_ids):
        raise InvalidInput(
            f"{ATTENTION_MASK} has {len(attention_mask)} positions but {INPUT_IDS} has "
            f"{len(input_ids)}"
        )
    kept = tuple(int(i) for i, m in zip(input_ids, attention_mask, strict=True) if m)
    if not kept:
        raise InvalidInput(f"{ATTENTION_MASK} masks every token of an instance")
    return kept


def instance_from_v1(item: object, index: int) -> Instance:
    """Decode one v1 instance: a string, ``{"text": ...}`` or ``{"input_ids": [...], ...}``."""
    where = f"instance {index}"
    if isinstance(item, str):
        if not item.strip():
            raise InvalidInput(f"{where} is an empty string")
        return TextInstance(item)
    if isinstance(item, Mapping):
        revisions = _revisions(item, where)
        if TEXT_INPUT in item:
            text = item[TEXT_INPUT]
            if not isinstance(text, str):
                raise InvalidInput(f"{where}: 'text' must be a string, got {_type_name(text)}")
            if not text.strip():
                raise InvalidInput(f"{where}: 'text' is empty")
            return TextInstance(text, revisions)
        if INPUT_IDS in item:
            ids = _int_list(item[INPUT_IDS], f"{where}: {INPUT_IDS!r}")
            mask = item.get(ATTENTION_MASK)
            if mask is not None:
                mask = _int_list(mask, f"{where}: {ATTENTION_MASK!r}")
            return TokenInstance(strip_padding(ids, mask), revisions)
    raise InvalidInput(
        f"{where}: expected a string, or an object with 'text' or 'input_ids', "
        f"got {_type_name(item)}"
    )


def instances_from_v1(payload: object) -> list[Instance]:
    """Decode a v1 request body ``{"instances": [...]}``."""
    if not isinstance(payload, Mapping) or "instances" not in payload:
        raise InvalidInput('expected a JSON object with an "instances" list')
    items = payload["instances"]
    if not isinstance(items, list):
        raise InvalidInput(f'"instances" must be a list, got {_type_name(items)}')
    if not items:
        raise InvalidInput('"instances" is empty')
    return [instance_from_v1(item, i) for i, item in enumerate(items)]


def tensor_values(tensor: InferInput | InferOutput) -> np.ndarray:
    """A received tensor's data as a numpy array of its declared shape (JSON or binary data);
    a NaN or an infinity in it is ``InvalidInput``."""
    try:
        if tensor.datatype == "BYTES" and getattr(tensor, "_raw_data", None) is None:
            flat = np.array(
                [
                    v.decode("utf-8") if isinstance(v, bytes) else v
                    for v in np.asarray(tensor.data, dtype=object).reshape(-1)
                ],
                dtype=object,
            )
            return flat.reshape(tensor.shape)
        values = np.asarray(tensor.as_numpy())
    except InvalidInput:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"tensor {tensor.name!r}: data does not match shape {tensor.shape} and datatype "
            f"{tensor.datatype} ({exc})"
        ) from exc
    return require_finite(values, f"tensor {tensor.name!r}")


def _input(request: InferRequest, name: str) -> InferInput | None:
    for tensor in request.inputs or []:
        if tensor.name == name:
            return tensor
    return None


def texts_from_v2(request: InferRequest) -> list[str]:
    """The strings of the BYTES input named ``text`` (shape ``[n]`` or ``[n, 1]``)."""
    tensor = _input(request, TEXT_INPUT)
    if tensor is None:
        names = [t.name for t in request.inputs or []]
        raise InvalidInput(f"expected a BYTES input named {TEXT_INPUT!r}, got inputs {names}")
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"input {TEXT_INPUT!r} must be BYTES, got {tensor.datatype}")
    values = tensor_values(tensor).reshape(-1)
    if values.size == 0:
        raise InvalidInput(f"input {TEXT_INPUT!r} is empty")
    texts: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"input {TEXT_INPUT!r} element {i} is empty or not a string")
        texts.append(value)
    return texts


def instances_from_v2(request: InferRequest) -> list[Instance]:
    """Decode a v2 request: a BYTES ``text`` input, or INT ``input_ids`` (+ ``attention_mask``)."""
    if not request.inputs:
        raise InvalidInput("the request has no inputs")
    if _input(request, TEXT_INPUT) is not None:
        return [TextInstance(t) for t in texts_from_v2(request)]
    ids_tensor = _input(request, INPUT_IDS)
    if ids_tensor is None:
        names = [t.name for t in request.inputs]
        raise InvalidInput(
            f"expected an input named {TEXT_INPUT!r} (BYTES) or {INPUT_IDS!r} (INT64), got {names}"
        )
    if not ids_tensor.datatype.startswith(("INT", "UINT")):
        raise InvalidInput(
            f"input {INPUT_IDS!r} must be an integer tensor, got {ids_tensor.datatype}"
        )
    ids = tensor_values(ids_tensor)
    if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise InvalidInput(
            f"input {INPUT_IDS!r} must have shape [batch, tokens], got {list(ids.shape)}"
        )
    mask_tensor = _input(request, ATTENTION_MASK)
    mask = tensor_values(mask_tensor) if mask_tensor is not None else None
    if mask is not None and mask.shape != ids.shape:
        raise InvalidInput(
            f"input {ATTENTION_MASK!r} has shape {list(mask.shape)} but {INPUT_IDS!r} has "
            f"{list(ids.shape)}"
        )
    return [
        TokenInstance(strip_padding(ids[i].tolist(), None if mask is None else mask[i].tolist()))
        for i in range(ids.shape[0])
    ]


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token rows to one length: ``(input_ids, attention_mask)`` as int64 arrays."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def v2_tensor(array: np.ndarray) -> tuple[str, np.ndarray]:
    """The v2 datatype for a numpy array (FP32, INT64, BOOL or BYTES) and the array in that
    type."""
    if array.dtype.kind in "fc":
        return "FP32", array.astype(np.float32, copy=False)
    if array.dtype.kind == "b":
        return "BOOL", array
    if array.dtype.kind in "iu":
        return "INT64", array.astype(np.int64, copy=False)
    return "BYTES", np.array([str(v) for v in array.reshape(-1)], dtype=object).reshape(array.shape)


def v2_output(name: str, array: np.ndarray, binary: bool = False) -> InferOutput:
    """A v2 output tensor from a numpy array: JSON data, or raw bytes after the JSON header
    (the binary tensor extension) when ``binary``."""
    datatype, typed = v2_tensor(array)
    if binary:
        output = InferOutput(name=name, shape=list(array.shape), datatype=datatype)
        output.set_data_from_numpy(typed, binary_data=True)
        return output
    data: list[Any] = typed.reshape(-1).tolist()
    return InferOutput(name=name, shape=list(array.shape), datatype=datatype, data=data)


def v2_input(name: str, array: np.ndarray) -> InferInput:
    """A v2 input tensor from a numpy array, as raw bytes (the binary tensor extension)."""
    datatype, typed = v2_tensor(array)
    tensor = InferInput(name=name, shape=list(array.shape), datatype=datatype)
    tensor.set_data_from_numpy(typed, binary_data=True)
    return tensor


def tensor_metadata(name: str, datatype: str, shape: Sequence[int]) -> dict[str, Any]:
    """One input or output of a model's v2 metadata; -1 in ``shape``: any size."""
    return {"name": name, "datatype": datatype, "shape": list(shape)}


def check_requested_outputs(
    requested: Sequence[RequestedOutput] | None, available: Collection[str], model_name: str
) -> None:
    """``InvalidInput`` naming the first requested output that is not ``available``."""
    for output in requested or []:
        if output.name not in available:
            raise InvalidInput(
                f"model {model_name!r} has no output {output.name!r}; its outputs: "
                f"{list(available)}"
            )


def _binary_data(output: RequestedOutput, default: bool) -> bool:
    """A requested output's own ``binary_data``, else the request's ``binary_data_output``."""
    value = output.binary_data
    return value if isinstance(value, bool) else default


def v2_response(
    model_name: str,
    outputs: Mapping[str, np.ndarray],
    request_id: str | None = None,
    parameters: Mapping[str, str | int | bool] | None = None,
    binary: bool = False,
    requested: Sequence[RequestedOutput] | None = None,
) -> InferResponse:
    """A v2 response; ``binary`` (the request's ``binary_data_output``) sends raw tensors.

    ``requested`` (the request's ``outputs``) keeps only those outputs, in that order, each raw
    or JSON as its ``binary_data`` says (else as ``binary``); one not in ``outputs`` is
    ``InvalidInput``.
    """
    check_requested_outputs(requested, outputs, model_name)
    picks = (
        [(r.name, _binary_data(r, binary)) for r in requested]
        if requested
        else [(name, binary) for name in outputs]
    )
    return InferResponse(
        response_id=request_id or "",
        model_name=model_name,
        infer_outputs=[v2_output(name, outputs[name], raw) for name, raw in picks],
        parameters=dict(parameters) if parameters else None,
        use_binary_outputs=binary,
        # KServe sends each requested output raw or JSON as its own binary_data says.
        requested_outputs=(
            [RequestedOutput(name, {"binary_data": raw}) for name, raw in picks]
            if requested
            else None
        ),
    )


def output_array(response: InferResponse | Mapping[str, Any], name: str) -> np.ndarray:
    """The named output of a v2 response (object or JSON dict) as a numpy array."""
    if isinstance(response, InferResponse):
        for out in response.outputs:
            if out.name == name:
                return tensor_values(out)
        names = [o.name for o in response.outputs]
    else:
        outputs = response.get("outputs")
        if not isinstance(outputs, list):
            raise InvalidInput("a v2 response needs an 'outputs' list")
        for out in outputs:
            if isinstance(out, Mapping) and out.get("name") == name:
                # A float output's null (how JSON encoders write NaN) becomes NaN, refused.
                dtype = np.float64 if out.get("datatype") in FLOAT_DATATYPES else None
                try:
                    values = np.asarray(out["data"], dtype=dtype).reshape(out["shape"])
                except (KeyError, ValueError, TypeError) as exc:
                    raise InvalidInput(f"output {name!r} is malformed: {exc}") from exc
                return require_finite(values, f"output {name!r}")
        names = [o.get("name") for o in outputs if isinstance(o, Mapping)]
    raise InvalidInput(f"no output named {name!r} in the response (outputs: {names})")


def merge_revisions(base: Mapping[str, str], stage: str, revision: str | None) -> dict[str, str]:
    """The revisions of the stages a request went through, plus this stage's."""
    merged = dict(base)
    if revision:
        merged[stage] = revision
    return merged
