"""Property tests: whatever bytes arrive, the readers give a correct result or a clean one-line error."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from unlearn_audit import CheckpointError, InputError, load_samples
from unlearn_audit.io.checkpoint import read_checkpoint

CELL = st.one_of(
    st.integers(-3, 12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6),
    st.sampled_from(["", " ", "nan", "inf", "1e309", "0x1", "3.0", "../x.png", "#", '"', "\ufeff"]),
)
HEADERS = st.sampled_from(
    ["a,b,label", "index,label", "label", "x,label,id", "path,label", "a,a,label", "", "# dataset=digits\nindex,label"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=HEADERS, rows=st.lists(st.lists(CELL, min_size=0, max_size=4), max_size=6), crlf=st.booleans())
def test_csv_reader_gives_samples_or_input_error(header, rows, crlf):
    newline = "\r\n" if crlf else "\n"
    text = header + newline + newline.join(",".join(r) for r in rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.csv"
        path.write_text(text, encoding="utf-8")
        try:
            s = load_samples(path, num_classes=10)
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc)
            return
    assert len(s) == s.x.shape[0] == s.y.shape[0] == len(s.ids) > 0
    assert bool(torch.isfinite(s.x).all())
    assert int(s.y.min()) >= 0 and int(s.y.max()) < 10


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=64))
def test_csv_reader_on_arbitrary_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.csv"
        path.write_bytes(data)
        try:
            load_samples(path, num_classes=10)
        except InputError as exc:
            assert "\n" not in str(exc)


def _valid_file(tmp: Path) -> bytes:
    path = tmp / "v.safetensors"
    save_file(
        {"layers.1.weight": torch.arange(12.0).reshape(3, 4), "layers.1.bias": torch.ones(3)},
        str(path),
        metadata={"arch": "mlp-0"},
    )
    return path.read_bytes()


@settings(max_examples=200, deadline=None)
@given(
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    append=st.binary(max_size=8),
)
def test_safetensors_reader_gives_tensors_or_checkpoint_error(cut, flips, append):
    with tempfile.TemporaryDirectory() as tmp:
        raw = bytearray(_valid_file(Path(tmp)))
        for pos, value in flips:
            if pos < len(raw):
                raw[pos] = value
        mutated = bytes(raw[: max(0, len(raw) - cut)]) + append
        path = Path(tmp) / "m.safetensors"
        path.write_bytes(mutated)
        try:
            tensors, meta = read_checkpoint(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
            return
    assert isinstance(meta, dict)
    for tensor in tensors.values():
        assert isinstance(tensor, torch.Tensor)
        assert math.prod(tensor.shape) == tensor.numel()
