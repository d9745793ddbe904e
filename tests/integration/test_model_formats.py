"""Models without their code (issue 18): torch.export ``.pt2``, ONNX, ``timm:NAME``, Hugging Face folders.

Equivalence: every form of one network gives the same ``info`` accuracy and the same audit counts as its
reference path. For ``.pt2``, timm and Hugging Face the arithmetic is the same kernels in the same order
(BatchNorm folded with the same function), so the tests demand bit-equality. An ONNX file is a different graph
(the exporter folds BatchNorm with its own arithmetic; logits differ by ~1e-5), so the ONNX tests allow the
stated tolerance below, and the measured difference is recorded in docs/model-formats.md.

Hostile variants are refused with one-line errors: by the library (``CheckpointError``/``ConfigError``) and by
the CLI (exit code 2).
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import FMNIST, assert_one_line_error
from tests.integration.conftest import FORGET_ROWS
from unlearn_audit import CheckpointError, ConfigError, load_model, load_samples, wrap_model
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.info import model_info
from unlearn_audit.io.formats import model_format

#: ONNX tolerance: at most this fraction of (block, model, sample, τ) count cells may differ from the
#: safetensors audit, and R may move by at most ONNX_R_TOLERANCE at any (probe, τ). Measured: 0 cells and 0.0.
ONNX_COUNT_FRACTION = 0.005
ONNX_R_TOLERANCE = 0.01
CONFIG = AuditConfig(
    probes=("gaussian", "fgsm"), taus=(0.0, 4 / 255, 8 / 255), draws=4, seed=0, panel="none", bootstrap=200
)
REFERENCES = [FMNIST / "retrain-2.safetensors", FMNIST / "retrain-3.safetensors"]


# ----------------------------------------------------------------------------------------------- fixtures


def _subject_counts(result, probe: str) -> np.ndarray:  # noqa: ANN001
    return result.counts[probe].correct


def _r_values(result) -> dict[tuple[str, float], float]:  # noqa: ANN001
    return {(row["probe"], row["tau"]): row["R"] for row in result.table()}


def _same_r(a, b) -> bool:  # noqa: ANN001
    """R tables equal, NaN (no reference ever right) matching NaN."""
    ra, rb = _r_values(a), _r_values(b)
    return ra.keys() == rb.keys() and np.array_equal([ra[k] for k in ra], [rb[k] for k in ra], equal_nan=True)


@pytest.fixture(scope="session")
def format_audits(exported: dict[str, Path], forget_subset: Path):  # noqa: ANN201
    """One audit of the safetensors model, its .pt2 and its ONNX export, given as paths (shared draws)."""
    audit = Audit(references=REFERENCES, forget=forget_subset, config=CONFIG)
    paths = {"safetensors": FMNIST / "gd.safetensors", **exported}
    return audit.run_many(paths)  # keyed, and the models named, by form


# ------------------------------------------------------------------------------------------- dispatch


def test_model_format_dispatch(tmp_path: Path) -> None:
    assert model_format(tmp_path / "a.pt2", None) == "pt2"
    assert model_format(tmp_path / "a.onnx", None) == "onnx"
    assert model_format(tmp_path, None) == "hf"
    assert model_format(tmp_path / "w.safetensors", "timm:resnet18") == "timm"
    assert model_format(tmp_path / "w.safetensors", f"hf:{tmp_path}") == "hf"
    assert model_format(FMNIST / "gd.safetensors", None) is None
    assert model_format(FMNIST / "gd.safetensors", "small-cnn") is None


# ------------------------------------------------------------------------------------------- .pt2


def test_pt2_runs_like_the_source_model(exported: dict[str, Path]) -> None:
    source = load_model(FMNIST / "gd.safetensors", device="cpu")
    program = load_model(exported["pt2"], device="cpu")
    assert program.meta.num_classes == 10 and program.meta.input_shape == (1, 28, 28)
    assert program.meta.extra["model_format"] == "pt2" and len(program.meta.sha256 or "") == 64
    assert not program.training
    for rows in (1, 7, 64):  # the batch dimension is dynamic
        x = torch.rand(rows, 1, 28, 28, generator=torch.Generator().manual_seed(rows), requires_grad=True)
        ours, theirs = program(x), source(x)
        assert torch.equal(ours, theirs)
        assert torch.equal(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(theirs.sum(), x)[0])


def test_pt2_batchnorm_fold_matches_the_engines_fx_fold(exported: dict[str, Path]) -> None:
    import copy

    from unlearn_audit.probes.preparation import fold_batchnorm

    source = copy.deepcopy(load_model(FMNIST / "gd.safetensors", device="cpu"))
    program = copy.deepcopy(load_model(exported["pt2"], device="cpu"))
    assert fold_batchnorm(source)
    assert program.net.fold_batchnorm() == 2  # both conv-BN pairs of the small CNN
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(program(x), source(x))


def test_pt2_and_onnx_info_accuracy_match_safetensors(exported: dict[str, Path]) -> None:
    test = load_samples(FMNIST / "test.npz", num_classes=10, input_shape=(1, 28, 28))
    accuracy = {
        kind: model_info(load_model(path, device="cpu"), test).accuracy
        for kind, path in {"safetensors": FMNIST / "gd.safetensors", **exported}.items()
    }
    reference = accuracy["safetensors"]
    assert reference is not None and 0.5 < reference.value < 1.0
    assert accuracy["pt2"] == reference
    onnx_accuracy = accuracy["onnx"]
    assert onnx_accuracy is not None
    assert abs(onnx_accuracy.value - reference.value) <= ONNX_COUNT_FRACTION


@pytest.mark.slow
def test_pt2_audit_counts_equal_safetensors(format_audits) -> None:  # noqa: ANN001
    reference, program = format_audits["safetensors"], format_audits["pt2"]
    for probe in CONFIG.probes:
        assert np.array_equal(_subject_counts(program, probe), _subject_counts(reference, probe)), probe
        assert np.array_equal(program.counts[probe].disagree, reference.counts[probe].disagree), probe
    assert _same_r(program, reference)
    assert program.verdict.kind == reference.verdict.kind
    assert [f.id for f in program.flagged_samples] == [f.id for f in reference.flagged_samples]
    assert program.model.metadata["model_format"] == "pt2"


@pytest.mark.slow
def test_onnx_audit_within_tolerance_and_checked_on_the_forget_set(format_audits) -> None:  # noqa: ANN001
    reference, converted = format_audits["safetensors"], format_audits["onnx"]
    for probe in CONFIG.probes:
        ours, theirs = _subject_counts(converted, probe), _subject_counts(reference, probe)
        assert ours.shape == theirs.shape
        assert (ours != theirs).mean() <= ONNX_COUNT_FRACTION, probe
    r_ours, r_theirs = _r_values(converted), _r_values(reference)
    assert r_ours.keys() == r_theirs.keys()
    assert all(abs(r_ours[k] - r_theirs[k]) <= ONNX_R_TOLERANCE for k in r_ours)
    assert converted.verdict.kind == reference.verdict.kind
    check = json.loads(converted.model.metadata["onnx_check"])
    assert check["passed"] and check["rows"] == FORGET_ROWS and check["on"].startswith("the forget set")
    assert check["max_abs_logit_diff"] < 1e-3


@pytest.mark.slow
def test_cli_check_on_pt2_and_onnx_without_arch(exported: dict[str, Path], forget_subset: Path, cli, tmp_path) -> None:
    """End to end through the CLI: the same verdict and exit code as the safetensors audit, the same R (.pt2) or R
    within ONNX_R_TOLERANCE (ONNX)."""
    codes, reports = {}, {}
    for kind, path in {"safetensors": FMNIST / "gd.safetensors", **exported}.items():
        out = tmp_path / f"{kind}.json"
        args = [path, "--forget", forget_subset, "--reference", REFERENCES[0], "--reference", REFERENCES[1]]
        result = cli("check", *args, "--probes", "gaussian", "--taus", "0,4/255", "--draws", "2", "--json", out)
        assert result.code in (0, 1, 3), result.err
        codes[kind], reports[kind] = result.code, json.loads(out.read_text())
        assert reports[kind]["model"]["metadata"].get("model_format") == (None if kind == "safetensors" else kind)
        assert reports[kind]["model"]["path"] == str(path)
    r_values = {
        kind: {(name, row["tau"]): row["R"] for name, probe in doc["probes"].items() for row in probe["taus"]}
        for kind, doc in reports.items()
    }
    for kind in exported:
        assert codes[kind] == codes["safetensors"] and reports[kind]["verdict"] == reports["safetensors"]["verdict"]
        assert r_values[kind].keys() == r_values["safetensors"].keys()
    assert r_values["pt2"] == r_values["safetensors"]
    for key, value in r_values["safetensors"].items():  # None: R undefined (JSON null), in both or neither
        onnx_value = r_values["onnx"][key]
        assert (onnx_value is None) == (value is None) and (
            value is None or abs(onnx_value - value) <= ONNX_R_TOLERANCE
        )
    onnx_report = json.loads((tmp_path / "onnx.json").read_text())
    assert json.loads(onnx_report["model"]["metadata"]["onnx_check"])["rows"] == FORGET_ROWS


# ------------------------------------------------------------------------------------------- hostile .pt2


def _rewrite_pt2(source: Path, target: Path, edit) -> Path:  # noqa: ANN001
    """Copy a .pt2 archive, passing each member's (name, bytes) through ``edit`` (None drops it)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for info in archive.infolist():
            data = edit(info.filename, archive.read(info))
            if data is not None:
                out.writestr(info.filename, data)
    return target


