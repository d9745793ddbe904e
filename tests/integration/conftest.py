"""Fixtures shared by the model-format tests (test_model_formats.py, test_model_formats_cli.py): the bundled GD
model exported to ``.pt2`` and ONNX once per session, and a small forget subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import FMNIST
from unlearn_audit import load_model

#: Forget rows of ``forget_subset`` (keeps the audits of the format tests short).
FORGET_ROWS = 120


@pytest.fixture(scope="session")
def formats_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-formats")


@pytest.fixture(scope="session")
def forget_subset(formats_dir: Path) -> Path:
    """The first FORGET_ROWS forget samples as an .npz (keeps the audits below short)."""
    data = np.load(FMNIST / "forget.npz")
    path = formats_dir / "forget-subset.npz"
    np.savez(path, x=data["x"][:FORGET_ROWS], y=data["y"][:FORGET_ROWS], ids=data["ids"][:FORGET_ROWS])
    return path


@pytest.fixture(scope="session")
def exported(formats_dir: Path) -> dict[str, Path]:
    """The bundled GD model exported to .pt2 (dynamic batch) and to ONNX (torch's default exporter)."""
    net = load_model(FMNIST / "gd.safetensors", device="cpu").net.eval()
    example = torch.rand(4, 1, 28, 28)
    program = torch.export.export(net, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    pt2 = formats_dir / "gd_exported.pt2"
    torch.export.save(program, pt2)
    onnx_path = formats_dir / "gd_converted.onnx"
    torch.onnx.export(program, (example,), str(onnx_path), input_names=["x"], output_names=["logits"], verbose=False)
    return {"pt2": pt2, "onnx": onnx_path}
