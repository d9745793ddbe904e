"""Safe reading of checkpoint files.

safetensors is read only after its header has been checked against the file (lengths, offsets, dtypes,
shapes), so a truncated, corrupted or lying file gets a one-line :class:`CheckpointError` instead of a crash
or a silent partial load. Pickled files (``torch.save``) are refused unless the caller opts in, and are then
read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

#: Largest checkpoint we open without an explicit override (bytes). Override with the environment variable.
MAX_CHECKPOINT_BYTES = int(os.environ.get("UNLEARN_AUDIT_MAX_CHECKPOINT_BYTES", str(16 * 1024**3)))
MAX_HEADER_BYTES = 100 * 1024**2

_DTYPE_SIZES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar"}


def sniff_format(path: Path) -> str:
    """'safetensors', 'zip' (torch.save), 'pickle', or 'unknown', from the first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 9:  # before the pickle check: a header length can start with byte 0x80
        (length,) = struct.unpack("<Q", head[:8])
        if 2 <= length <= MAX_HEADER_BYTES and head[8:9] == b"{":
            return "safetensors"
    if len(head) >= 2 and head[0] == 0x80 and head[1] in (2, 3, 4, 5):
        return "pickle"
    return "unknown"


def read_safetensors_header(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate the header against the file and return (tensor entries, metadata)."""
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path}: {size} bytes exceeds the {MAX_CHECKPOINT_BYTES}-byte limit; "
            "raise UNLEARN_AUDIT_MAX_CHECKPOINT_BYTES if the file is genuine"
        )
    if size < 8:
        raise CheckpointError(f"{path}: truncated ({size} bytes); a safetensors file starts with an 8-byte header size")
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > size - 8 or length > MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{path}: header claims {length} bytes but the file has {size - 8} after the size field; "
                "the file is truncated or not safetensors"
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupted safetensors header ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupted safetensors header (expected a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: __metadata__ must map strings to strings")
    data_size = size - 8 - length
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPE_SIZES:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise CheckpointError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise CheckpointError(
                f"{path}: tensor {name!r} has data offsets {offsets!r} outside the {data_size}-byte data section; "
                "the file is truncated or corrupted"
            )
        expected = math.prod(shape) * _DTYPE_SIZES[dtype]
        if offsets[1] - offsets[0] != expected:
            raise CheckpointError(
                f"{path}: tensor {name!r} header says shape {shape} {dtype} ({expected} bytes) but spans "
                f"{offsets[1] - offsets[0]} bytes; the header does not match the data"
            )
    return header, dict(metadata)


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    _, metadata = read_safetensors_header(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, RuntimeError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    return tensors, metadata


_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")


def read_pickle_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Only called behind ``--allow-pickle``; never executes arbitrary code (``weights_only=True``)."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(
            f"{path}: cannot read as a weights-only torch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); convert it to safetensors"
        ) from exc
    if isinstance(obj, torch.nn.Module):  # pragma: no cover - weights_only forbids this
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in _STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: does not contain a state dict of tensors (top-level keys: "
            f"{', '.join(map(str, list(obj)[:5])) if isinstance(obj, dict) else type(obj).__name__})"
        )
    return dict(obj), {}


def read_checkpoint(path: str | Path, *, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (state dict, string metadata) from a safetensors file, or a pickle behind ``allow_pickle``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    try:
        kind = sniff_format(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from exc
    if kind in ("zip", "pickle") or (kind == "unknown" and path.suffix.lower() in PICKLE_SUFFIXES):
        if not allow_pickle:
            raise CheckpointError(
                f"{path}: is a pickled torch checkpoint ({kind}), which can run code when loaded; convert it to "
                "safetensors, or pass --allow-pickle if you trust its source (read with weights_only=True)"
            )
        return read_pickle_checkpoint(path)
    return read_safetensors(path)


_TORCH_TO_ST = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file byte-for-byte deterministically.

    ``safetensors.torch.save_file`` orders the metadata map by a hash table, so two saves of the same model
    can differ in their bytes (and sha256). Provenance needs one model -> one hash, so we write the (simple,
    documented) format ourselves: sorted JSON header padded to 8 bytes, then the tensors in name order.
    The result is read back by the safetensors library in the tests.
    """
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        if tensor.dtype not in _TORCH_TO_ST:
            raise CheckpointError(f"{path}: cannot store tensor {name!r} of dtype {tensor.dtype}")
        raw = tensor.view(torch.int16).numpy().tobytes() if tensor.dtype == torch.bfloat16 else tensor.numpy().tobytes()
        header[name] = {
            "dtype": _TORCH_TO_ST[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":"), sort_keys=False).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for raw in blobs:
            handle.write(raw)
