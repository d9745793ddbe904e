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


def test_a_reference_that_shares_the_audited_models_name_is_renamed(forget_subset: Path, tmp_path: Path) -> None:
    """``check a/model.safetensors --reference b/model.safetensors``: the JSON names two different models."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    shutil.copy(FMNIST / "gd.safetensors", tmp_path / "a" / "model.safetensors")
    shutil.copy(REFERENCES[0], tmp_path / "b" / "model.safetensors")
    audit = Audit(
        tmp_path / "a" / "model.safetensors", [tmp_path / "b" / "model.safetensors"], forget_subset, config=QUICK
    )
    doc = audit.run().to_dict()
    assert doc["model"]["name"] == "model" and [r["name"] for r in doc["references"]] == ["model#0"]
    assert doc["references"][0]["path"] == str(tmp_path / "b" / "model.safetensors")
    many = Audit(references=[REFERENCES[0], REFERENCES[1]], forget=forget_subset, config=QUICK)
    results = many.run_many({"retrain-2": FMNIST / "retrain-1.safetensors"})  # a key that names a reference
    assert [r.name for r in results["retrain-2"].references] == ["retrain-2#0", "retrain-3#1"]


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

HIDE_AND_RUN = """
import json, sys
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None  # `import name` now raises ImportError, as when the extra is not installed
from unlearn_audit.cli import main
for argv in json.loads(sys.argv[2]):
    code = main(argv)
    print(f"--- exit {code}", file=sys.stderr, flush=True)
"""


def test_a_missing_extra_names_the_pip_command(exported, tmp_path: Path) -> None:
    """onnx2torch, timm and transformers hidden in one fresh CLI process: ``info`` on an ONNX file, a timm checkpoint
    and a Hugging Face folder each fail with one line naming the pip command of its extra, exit 2."""
    hf_folder = tmp_path / "hf"
    hf_folder.mkdir()
    (hf_folder / "config.json").write_text(json.dumps({"model_type": "vit", "num_labels": 10}))
    cases = [
        ([exported["onnx"]], "onnx", "onnx2torch"),
        ([FMNIST / "gd.safetensors", "--arch", "timm:resnet18"], "timm", "timm"),
        ([hf_folder], "hf", "transformers"),
    ]
    argvs = [["info", *map(str, args), "--device", "cpu"] for args, _, _ in cases]
    env = {**os.environ, "PYTHONPATH": str(REPO), "UNLEARN_AUDIT_NO_PROGRESS": "1"}
    hidden = json.dumps([module for _, _, module in cases])
    done = subprocess.run(
        [sys.executable, "-c", HIDE_AND_RUN, hidden, json.dumps(argvs)],
        capture_output=True, text=True, env=env, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == "", done.stderr
    runs = done.stderr.split("--- exit ")
    assert len(runs) == len(cases) + 1, done.stderr
    for (_, extra, module), before, after in zip(cases, runs[:-1], runs[1:], strict=True):
        lines = [line for line in before.splitlines()[1 if before is not runs[0] else 0 :] if line.strip()]
        assert after.split("\n", 1)[0] == "2", done.stderr
        assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
        assert f"pip install 'unlearn-audit[{extra}]'" in lines[0] and f"missing Python module {module!r}" in lines[0]
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------- offline

CUT_OFF_AND_RUN = """
import os, socket, sys
def refuse(*args, **kwargs):
    with open(os.environ["NETWORK_ATTEMPTS"], "a") as log:
        log.write(repr(args[:2]) + "\\n")
    raise OSError("network cut off by the test")
socket.socket.connect = socket.socket.connect_ex = socket.getaddrinfo = socket.create_connection = refuse
from unlearn_audit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_timm_and_hf_models_load_with_the_network_cut_off(tmp_path: Path) -> None:
    """``info`` on a tiny timm checkpoint and a tiny Hugging Face folder, in a CLI process whose sockets refuse to
    connect (every attempt logged): both load, and nothing tried to reach the network, with HF_HUB_OFFLINE unset."""
    import timm
    from safetensors.torch import save_file
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    network = timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=3).eval()
    weights = tmp_path / "test_resnet.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    config = ViTConfig(
        image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=10,
    )  # fmt: skip
    folder = tmp_path / "tiny-vit"
    ViTForImageClassification(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 28, "width": 28}, image_mean=[0.5], image_std=[0.25]).save_pretrained(folder)

    attempts = tmp_path / "network-attempts.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))}
    env |= {"PYTHONPATH": str(REPO), "UNLEARN_AUDIT_NO_PROGRESS": "1", "NETWORK_ATTEMPTS": str(attempts)}
    for args, form in [
        ([weights, "--arch", "timm:test_resnet", "--input-shape", "3,28,28"], "format timm checkpoint"),
        ([folder], "format Hugging Face transformers image classifier"),
    ]:
        done = subprocess.run(
            [sys.executable, "-c", CUT_OFF_AND_RUN, "info", *map(str, args), "--device", "cpu"],
            capture_output=True, text=True, env=env, timeout=600, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert form in _flat(done.stdout)
    assert not attempts.exists(), attempts.read_text()
