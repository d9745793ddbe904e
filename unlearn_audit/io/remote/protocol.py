"""The Open Inference Protocol's JSON (KServe v2 REST): model metadata in, typed tensors out, answers checked.

Request: ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` with ``data`` flattened row-major. Floats are
written with Python's shortest round-trip ``repr`` of the exact binary value, so an FP32 input arrives bit for
bit (the server parses a double and narrows it to the same float32). Response: ``{"outputs": [{"name",
"shape", "datatype", "data"}]}``; ``data`` may be flat or nested. Everything a server sends is checked before
it becomes a number: a malformed document, a missing output, the wrong datatype or shape, null/NaN/inf values
or labels out of range each raise :class:`EndpointProtocolError` naming the endpoint and the problem.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import EndpointProtocolError

# datatype -> numpy dtype (little-endian, the byte order we hash)
FLOAT_TYPES: dict[str, np.dtype[Any]] = {"FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
INT_TYPES: dict[str, np.dtype[Any]] = {
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
}
INPUT_TYPES = ("FP32", "FP64", "FP16", "UINT8")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model metadata; ``-1`` marks a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelMetadata:
    """``GET /v2/models/NAME``, parsed; ``sha256`` hashes the canonical JSON of the whole document."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sha256: str


def canonical_sha256(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _tensor_specs(document: dict[str, Any], key: str, where: str) -> tuple[TensorSpec, ...]:
    raw = document.get(key, [])
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise EndpointProtocolError(f"{where}: metadata field {key!r} is not a list")
    specs = []
    for index, item in enumerate(raw):
        field = f"{key}[{index}]"
        if not isinstance(item, dict):
            raise EndpointProtocolError(f"{where}: metadata {field} is not an object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not name:
            raise EndpointProtocolError(f"{where}: metadata {field} has no name")
        if not isinstance(datatype, str) or not datatype:
            raise EndpointProtocolError(f"{where}: metadata {field} ({name!r}) has no datatype")
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
            raise EndpointProtocolError(
                f"{where}: metadata {field} ({name!r}) shape {shape!r} is not a list of integers"
            )
        if any(s < -1 for s in shape):
            raise EndpointProtocolError(f"{where}: metadata {field} ({name!r}) shape {shape} has a dimension below -1")
        specs.append(TensorSpec(name, datatype.upper(), tuple(shape)))
    return tuple(specs)


def parse_metadata(document: Any, where: str) -> ModelMetadata:
    if not isinstance(document, dict):
        raise EndpointProtocolError(f"{where}: model metadata is not a JSON object")
    inputs = _tensor_specs(document, "inputs", where)
    if not inputs:
        raise EndpointProtocolError(
            f"{where}: model metadata lists no inputs; the input name, shape and datatype are needed"
        )
    versions = document.get("versions") or []
    return ModelMetadata(
        name=str(document.get("name", "")),
        versions=tuple(str(v) for v in versions) if isinstance(versions, list) else (),
        platform=str(document.get("platform", "")),
        inputs=inputs,
        outputs=_tensor_specs(document, "outputs", where),
        sha256=canonical_sha256(document),
    )


def pick_tensor(specs: Sequence[TensorSpec], wanted: str | None, kind: str, where: str) -> TensorSpec | None:
    """The tensor named ``wanted``, or the only one; ``None`` when metadata lists no outputs (read the answer)."""
    names = [s.name for s in specs]
    if wanted is not None:
        for spec in specs:
            if spec.name == wanted:
                return spec
        if not specs and kind == "output":
            return None
        raise EndpointProtocolError(f"{where}: the model has no {kind} named {wanted!r} (it has: {', '.join(names)})")
    if len(specs) == 1:
        return specs[0]
    if not specs:
        return None
    raise EndpointProtocolError(
        f"{where}: the model has {len(specs)} {kind}s ({', '.join(names)}); name the one to use ({kind}_name)"
    )


def encode_request(input_spec: TensorSpec, rows: np.ndarray, output_name: str | None) -> bytes:
    """One ``/infer`` body for ``rows`` (already in the wire dtype), data flattened row-major."""
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": input_spec.name,
                "shape": list(rows.shape),
                "datatype": input_spec.datatype,
                "data": rows.reshape(-1).tolist(),
            }
        ]
    }
    if output_name is not None:
        body["outputs"] = [{"name": output_name}]
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _find_output(document: Any, name: str | None, where: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise EndpointProtocolError(f"{where}: the inference response is not a JSON object")
    if "error" in document and "outputs" not in document:
        raise EndpointProtocolError(f"{where}: the server answered with an error: {str(document['error'])[:200]}")
    outputs = document.get("outputs")
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise EndpointProtocolError(f"{where}: the inference response has no 'outputs' list")
    if name is None:
        if len(outputs) != 1:
            names = ", ".join(str(o.get("name")) for o in outputs)
            raise EndpointProtocolError(f"{where}: the response has {len(outputs)} outputs ({names}); set output_name")
        return outputs[0]
    for output in outputs:
        if output.get("name") == name:
            return output
    names = ", ".join(str(o.get("name")) for o in outputs)
    raise EndpointProtocolError(f"{where}: the response has no output named {name!r} (got: {names})")


def decode_output(
    document: Any,
    *,
    output: TensorSpec | None,
    output_name: str | None,
    rows: int,
    num_classes: int | None,
    labels: bool,
    where: str,
) -> np.ndarray:
    """The checked output of one response: scores ``[rows, C]`` in the declared float dtype, or labels ``[rows]``.

    ``labels`` says whether integer class labels are expected instead of scores.
    """
    name = output.name if output is not None else output_name
    tensor = _find_output(document, name, where)
    label = f"output {tensor.get('name')!r}"
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str):
        raise EndpointProtocolError(f"{where}: {label} has no datatype")
    datatype = datatype.upper()
    if output is not None and datatype != output.datatype:
        raise EndpointProtocolError(
            f"{where}: {label} has datatype {datatype} but the model metadata declares {output.datatype}"
        )
    if labels and datatype not in INT_TYPES:
        raise EndpointProtocolError(f"{where}: {label} has datatype {datatype}; class labels must be an integer type")
    if not labels and datatype not in FLOAT_TYPES:
        raise EndpointProtocolError(
            f"{where}: {label} has datatype {datatype}; scores (logits or probabilities) must be FP16, FP32 or "
            "FP64 (for an endpoint that returns class labels, set output=labels)"
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise EndpointProtocolError(f"{where}: {label} shape {shape!r} is not a list of non-negative integers")
    if labels:
        good_shape = shape in ([rows], [rows, 1])
        expected = f"[{rows}] or [{rows}, 1]"
    else:
        good_shape = len(shape) == 2 and shape[0] == rows and (num_classes is None or shape[1] == num_classes)
        expected = f"[{rows}, {num_classes if num_classes is not None else 'C'}]"
    if not good_shape:
        raise EndpointProtocolError(
            f"{where}: {label} has shape {shape} for a request of {rows} rows; expected {expected}"
        )
    if not labels and shape[1] < 2:
        raise EndpointProtocolError(
            f"{where}: {label} has {shape[1]} class scores per row; a classifier needs at least 2"
        )
    if "data" not in tensor:
        raise EndpointProtocolError(
            f"{where}: {label} has no 'data' (binary tensor extensions are not supported; the JSON data is needed)"
        )
    try:
        values = np.asarray(tensor["data"])
    except (ValueError, TypeError) as exc:
        raise EndpointProtocolError(f"{where}: {label} data is ragged or not numeric ({exc})") from exc
    if values.dtype.kind not in "iuf":
        raise EndpointProtocolError(
            f"{where}: {label} data holds non-numeric values (null, strings, booleans or NaN written as null)"
        )
    needed = math.prod(shape)
    if values.size != needed:
        raise EndpointProtocolError(f"{where}: {label} holds {values.size} values but its shape {shape} needs {needed}")
    if labels:
        if values.dtype.kind == "f":
            raise EndpointProtocolError(f"{where}: {label} is declared {datatype} but holds non-integer values")
        result = values.reshape(rows).astype(np.int64)
        low, high = int(result.min(initial=0)), int(result.max(initial=0))
        if low < 0 or (num_classes is not None and high >= num_classes):
            bound = f"0..{num_classes - 1}" if num_classes is not None else "0 or more"
            raise EndpointProtocolError(f"{where}: {label} has class labels outside {bound} (min {low}, max {high})")
        return result
    with np.errstate(over="ignore", invalid="ignore"):
        result = values.reshape(shape).astype(FLOAT_TYPES[datatype])
    bad = ~np.isfinite(result)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise EndpointProtocolError(
            f"{where}: {label} contains NaN or infinite values (first in row {row} of the request), or values "
            f"that overflow {datatype}"
        )
    return result
