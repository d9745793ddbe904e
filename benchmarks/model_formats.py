"""How far a .pt2 or ONNX export of a bundled model audits from its safetensors source (issue 18).

    PYTHONPATH=. .venv/bin/python benchmarks/model_formats.py [ROWS]
    ATEN_CPU_CAPABILITY=default PYTHONPATH=. .venv/bin/python benchmarks/model_formats.py 200   # other kernels

Exports reference_models/fmnist-small/gd.safetensors to a torch.export .pt2 (dynamic batch) and to ONNX with
both torch exporters (the default torch.export-based one, opset 20, and the TorchScript one), audits the four
forms in one ``run_many`` (gaussian + FGSM, τ ∈ {0, 4/255, 8/255}, 4 draws, retrain-2/3 as references) on the
first ROWS forget samples (default 500), and prints, per form, how many count cells differ from the
safetensors audit, the largest |ΔR|, the verdict, and the ONNX check record. docs/model-formats.md quotes it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from unlearn_audit import load_model
from unlearn_audit.audit import Audit, AuditConfig

ROOT = Path(__file__).resolve().parent.parent / "reference_models" / "fmnist-small"
CONFIG = AuditConfig(
    probes=("gaussian", "fgsm"), taus=(0.0, 4 / 255, 8 / 255), draws=4, seed=0, panel="none", bootstrap=200
)


def export_all(folder: Path) -> dict[str, Path]:
    net = load_model(ROOT / "gd.safetensors", device="cpu").net.eval()
    example = torch.rand(4, 1, 28, 28)
    program = torch.export.export(net, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    paths = {"pt2": folder / "gd_pt2.pt2", "onnx": folder / "gd_onnx.onnx", "onnx-ts": folder / "gd_onnx_ts.onnx"}
    torch.export.save(program, paths["pt2"])
    torch.onnx.export(program, (example,), str(paths["onnx"]), input_names=["x"], output_names=["logits"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net, (example,), str(paths["onnx-ts"]), input_names=["x"], output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    return paths


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = np.load(ROOT / "forget.npz")
        forget = folder / "forget.npz"
        np.savez(forget, x=data["x"][:rows], y=data["y"][:rows], ids=data["ids"][:rows])
        paths = {"safetensors": ROOT / "gd.safetensors", **export_all(folder)}
        audit = Audit(
            references=[ROOT / "retrain-2.safetensors", ROOT / "retrain-3.safetensors"], forget=forget, config=CONFIG
        )
        start = time.perf_counter()
        results = audit.run_many(dict(paths.items()))  # keyed by form
        seconds = time.perf_counter() - start
    base = results["safetensors"]
    print(f"kernels={os.environ.get('ATEN_CPU_CAPABILITY', 'native')} rows={rows} audit={seconds:.0f}s")
    for kind, result in results.items():
        cells = sum(int((result.counts[p].correct != base.counts[p].correct).sum()) for p in CONFIG.probes)
        total = sum(result.counts[p].correct.size for p in CONFIG.probes)
        r_base = {(r["probe"], r["tau"]): r["R"] for r in base.table()}
        r_ours = {(r["probe"], r["tau"]): r["R"] for r in result.table()}
        worst = max(abs(r_ours[k] - r_base[k]) for k in r_base)
        check = result.model.metadata.get("onnx_check", "-")
        print(f"{kind}: {cells}/{total} count cells differ, max |dR| {worst:.3g}, {result.verdict.kind}, check {check}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
