"""Regenerate the corpus of nasty inputs under tests/hostile/corpus/ (committed; run this only to change it).

    python tests/hostile/make_corpus.py

Every file is listed in corpus/EXPECTED.json with the command that reads it and a fragment of the one-line
error it must produce (``"ok"`` for files that are odd but valid and must load).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from unlearn_audit.io.architectures import build_architecture  # noqa: E402
from unlearn_audit.io.checkpoint import write_safetensors  # noqa: E402

CORPUS = HERE / "corpus"


def _valid_model_bytes(num_classes: int = 10, poison_nan: bool = False) -> bytes:
    torch.manual_seed(0)
    net = build_architecture("small-cnn", num_classes, (1, 28, 28))
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if poison_nan:
        state["classifier.3.bias"][:] = float("nan")
    path = CORPUS / "_tmp.safetensors"
    meta = {"arch": "small-cnn", "num_classes": str(num_classes), "input_shape": "[1, 28, 28]"}
    write_safetensors(path, state, meta)
    data = path.read_bytes()
    path.unlink()
    return data


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.iterdir():
        if old.is_symlink() or old.is_file():
            old.unlink()
        elif old.is_dir():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    expected: dict[str, dict[str, str]] = {}

    def add(name: str, content: bytes | str, kind: str, fragment: str) -> None:
        path = CORPUS / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        expected[name] = {"kind": kind, "fragment": fragment}

    good = _valid_model_bytes()
    (n,) = struct.unpack("<Q", good[:8])
    header = good[8 : 8 + n].decode()
    # --- checkpoints -------------------------------------------------------------------------------------
    add("truncated.safetensors", good[: len(good) // 2], "model", "truncated or corrupted")
    add("empty.safetensors", b"", "model", "truncated (0 bytes)")
    add("tiny.safetensors", b"\x07\x00", "model", "truncated (2 bytes)")
    add("header_too_long.safetensors", struct.pack("<Q", 10**12) + good[8:], "model", "header claims")
    add(
        "header_not_json.safetensors",
        struct.pack("<Q", 16) + b"{not json at all" + good[8 + n :],
        "model",
        "corrupted safetensors header",
    )
    lying = header.replace('"shape":[10,64]', '"shape":[10,65]', 1)
    assert lying != header and len(lying) == len(header) + 0 or True
    lying_bytes = lying.encode()
    add(
        "lying_shapes.safetensors",
        struct.pack("<Q", len(lying_bytes)) + lying_bytes + good[8 + n :],
        "model",
        "header says shape [10, 65]",
    )
    bad_offsets = header.replace('"data_offsets":[0,', '"data_offsets":[999999999,', 1)
    add(
        "bad_offsets.safetensors",
        struct.pack("<Q", len(bad_offsets)) + bad_offsets.encode() + good[8 + n :],
        "model",
        "outside the",
    )
    add(
        "bad_dtype.safetensors",
        struct.pack("<Q", n) + header.replace('"F32"', '"Q99"', 1).encode() + good[8 + n :],
        "model",
        "unsupported dtype",
    )
    pickled = pickle.dumps({"classifier.3.bias": torch.zeros(10)}, protocol=2)
    add("pickle_disguised.safetensors", pickled, "model", "pickled torch checkpoint")
    import io as _io

    buffer = _io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    add("zip_disguised.safetensors", buffer.getvalue(), "model", "pickled torch checkpoint")
    add(
        "random_bytes.safetensors",
        bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "model",
        "header claims",
    )
    add("nan_weights.safetensors", _valid_model_bytes(poison_nan=True), "model-output", "NaN or infinite logits")
    add("five_classes.safetensors", _valid_model_bytes(num_classes=5), "model-output", "classes")
    # --- CSVs ------------------------------------------------------------------------------------------------
    torch.manual_seed(0)
    tabular = build_architecture("mlp-8", 2, (2,))
    write_safetensors(
        CORPUS / "tabular_model.safetensors",
        dict(tabular.state_dict()),
        {"arch": "mlp-8", "num_classes": "2", "input_shape": "[2]"},
    )
    expected["tabular_model.safetensors"] = {"kind": "model", "fragment": "ok"}
    add("tabular_ok.csv", "age,income,label\n0.1,0.2,1\n-1.5,3,0\n", "tabular-data", "ok")
    add(
        "nan_features.csv", "a,b,label\n0.1,0.2,1\n0.3,nan,0\n", "tabular-data", "nan_features.csv:3: column 'b' is nan"
    )
    add("inf_features.csv", "a,b,label\n0.1,inf,1\n", "tabular-data", "column 'b' is inf")
    add("text_features.csv", "a,b,label\n0.1,high,1\n", "tabular-data", "value 'high' is not a number")
    add("tabular_label_3.csv", "a,b,label\n0.1,0.2,3\n", "tabular-data", "label 3 outside 0..1")
    add("label_out_of_range.csv", "# dataset=fashion-mnist:test\nindex,label\n1,10\n", "data", "label 10 outside 0..9")
    add("label_negative.csv", "# dataset=fashion-mnist:test\nindex,label\n1,-3\n", "data", "label -3 outside")
    add(
        "label_not_integer.csv",
        "# dataset=fashion-mnist:test\nindex,label\n1,shirt\n",
        "data",
        "label 'shirt' is not an integer",
    )
    add("bom_utf8.csv", "\ufeff# dataset=fashion-mnist:test\nindex,label\n1,2\n", "data", "ok")
    add("utf16_with_bom.csv", "# dataset=fashion-mnist:test\nindex,label\n1,2\n".encode("utf-16"), "data", "ok")
    add("latin1.csv", "path,label\nimages/caf\xe9.png,1\n".encode("latin-1"), "data", "not valid UTF-8")
    add("nul_bytes.csv", b"index,label\n1\x00,2\n", "data", "NUL bytes")
    add("empty.csv", b"", "data", "empty")
    add("header_only.csv", "index,label\n", "data", "no samples")
    add(
        "ragged_rows.csv",
        "# dataset=fashion-mnist:test\nindex,label\n1,2\n3\n",
        "data",
        "1 fields but the header has 2",
    )
    add("duplicate_header.csv", "label,label\n1,2\n", "data", "appears twice")
    add("dotdot_path.csv", "path,label\n../../../../etc/hostname,1\n", "data", "outside the data root")
    add("absolute_path.csv", "path,label\n/etc/hostname,1\n", "data", "outside the data root")
    add("symlink_escape.csv", "path,label\nescape.png,1\n", "data", "outside the data root")
    os.symlink("/etc/hostname", CORPUS / "escape.png")
    add("missing_image.csv", "path,label\nimages/none.png,1\n", "data", "not found")
    (CORPUS / "images").mkdir()
    Image.fromarray(np.zeros((28, 28), np.float32), mode="F").save(CORPUS / "images" / "float.tiff")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(CORPUS / "images" / "small.png")
    (CORPUS / "images" / "zero.png").write_bytes(b"")
    (CORPUS / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    Image.fromarray(np.zeros((28, 28, 4), np.uint8), mode="CMYK").save(CORPUS / "images" / "cmyk.jpg")
    add("image_float_mode.csv", "path,label\nimages/float.tiff,1\n", "data", "mode F")
    add("image_wrong_size.csv", "path,label\nimages/small.png,1\n", "data", "expects 28x28")
    add("image_zero_bytes.csv", "path,label\nimages/zero.png,1\n", "data", "zero-byte")
    add("image_corrupt.csv", "path,label\nimages/corrupt.png,1\n", "data", "not a readable image")
    add("image_cmyk.csv", "path,label\nimages/cmyk.jpg,1\n", "data", "mode CMYK")
    add("index_out_of_range.csv", "# dataset=fashion-mnist:test\nindex,label\n10000,1\n", "data", "outside 0..9999")
    add("unknown_dataset.csv", "# dataset=imagenet-42\nindex,label\n1,1\n", "data", "unknown")
    np.savez(CORPUS / "object_array.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([1]))
    expected["object_array.npz"] = {"kind": "data", "fragment": "without pickle"}
    np.savez(CORPUS / "nan_pixels.npz", x=np.full((2, 1, 28, 28), np.nan, np.float32), y=np.array([1, 2]))
    expected["nan_pixels.npz"] = {"kind": "data", "fragment": "NaN or infinite"}
    np.savez(CORPUS / "pixels_0_255.npz", x=np.full((2, 1, 28, 28), 200.0, np.float32), y=np.array([1, 2]))
    expected["pixels_0_255.npz"] = {"kind": "data", "fragment": "must lie in [0, 1]"}
    np.savez(CORPUS / "wrong_shape.npz", x=np.zeros((2, 3, 32, 32), np.float32), y=np.array([1, 2]))
    expected["wrong_shape.npz"] = {"kind": "data", "fragment": "expects [1, 28, 28]"}
    add("not_an_npz.npz", b"PK\x03\x04garbage", "data", "not a readable .npz")
    (CORPUS / "EXPECTED.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(expected)} cases to {CORPUS}")


if __name__ == "__main__":
    main()
