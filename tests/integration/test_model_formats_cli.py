"""Models without their code through the command line (issue 18): what ``info`` and ``check`` say about a
model's form and its ONNX check, ``unlearn``/``remediate`` refusing programs whose weights cannot be saved and
loaded back, a missing optional extra, and results of several models that share a file name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FMNIST, REPO, assert_one_line_error
from tests.integration.conftest import FORGET_ROWS
from unlearn_audit import ConfigError, load_model, save_model
from unlearn_audit.audit import Audit, AuditConfig

REFERENCES = [FMNIST / "retrain-2.safetensors", FMNIST / "retrain-3.safetensors"]
QUICK = AuditConfig(probes=("gaussian",), taus=(0.0, 4 / 255), draws=2, seed=0, panel="none", bootstrap=200)
QUICK_CHECK = ("--probes", "gaussian", "--taus", "0,4/255", "--draws", "2", "--bootstrap", "200", "--panel", "none")


def _flat(text: str) -> str:
    """Console output with rich's wrapping undone (words joined by single spaces)."""
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------- run_many names


def test_run_many_names_results_by_key_when_files_share_a_stem(exported, forget_subset: Path, tmp_path: Path) -> None:
    """gd.safetensors, gd.pt2 and gd.onnx: three results, each under its key and naming its own file."""
    paths = {"safetensors": tmp_path / "gd.safetensors", "pt2": tmp_path / "gd.pt2", "onnx": tmp_path / "gd.onnx"}
    shutil.copy(FMNIST / "gd.safetensors", paths["safetensors"])
    shutil.copy(exported["pt2"], paths["pt2"])
    shutil.copy(exported["onnx"], paths["onnx"])
    for data in exported["onnx"].parent.glob(exported["onnx"].name + ".data"):  # torch's exporter keeps weights beside
        shutil.copy(data, tmp_path / data.name)
    results = Audit(references=REFERENCES, forget=forget_subset, config=QUICK).run_many(paths)
    assert list(results) == ["safetensors", "pt2", "onnx"]
    for kind, result in results.items():
        assert result.model.name == kind
        assert result.model.path == str(paths[kind])
        assert result.to_dict()["model"]["name"] == kind
    assert results["pt2"].model.metadata["model_format"] == "pt2"
    assert results["onnx"].model.metadata["model_format"] == "onnx"
    assert "model_format" not in results["safetensors"].model.metadata


# ------------------------------------------------------------------------------------------- info and check


def test_info_shows_the_format_and_rechecks_onnx_on_the_data(exported, forget_subset: Path, cli, tmp_path) -> None:
    out = tmp_path / "info.json"
    result = cli("info", exported["onnx"], "--data", forget_subset, "--device", "cpu", "--json", out)
    assert result.code == 0, result.err
    text = _flat(result.out)
    assert "format ONNX, converted to torch by onnx2torch" in text
    assert f"ONNX check against onnxruntime {_version('onnxruntime')}" in text
    assert f"passed on the data ({FORGET_ROWS} samples" in text
    described = json.loads(out.read_text())
    assert described["model_format"] == "onnx"
    check = json.loads(described["metadata"]["onnx_check"])
    assert check["passed"] and check["rows"] == FORGET_ROWS and check["on"].startswith("the data")

    without_data = _flat(cli("info", exported["onnx"], "--device", "cpu").out)
    assert "passed on 16 synthetic inputs" in without_data
    for path, label in [
        (exported["pt2"], "format torch.export program (.pt2)"),
        (FMNIST / "gd.safetensors", "format safetensors state dict"),
    ]:
        shown = cli("info", path, "--device", "cpu")
        assert shown.code == 0, shown.err
        assert label in _flat(shown.out) and "ONNX check" not in shown.out