def _edit_program(change):  # noqa: ANN001, ANN202
    def edit(name: str, data: bytes) -> bytes:
        if not name.endswith("models/model.json"):
            return data
        program = json.loads(data)
        change(program)
        return json.dumps(program).encode()

    return edit


def test_truncated_pt2_is_refused(exported: dict[str, Path], tmp_path: Path, cli) -> None:
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(exported["pt2"].read_bytes()[:-3000])
    with pytest.raises(CheckpointError, match="truncated or corrupted .pt2 archive") as err:
        load_model(truncated)
    assert "\n" not in str(err.value)
    assert_one_line_error(cli("info", truncated), "truncated.pt2", "truncated or corrupted")


def test_corrupted_pt2_member_is_refused(exported: dict[str, Path], tmp_path: Path) -> None:
    raw = bytearray(exported["pt2"].read_bytes())
    start = raw.find(b"weight_6") + 200  # inside the data region of a stored (uncompressed) weight
    raw[start : start + 8] = b"\xff" * 8
    corrupted = tmp_path / "corrupted.pt2"
    corrupted.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_model(corrupted)


def test_pt2_calling_a_python_function_is_refused(exported: dict[str, Path], tmp_path: Path, cli) -> None:
    def call_system(program: dict) -> None:
        program["graph_module"]["graph"]["nodes"][2]["target"] = "torch.os.system"

    hostile = _rewrite_pt2(exported["pt2"], tmp_path / "system.pt2", _edit_program(call_system))
    with pytest.raises(CheckpointError, match="torch.os.system"):
        load_model(hostile)
    assert_one_line_error(cli("info", hostile), "system.pt2", "not an ATen/prims operator")


