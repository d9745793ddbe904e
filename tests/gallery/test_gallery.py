"""Strangers' models with no metadata and no ``--input-shape``: ``info`` and ``check`` infer the input from the
first layer that reads it, convert RGB PNGs to grey, and give exactly what the same commands give with
``--input-shape 1,28,28``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.fx
from safetensors import safe_open

from tests.gallery.gallery_training import GALLERY, GalleryCase, arch_spec
from unlearn_audit.io.architectures import build_architecture
from unlearn_audit.io.first_layer import find_first_layer, first_layer_from_weights

NAMES = list(GALLERY)
COLOURS = ["rgb", "grey"]
QUICK_CHECK = (
    "--probes", "gaussian,fgsm", "--taus", "0,4/255", "--draws", "4", "--bootstrap", "200", "--panel", "none",
    "--device", "cpu",
)  # fmt: skip


def _inference_notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "no input shape in the metadata" in line]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _loading(case: GalleryCase) -> tuple[str, ...]:
    return ("--arch", case.arch, "--num-classes", "10", "--device", "cpu")


def _assert_one_inference_note(stderr: str, case: GalleryCase, colour: str) -> None:
    notes = _inference_notes(stderr)
    assert len(notes) == 1, stderr
    assert notes[0].startswith("warning:") and "reads 1xHxW" in notes[0] and case.first_layer in notes[0], notes[0]
    assert ("RGB images converted to greyscale (ITU-R 601 luma)" in notes[0]) == (colour == "rgb"), notes[0]


@pytest.mark.parametrize("colour", COLOURS)
@pytest.mark.parametrize("name", NAMES)
def test_info_infers_the_input_and_matches_the_explicit_shape(gallery, cli, tmp_path, name, colour):
    case = gallery[name]
    common = ("info", case.model, *_loading(case), "--data", case.forget[colour])
    inferred = cli(*common, "--json", tmp_path / "inferred.json")
    explicit = cli(*common, "--input-shape", "1,28,28", "--json", tmp_path / "explicit.json")
    assert inferred.code == 0 and explicit.code == 0, (inferred.err, explicit.err)
    _assert_one_inference_note(inferred.err, case, colour)
    assert _inference_notes(explicit.err) == []
    got, want = _load(tmp_path / "inferred.json"), _load(tmp_path / "explicit.json")
    assert got.pop("input_source").startswith(f"inferred from {case.first_layer}, the first layer that reads")
    assert want.pop("input_source") == "--input-shape"
    assert got == want and got["input_shape"] == [1, 28, 28] and got["samples"] == 32


@pytest.mark.slow
@pytest.mark.parametrize("colour", COLOURS)
@pytest.mark.parametrize("name", NAMES)
def test_check_equals_the_audit_with_an_explicit_input_shape(gallery, cli, tmp_path, name, colour):
    case = gallery[name]
    common = ["check", case.model, "--forget", case.forget[colour], *_loading(case), *QUICK_CHECK, "--no-cache"]
    for reference in case.references:
        common += ["--reference", reference]
    inferred = cli(*common, "--json", tmp_path / "inferred.json")
    explicit = cli(*common, "--input-shape", "1,28,28", "--json", tmp_path / "explicit.json")
    assert inferred.code == explicit.code and inferred.code in (0, 1, 3), (inferred.err, explicit.err)
    _assert_one_inference_note(inferred.err, case, colour)
    assert _inference_notes(explicit.err) == []
    got, want = _load(tmp_path / "inferred.json"), _load(tmp_path / "explicit.json")
    for doc in (got, want):
        del doc["provenance"]["time"]
    assert got == want
    assert got["forget"]["samples"] == 32 and got["probes"]["gaussian"]["taus"]


def test_the_gallery_is_what_it_claims(gallery):
    nets = {name: build_architecture(arch_spec(name), 10, None) for name in NAMES}
    bn = nets["bn_buffers"]
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) and {"mean", "std"} <= set(
        dict(bn.named_buffers())
    )
    # registration order is not execution order: the weights alone would name the head, the trace names the trunk
    assert first_layer_from_weights(bn).tensor == "head.weight"
    traced, how = find_first_layer(bn)
    assert traced is not None and traced.tensor == "trunk.0.weight" and how == "traced"
    relu_pool = [type(m).__name__ for m in nets["relu_pool"].modules()]
    assert "BatchNorm2d" not in relu_pool and relu_pool.index("ReLU") < relu_pool.index("MaxPool2d")
    with safe_open(str(gallery["parallel"].model), "pt") as handle:
        assert all(key.startswith("module.") for key in handle.keys()) and not handle.metadata()
    import torchvision

    assert isinstance(nets["torchvision"], torchvision.models.ResNet)
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(nets["functional"])
    assert not any(isinstance(m, torch.nn.Conv2d) for m in nets["functional"].modules())