def test_check_prints_the_onnx_check_and_the_json_carries_it(exported, forget_subset: Path, cli, tmp_path) -> None:
    out = tmp_path / "check.json"
    references = [arg for ref in REFERENCES for arg in ("--reference", ref)]
    result = cli("check", exported["onnx"], "--forget", forget_subset, *references, *QUICK_CHECK, "--json", out)
    assert result.code in (0, 1, 3), result.err
    line = next(line for line in _flat(result.out).split("gd_converted: ")[1:] if line.startswith("ONNX check"))
    assert line.startswith(f"ONNX check against onnxruntime {_version('onnxruntime')}")
    assert f"passed on the forget set ({FORGET_ROWS} samples" in line
    check = json.loads(json.loads(out.read_text())["model"]["metadata"]["onnx_check"])
    assert check["passed"] and check["rows"] == FORGET_ROWS and check["on"].startswith("the forget set")


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


# ------------------------------------------------------------------------------------------- unlearn/remediate


def test_unlearn_and_remediate_refuse_programs_before_any_work(exported, cli, tmp_path: Path) -> None:
    disguised = tmp_path / "model.bin"  # a .pt2 archive under another name: recognised by its content
    shutil.copy(exported["pt2"], disguised)
    sets = ("--forget", FMNIST / "forget.npz", "--retain", FMNIST / "retain_subset.npz")
    for path in (exported["pt2"], exported["onnx"], disguised):
        out = tmp_path / f"{path.stem}-unlearned.safetensors"
        result = cli("unlearn", "gd", path, *sets, "-o", out)
        assert_one_line_error(result, str(path), "unlearn-audit unlearn needs a model", "export the result again")
        result = cli("remediate", path, *sets, "--reference", REFERENCES[0], "-o", out)
        assert_one_line_error(result, str(path), "unlearn-audit remediate needs a model", "audit this file with check")
        assert not out.exists()
    assert_one_line_error(
        cli("unlearn", "gd", exported["pt2"], *sets, "-o", tmp_path / "x.safetensors"), "a torch.export .pt2 program"
    )
    assert_one_line_error(cli("unlearn", "gd", exported["onnx"], *sets, "-o", tmp_path / "x.safetensors"), "an ONNX")


def test_save_model_refuses_a_program_it_could_not_load_back(exported, tmp_path: Path) -> None:
    for path in exported.values():
        with pytest.raises(ConfigError, match="save_model needs a model whose trained weights can be saved") as err:
            save_model(load_model(path, device="cpu"), tmp_path / "program.safetensors")
        assert "\n" not in str(err.value)
    assert not (tmp_path / "program.safetensors").exists()


# ------------------------------------------------------------------------------------------- missing extras

HIDE_AND_RUN = (
    "import sys; sys.modules[sys.argv[1]] = None; from unlearn_audit.cli import main; sys.exit(main(sys.argv[2:]))"
)


@pytest.mark.parametrize("missing", ["onnx", "onnx2torch", "onnxruntime", "timm", "transformers"])
def test_a_missing_extra_names_the_pip_command(missing: str, exported, tmp_path: Path) -> None:
    """Each optional module hidden (``sys.modules[name] = None`` makes ``import name`` fail) in a fresh CLI process."""
    hf_folder = tmp_path / "hf"
    hf_folder.mkdir()
    (hf_folder / "config.json").write_text(json.dumps({"model_type": "vit", "num_labels": 10}))
    args, extra = {
        "onnx": ([exported["onnx"]], "onnx"),
        "onnx2torch": ([exported["onnx"]], "onnx"),
        "onnxruntime": ([exported["onnx"]], "onnx"),
        "timm": ([FMNIST / "gd.safetensors", "--arch", "timm:resnet18"], "timm"),
        "transformers": ([hf_folder], "hf"),
    }[missing]
    env = {**os.environ, "PYTHONPATH": str(REPO), "UNLEARN_AUDIT_NO_PROGRESS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", HIDE_AND_RUN, missing, "info", *map(str, args), "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert f"pip install 'unlearn-audit[{extra}]'" in lines[0] and f"missing Python module {missing!r}" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