def test_pt2_with_pickled_weights_or_native_code_is_refused(exported: dict[str, Path], tmp_path: Path) -> None:
    def pickled(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            next(iter(config["config"].values()))["use_pickle"] = True
            return json.dumps(config).encode()
        return data

    with pytest.raises(CheckpointError, match="stored as a pickle"):
        load_model(_rewrite_pt2(exported["pt2"], tmp_path / "pickled.pt2", pickled))

    def with_aoti(name: str, data: bytes) -> bytes:
        return data

    aoti = _rewrite_pt2(exported["pt2"], tmp_path / "aoti.pt2", with_aoti)
    with zipfile.ZipFile(aoti, "a") as archive:
        root = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{root}/data/aotinductor/model/model.so", b"\x7fELF")
    with pytest.raises(CheckpointError, match="AOTInductor"):
        load_model(aoti)


def test_pt2_in_training_mode_is_refused(exported: dict[str, Path], tmp_path: Path) -> None:
    def batchnorm_training(program: dict) -> None:
        for node in program["graph_module"]["graph"]["nodes"]:
            if node["target"] == "torch.ops.aten.batch_norm.default":
                for argument in node["inputs"]:
                    if argument["name"] == "training":
                        argument["arg"] = {"as_bool": True}

    hostile = _rewrite_pt2(exported["pt2"], tmp_path / "training.pt2", _edit_program(batchnorm_training))
    with pytest.raises(CheckpointError, match="training mode"):
        load_model(hostile)


def test_pt2_with_injected_names_is_refused(exported: dict[str, Path], tmp_path: Path) -> None:
    def quote_in_name(program: dict) -> None:
        spec = program["graph_module"]["signature"]["input_specs"][0]["parameter"]
        spec["parameter_name"] = 'features.0")or __import__("os").system("id")or("'

    hostile = _rewrite_pt2(exported["pt2"], tmp_path / "names.pt2", _edit_program(quote_in_name))
    with pytest.raises(CheckpointError, match="not an identifier"):
        load_model(hostile)


@pytest.mark.slow
def test_pt2_with_fixed_batch_is_refused_with_the_reexport_recipe(tmp_path: Path, cli) -> None:
    net = load_model(FMNIST / "gd.safetensors", device="cpu").net.eval()
    fixed = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(4, 1, 28, 28),)), fixed)
    with pytest.raises(CheckpointError, match="fixed batch size of 4") as err:
        load_model(fixed)
    assert 'dynamic_shapes={"x": {0: torch.export.Dim("batch")}}' in str(err.value)
    assert_one_line_error(cli("info", fixed), "fixed batch size of 4", "torch.export.Dim")


def test_torch_save_zip_named_pt2_is_not_a_program(tmp_path: Path) -> None:
    path = tmp_path / "state.pt2"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a torch.export program"):
        load_model(path)


# ------------------------------------------------------------------------------------------- hostile ONNX


def _tiny_onnx(path: Path, op: str = "Relu", batch: str | int = "batch", domain: str = "") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, name="weight")
    nodes = [helper.make_node("MatMul", ["x", "weight"], ["h"]), helper.make_node(op, ["h"], ["logits"], domain=domain)]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3])],
        [weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_tiny_onnx_loads_with_gradients_and_is_checked(tmp_path: Path) -> None:
    model = load_model(_tiny_onnx(tmp_path / "tiny.onnx"), device="cpu")
    assert model.meta.input_shape == (4,) and model.meta.num_classes == 3
    check = json.loads(model.meta.extra["onnx_check"])
    assert check["passed"] and check["rows"] == 16 and check["max_abs_logit_diff"] < 1e-5
    x = torch.rand(5, 4, requires_grad=True)
    expected = torch.relu(x @ (torch.arange(12, dtype=torch.float32).reshape(4, 3) / 10))
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert torch.autograd.grad(model(x).sum(), x)[0].abs().sum() > 0


def test_onnx_external_data_outside_the_folder_is_refused(tmp_path: Path, cli) -> None:
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    folder = tmp_path / "model"
    folder.mkdir()
    path = _tiny_onnx(folder / "escape.onnx")
    proto = onnx.load(str(path))
    convert_model_to_external_data(proto, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save_model(proto, str(path))
    (tmp_path / "secret.bin").write_bytes((folder / "weights.bin").read_bytes())
    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../secret.bin"
    onnx.save_model(proto, str(path))
    with pytest.raises(CheckpointError, match="outside the model's folder"):
        load_model(path)
    assert_one_line_error(cli("info", path), "escape.onnx", "'../secret.bin'", "outside the model's folder")
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = str(tmp_path / "secret.bin")  # absolute
    onnx.save_model(proto, str(path))
    with pytest.raises(CheckpointError, match="outside the model's folder"):
        load_model(path)


def test_unconvertible_onnx_operator_is_named(tmp_path: Path, cli) -> None:
    path = _tiny_onnx(tmp_path / "hardmax.onnx", op="Hardmax")
    with pytest.raises(CheckpointError, match="ONNX operator Hardmax .* cannot be converted"):
        load_model(path)
    custom = _tiny_onnx(tmp_path / "custom.onnx", op="Mystery", domain="com.example")
    assert_one_line_error(cli("info", custom), "ONNX operator Mystery (domain com.example")


def test_onnx_fixed_batch_and_truncation_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="fixed batch size of 1"):
        load_model(_tiny_onnx(tmp_path / "fixed.onnx", batch=1))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(_tiny_onnx(tmp_path / "whole.onnx").read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="truncated, corrupted or not ONNX"):
        load_model(truncated)


def test_missing_onnx_extra_names_the_pip_command(tmp_path: Path, monkeypatch) -> None:
    path = _tiny_onnx(tmp_path / "tiny.onnx")
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # import onnx2torch raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'unlearn-audit\[onnx\]'"):
        load_model(path)


# ------------------------------------------------------------------------------------------- timm


ZOO_ROWS = 48  # the timm/HF audits run untrained tiny networks on this many forget images, 2 draws, and radii
ZOO_CONFIG = AuditConfig(  # large enough to move an untrained network's predictions
    probes=("gaussian", "fgsm"), taus=(0.0, 0.1, 0.3), draws=2, seed=0, panel="none", bootstrap=200
)


def _self_labelled(x: torch.Tensor, model) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Forget images labelled with the untrained network's own clean predictions: the subject is right on every
    clean draw, and noise/FGSM change that, so the counts compared below are not trivially all zero."""
    with torch.no_grad():
        return x, model(x).argmax(1)


def _counts_equal(results: dict, a: str, b: str) -> None:  # noqa: ANN001
    for probe in ZOO_CONFIG.probes:
        ours, theirs = _subject_counts(results[a], probe), _subject_counts(results[b], probe)
        assert np.array_equal(ours, theirs), probe
        assert 0 < ours[:, 0].sum() < ours[:, 0].size * ZOO_CONFIG.draws  # neither all wrong nor all right
    assert _same_r(results[a], results[b])


@pytest.fixture(scope="session")
def timm_models(formats_dir: Path):  # noqa: ANN201
    import timm
    from safetensors.torch import save_file

    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=3).eval())
    path = formats_dir / "test_resnet.safetensors"
    save_file({k: v.contiguous() for k, v in models[0].state_dict().items()}, str(path))  # a plain state dict
    return path, models


def test_timm_checkpoint_loads_with_pretrained_cfg_normalisation(timm_models, tmp_path: Path) -> None:  # noqa: ANN001
    from unlearn_audit import save_model

    path, (network, *_) = timm_models
    model = load_model(path, arch="timm:test_resnet", input_shape="3,28,28", device="cpu")
    assert model.meta.num_classes == 10  # inferred from the classifier named by pretrained_cfg
    assert model.meta.mean == (0.5, 0.5, 0.5) and model.meta.std == (0.5, 0.5, 0.5)  # test_resnet's pretrained_cfg
    assert model.meta.extra["normalisation_source"] == "timm pretrained_cfg"
    x = torch.rand(6, 3, 28, 28, requires_grad=True)
    ours, theirs = model(x), network((x - 0.5) / 0.5)
    assert torch.equal(ours, theirs)
    assert torch.equal(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(theirs.sum(), x)[0])
    saved = tmp_path / "again.safetensors"  # what unlearning methods write: the arch goes into the metadata
    save_model(model, saved)
    assert torch.equal(load_model(saved, device="cpu")(x), ours)
    with pytest.raises(ConfigError, match="did you mean timm:test_resnet"):
        load_model(path, arch="timm:test_resnett")


@pytest.mark.slow
def test_timm_audit_counts_equal_the_in_memory_model(timm_models, forget_subset: Path) -> None:  # noqa: ANN001
    path, (network, reference, _) = timm_models
    normalised = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "num_classes": 10, "input_shape": (3, 28, 28)}
    in_memory = wrap_model(network, name="in-memory", **normalised)
    x = load_samples(forget_subset, num_classes=10, input_shape=(1, 28, 28)).x[:ZOO_ROWS].repeat(1, 3, 1, 1)
    audit = Audit(
        references=[wrap_model(reference, name="timm-reference", **normalised)],
        forget=_self_labelled(x, in_memory),
        config=ZOO_CONFIG,
    )
    loaded = load_model(path, arch="timm:test_resnet", input_shape="3,28,28", device="cpu", name="loaded")
    _counts_equal(audit.run_many({"loaded": loaded, "in-memory": in_memory}), "loaded", "in-memory")


# ------------------------------------------------------------------------------------------- Hugging Face


def _tiny_vit(seed: int):  # noqa: ANN202
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=10,
    )  # fmt: skip
    return ViTForImageClassification(config).eval()


@pytest.fixture(scope="session")
def hf_folder(formats_dir: Path):  # noqa: ANN201
    from transformers import ViTImageProcessor

    network = _tiny_vit(0)
    folder = formats_dir / "tiny-vit"
    network.save_pretrained(folder)
    ViTImageProcessor(size={"height": 28, "width": 28}, image_mean=[0.5], image_std=[0.25]).save_pretrained(folder)
    return folder, network


def test_hf_folder_and_hf_arch_load_offline(hf_folder, monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    from unlearn_audit import save_model

    folder, network = hf_folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_model(folder, device="cpu")
    assert model.meta.input_shape == (1, 28, 28) and model.meta.num_classes == 10
    assert model.meta.mean == pytest.approx((0.5,)) and model.meta.std == pytest.approx((0.25,))
    assert model.meta.extra["normalisation_source"] == "preprocessor_config.json"
    x = torch.rand(5, 1, 28, 28, requires_grad=True)
    ours = model(x)
    theirs = network(pixel_values=(x - model.meta.mean[0]) / model.meta.std[0]).logits
    assert torch.equal(ours, theirs)
    assert torch.equal(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(theirs.sum(), x)[0])
    weights_only = load_model(folder / "model.safetensors", arch=f"hf:{folder}", device="cpu")
    assert torch.equal(weights_only(x), ours)
    saved = tmp_path / "unlearned.safetensors"  # what unlearning methods write: arch hf:DIR in the metadata
    save_model(model, saved)
    assert torch.equal(load_model(saved, device="cpu")(x), ours)


@pytest.mark.slow
def test_hf_audit_counts_equal_the_in_memory_model(hf_folder, forget_subset: Path) -> None:  # noqa: ANN001
    from unlearn_audit.io.formats.huggingface import ImageClassifierLogits

    folder, network = hf_folder
    loaded = load_model(folder, device="cpu", name="loaded")
    settings = {"mean": loaded.meta.mean, "std": loaded.meta.std, "num_classes": 10, "input_shape": (1, 28, 28)}
    in_memory = wrap_model(ImageClassifierLogits(network), name="in-memory", **settings)
    x = load_samples(forget_subset, num_classes=10, input_shape=(1, 28, 28)).x[:ZOO_ROWS]
    audit = Audit(
        references=[wrap_model(ImageClassifierLogits(_tiny_vit(1)), name="vit-reference", **settings)],
        forget=_self_labelled(x, in_memory),
        config=ZOO_CONFIG,
    )
    _counts_equal(audit.run_many({"loaded": loaded, "in-memory": in_memory}), "loaded", "in-memory")


def test_hf_folder_naming_custom_code_is_refused(hf_folder, tmp_path: Path, cli) -> None:  # noqa: ANN001
    import shutil

    folder, _ = hf_folder
    hostile = tmp_path / "custom-code"
    shutil.copytree(folder, hostile)
    config = json.loads((hostile / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    (hostile / "config.json").write_text(json.dumps(config))
    (hostile / "modeling_evil.py").write_text("raise SystemExit('custom code ran')\n")
    with pytest.raises(CheckpointError, match=r"names custom code \(auto_map\)"):
        load_model(hostile)
    assert_one_line_error(cli("info", hostile), "config.json", "custom code (auto_map)")


def test_hf_folder_without_processor_config_needs_mean_and_std(hf_folder, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    folder, _ = hf_folder
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / "preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match="normalisation is unknown; pass --mean and --std"):
        load_model(bare)
    assert load_model(bare, mean=[0.5], std=[0.25], device="cpu").meta.extra["normalisation_source"] == "options"


def test_hf_shards_outside_the_folder_and_unknown_types_are_refused(hf_folder, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    folder, _ = hf_folder
    sharded = tmp_path / "sharded"
    shutil.copytree(folder, sharded)
    (sharded / "model.safetensors").rename(tmp_path / "outside.safetensors")
    index = {"metadata": {}, "weight_map": {"classifier.bias": "../outside.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="is not a file in the model's folder"):
        load_model(sharded)
    config = json.loads((folder / "config.json").read_text())
    (sharded / "config.json").write_text(json.dumps({**config, "model_type": "evil-net"}))
    with pytest.raises(CheckpointError, match="'evil-net' is not built into transformers"):
        load_model(sharded)
