"""Loading checkpoints from strangers: metadata, registry, factories, prefixes, diagnosis, pickles."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from tests.conftest import assert_one_line_error
from unlearn_audit import AuditableModel, CheckpointError, ConfigError, InputError, load_model, save_model, wrap_model
from unlearn_audit.audit import Audit
from unlearn_audit.io.architectures import build_architecture
from unlearn_audit.io.first_layer import find_first_layer, first_layer_from_weights
from unlearn_audit.io.images import rgb_to_grey
from unlearn_audit.io.models import ModelMeta

FACTORY = '''
import torch
from torch import nn

class Odd(nn.Module):
    """An architecture the package has never seen."""
    def __init__(self, num_classes):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 5), nn.GELU(), nn.AdaptiveAvgPool2d(3), nn.Flatten())
        self.head = nn.Linear(36, num_classes)
    def forward(self, x):
        return self.head(self.trunk(x))

def build(num_classes):
    return Odd(num_classes)
'''


@pytest.fixture
def factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "odd_arch.py"
    path.write_text(FACTORY)
    return path


def _plain_state_dict_file(tmp_path: Path, factory_file: Path, prefix: str = "") -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    net = build_architecture(f"{factory_file}:build", 10, None)
    path = tmp_path / "stranger.safetensors"
    save_file({prefix + k: v.contiguous() for k, v in net.state_dict().items()}, str(path))  # no metadata at all
    return path, net


def test_unknown_architecture_loads_from_plain_state_dict_via_factory(tmp_path, factory_file):
    path, net = _plain_state_dict_file(tmp_path, factory_file)
    model = load_model(path, arch=f"{factory_file}:build", num_classes=10, device="cpu")
    x = torch.rand(3, 1, 12, 12)
    assert torch.equal(model(x), net.eval()(x))
    assert model.meta.num_classes == 10 and len(model.meta.sha256 or "") == 64


def test_factory_via_cli(tmp_path, factory_file, cli):
    path, _ = _plain_state_dict_file(tmp_path, factory_file)
    result = cli("info", path, "--arch", f"{factory_file}:build", "--num-classes", "10")
    assert result.code == 0, result.err
    assert "Odd" not in result.err and "parameters" in result.out


def test_num_classes_inferred_when_missing(tmp_path, factory_file):
    path, _ = _plain_state_dict_file(tmp_path, factory_file)
    model = load_model(path, arch=f"{factory_file}:build", device="cpu")
    assert model.meta.num_classes == 10


@pytest.mark.parametrize("prefix", ["module.", "model.", "module.model.", "_orig_mod."])
def test_wrapper_prefixes_are_tolerated(tmp_path, factory_file, prefix):
    path, net = _plain_state_dict_file(tmp_path, factory_file, prefix)
    model = load_model(path, arch=f"{factory_file}:build", num_classes=10, device="cpu")
    x = torch.rand(2, 1, 12, 12)
    assert torch.equal(model(x), net.eval()(x))


def test_metadata_round_trip(tmp_path):
    torch.manual_seed(1)
    net = build_architecture("small-cnn", 7, (3, 16, 16))
    meta = ModelMeta(
        name="m",
        arch="small-cnn",
        num_classes=7,
        input_shape=(3, 16, 16),
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.2, 0.25),
        class_names=tuple("abcdefg"),
    )
    digest = save_model(AuditableModel(net, meta), tmp_path / "m.safetensors", method="gd", hparams={"lr": 0.01})
    loaded = load_model(tmp_path / "m.safetensors", device="cpu")
    assert loaded.meta.sha256 == digest
    assert (loaded.meta.arch, loaded.meta.num_classes, loaded.meta.input_shape) == ("small-cnn", 7, (3, 16, 16))
    assert loaded.meta.mean == (0.5, 0.4, 0.3) and loaded.meta.std == (0.2, 0.2, 0.25)
    assert loaded.meta.class_names == tuple("abcdefg")
    assert loaded.meta.extra["method"] == "gd" and json.loads(loaded.meta.extra["hparams"]) == {"lr": 0.01}
    x = torch.rand(4, 3, 16, 16)
    expected = net.eval()(
        (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.2, 0.25]).view(1, 3, 1, 1)
    )
    assert torch.allclose(loaded(x), expected, atol=1e-6)


def test_save_is_deterministic(tmp_path):
    torch.manual_seed(2)
    model = AuditableModel(
        build_architecture("mlp-16", 3, (5,)), ModelMeta(arch="mlp-16", num_classes=3, input_shape=(5,))
    )
    assert save_model(model, tmp_path / "a.safetensors") == save_model(model, tmp_path / "b.safetensors")


def test_explicit_arguments_override_metadata(tmp_path, caplog):
    model = AuditableModel(
        build_architecture("mlp-8", 3, (4,)), ModelMeta(arch="mlp-8", num_classes=3, input_shape=(4,))
    )
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors", mean="1,1,1,1", std="2,2,2,2", device="cpu")
    assert loaded.meta.mean == (1.0,) * 4


@pytest.mark.parametrize(
    "arch, shape",
    [
        ("mlp", (64,)),
        ("mlp-32x16", (1, 8, 8)),
        ("small-cnn", (1, 28, 28)),
        ("resnet18-cifar", (3, 32, 32)),
        ("resnet18", (3, 64, 64)),
        ("vgg11_bn", (3, 32, 32)),
        ("resnet18", (1, 32, 32)),
    ],
)
def test_registry_and_torchvision_names_build_and_run(arch, shape):
    net = build_architecture(arch, 10, shape).eval()
    with torch.no_grad():
        assert net(torch.rand(2, *shape)).shape == (2, 10)


def test_resnet18_cifar_is_the_cifar_variant():
    net = build_architecture("resnet18-cifar", 10, (3, 32, 32))
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)


def test_stem_mismatch_hint(tmp_path):
    net = build_architecture("resnet18", 10, (3, 32, 32))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "r.safetensors"))
    with pytest.raises(CheckpointError, match="7x7 stem .* --arch resnet18$"):
        load_model(tmp_path / "r.safetensors", arch="resnet18-cifar", num_classes=10, device="cpu")


def test_class_count_mismatch_hint(tmp_path):
    net = build_architecture("small-cnn", 10, (1, 28, 28))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "c.safetensors"))
    with pytest.raises(CheckpointError, match="classifier has 10 outputs; pass --num-classes"):
        load_model(tmp_path / "c.safetensors", arch="small-cnn", num_classes=5, device="cpu")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("input_shape", '["a", 28, 28]', "must be lists of numbers"),
        ("mean", '[0.5, "x"]', "must be lists of numbers"),
        ("num_classes", "ten", "num_classes 'ten' is not an integer"),
    ],
)
def test_malformed_metadata_is_one_checkpoint_error(tmp_path, cli, key, value, fragment):
    """A safetensors file's metadata is read like a .pt2's or an ONNX file's (FileMetadata.parse): a value that is
    not what the key needs is a one-line error naming the file, never an internal error."""
    net = build_architecture("small-cnn", 10, (1, 28, 28))
    path = tmp_path / "m.safetensors"
    meta = {"arch": "small-cnn", "num_classes": "10", "input_shape": "[1, 28, 28]", key: value}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=fragment):
        load_model(path, device="cpu")
    assert_one_line_error(cli("info", path), str(path), fragment)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    net = build_architecture("small-cnn", 10, (1, 28, 28))
    state = {k: v.contiguous() for k, v in net.state_dict().items() if not k.startswith("classifier.3")}
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(tmp_path / "k.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"2 missing \(classifier.3.bias, classifier.3.weight\); 1 unexpected \(extra.weight\)"
    ):
        load_model(tmp_path / "k.safetensors", arch="small-cnn", num_classes=10, device="cpu")


def test_missing_batchnorm_counters_are_tolerated(tmp_path):
    net = build_architecture("small-cnn", 10, (1, 28, 28))
    state = {k: v.contiguous() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "bn.safetensors"))
    assert (
        load_model(tmp_path / "bn.safetensors", arch="small-cnn", num_classes=10, device="cpu").meta.num_classes == 10
    )


def test_pickle_refused_without_flag_and_weights_only_with_it(tmp_path, cli):
    net = build_architecture("mlp-8", 3, (4,))
    path = tmp_path / "m.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)
    result = cli("info", path, "--arch", "mlp-8", "--input-shape", "4")
    assert_one_line_error(result, "m.pt", "pickled", "--allow-pickle")
    model = load_model(path, arch="mlp-8", input_shape="4", allow_pickle=True, device="cpu")
    assert model.meta.num_classes == 3


def test_malicious_pickle_is_not_executed(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (Path(tmp_path / "pwned").touch, ())

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": Evil()}, protocol=4))
    with pytest.raises(CheckpointError, match="weights-only"):
        load_model(path, arch="mlp-8", allow_pickle=True, device="cpu")
    assert not (tmp_path / "pwned").exists()


def test_pickle_disguised_as_safetensors(tmp_path, cli):
    net = build_architecture("mlp-8", 3, (4,))
    path = tmp_path / "sneaky.safetensors"
    torch.save(net.state_dict(), path)
    assert_one_line_error(cli("info", path, "--arch", "mlp-8"), "sneaky.safetensors", "pickled")


def test_truncated_safetensors(tmp_path, cli):
    net = build_architecture("small-cnn", 10, (1, 28, 28))
    path = tmp_path / "t.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[:-1000])
    assert_one_line_error(cli("info", path, "--arch", "small-cnn"), "t.safetensors", "truncated or corrupted")
    path.write_bytes(b"\x01\x02")
    assert_one_line_error(cli("info", path, "--arch", "small-cnn"), "truncated (2 bytes)")


def test_header_that_lies_about_shapes(tmp_path, cli):
    path = tmp_path / "lie.safetensors"
    save_file({"w": torch.zeros(4, 4)}, str(path))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = raw[8 : 8 + n].decode().replace("[4,4]", "[4,5]")
    assert len(header) == n
    path.write_bytes(raw[:8] + header.encode() + raw[8 + n :])
    assert_one_line_error(cli("info", path, "--arch", "mlp-8"), "lie.safetensors", "header says shape [4, 5]")


def test_missing_file_and_missing_arch(tmp_path, cli):
    assert_one_line_error(cli("info", tmp_path / "nope.safetensors"), "nope.safetensors", "no such file")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "bare.safetensors"))
    assert_one_line_error(cli("info", tmp_path / "bare.safetensors"), "no 'arch'", "--arch")


def test_bad_options_are_one_line_errors(tmp_path, cli, fmnist_dir):
    model = fmnist_dir / "original.safetensors"
    assert_one_line_error(cli("info", model, "--arch", "no-such-net"), "unknown architecture")
    assert_one_line_error(cli("info", model, "--mean", "a,b"), "--mean")
    assert_one_line_error(cli("info", model, "--mean", "0.5", "--std", "0"), "std values must be positive")
    assert_one_line_error(cli("info", model, "--input-shape", "1,x"), "--input-shape")
    assert_one_line_error(cli("info", model, "--device", "tpu9"), "--device")
    assert_one_line_error(cli("info", model, "--arch", str(tmp_path / "nofile.py") + ":build"), "does not exist")


def test_wrap_model_passes_through_and_hashes():
    net = nn.Linear(3, 2)
    wrapped = wrap_model(net, num_classes=2)
    assert wrap_model(wrapped) is wrapped
    assert len(wrapped.meta.sha256 or "") == 64
    with pytest.raises(ConfigError):
        wrap_model("not a model")  # type: ignore[arg-type]


def test_a_model_built_in_memory_saves_and_reloads_without_arch(tmp_path):
    """wrap_model records the registry name (not the class name), so the saved file reloads on its own."""
    import torch

    from unlearn_audit.io.architectures import build_architecture
    from unlearn_audit.io.models import load_model, save_model, wrap_model

    net = build_architecture("small-cnn", 10, (1, 8, 8))
    wrapped = wrap_model(net, name="m", num_classes=10, input_shape=(1, 8, 8))
    assert wrapped.meta.arch == "small-cnn"
    save_model(wrapped, tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors", device="cpu")
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(again.eval()(x), wrapped.eval()(x))


# ------------------------------------------------------------------------------ input shape from the weights
FLAT_SCRIPTED = '''
import torch
import torch.nn.functional as F
from torch import nn


class FlatParams(nn.Module):
    """Every weight in one flat vector (as FSDP keeps them), and scripted: nothing names the first layer."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.flat = nn.Parameter(torch.randn(36 + 4 * num_classes) * 0.3)

    def forward(self, x):
        h = F.adaptive_avg_pool2d(F.relu(F.conv2d(x, self.flat[:36].view(4, 1, 3, 3))), 1).flatten(1)
        return F.linear(h, self.flat[36:].view(self.num_classes, 4))


def build(num_classes):
    return torch.jit.script(FlatParams(num_classes))
'''

FLAT_MLP = """
from torch import nn

def build(num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, num_classes))
"""

QUICK_CHECK = ("--probes", "gaussian", "--taus", "0,0.01", "--draws", "2", "--bootstrap", "200", "--panel", "none")


class HeadFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 3)  # registered first, runs last
        self.register_buffer("mean", torch.tensor([0.5]).view(1, 1, 1, 1))
        self.trunk = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.head(self.trunk(x - self.mean))


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Parameter(torch.randn(3, 6))
        self.kernel = nn.Parameter(torch.randn(6, 2, 3, 3))  # groups=2: 4 input channels

    def forward(self, x):
        if float(x.mean()) > -1:  # data-dependent control flow: torch.fx cannot trace this
            x = x * 1.0
        return F.linear(F.conv2d(x, self.kernel, groups=2).mean((2, 3)), self.out)


@pytest.mark.parametrize(
    "net, kind, value, tensor",
    [
        (HeadFirst(), "channels", (1,), "trunk.0.weight"),
        (Functional(), "channels", (4,), "kernel"),
        (nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3)), "channels", (3,), "0.running_mean"),
        (nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), "features", (784,), "1.weight"),
        (nn.Sequential(nn.GroupNorm(1, 3), nn.Conv2d(3, 4, 3)), "channels", (3,), "0.weight"),
        (nn.Sequential(nn.ConvTranspose2d(2, 4, 3), nn.Flatten()), "channels", (2,), "0.weight"),
    ],
)
def test_the_first_layer_is_found_by_running_the_network(net, kind, value, tensor):
    layer, how = find_first_layer(net)
    assert how == "traced" and layer is not None
    assert (layer.kind, layer.value, layer.tensor, layer.method) == (kind, value, tensor, "trace")
    assert "the first layer that reads the input" in layer.evidence()


def test_a_network_that_reshapes_its_channels_itself_gets_its_input_as_it_is():
    class Averaging(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x):
            return self.conv(x.mean(1, keepdim=True)).mean((2, 3))

    layer, how = find_first_layer(Averaging(), torch.rand(2, 3, 8, 8))
    assert layer is None and "conv.weight [4, 1, 3, 3]) does not see the input's channels" in how
    audit = Audit(wrap_model(Averaging()), references=[Averaging()], forget=(torch.rand(20, 3, 8, 8), [0, 1] * 10))
    assert audit.forget.input_shape == (3, 8, 8)


def test_tracing_leaves_training_flags_alone_and_runs_nothing_after_the_first_layer():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    net[1].eval()
    before = net[1].running_mean.clone()
    find_first_layer(net, torch.rand(4, 1, 6, 6))
    assert net.training and net[0].training and not net[1].training
    assert torch.equal(net[1].running_mean, before)


def test_the_weights_decide_when_the_forward_cannot_run():
    class Picky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            if x.shape[0] != 64:
                raise ValueError("this network only takes batches of 64")
            return self.head(self.stem(x).mean((2, 3)))

    layer, how = find_first_layer(Picky(), torch.rand(3, 1, 8, 8))
    assert layer is not None and (layer.method, layer.tensor, layer.value) == ("weights", "stem.weight", (1,))
    assert "batches of 64" in how and "guess" in layer.evidence()
    assert first_layer_from_weights(HeadFirst()).tensor == "head.weight"  # why the trace comes first


def test_a_registry_architecture_takes_its_channels_from_the_file(tmp_path, cli):
    net = build_architecture("squeezenet1_1", 10, (1, 64, 64))  # a greyscale torchvision model, no metadata
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "sq.safetensors"))
    model = load_model(tmp_path / "sq.safetensors", arch="squeezenet1_1", num_classes=10, device="cpu")
    assert model.meta.input_shape == (1, 224, 224)
    assert model.meta.input_shape_source == (
        "channels inferred from the file's features.0.weight [64, 1, 3, 3], height and width the default of "
        "--arch squeezenet1_1"
    )
    x = torch.rand(2, 1, 64, 64)
    assert torch.equal(model(x), net.eval()(x))
    result = cli("info", tmp_path / "sq.safetensors", "--arch", "squeezenet1_1", "--num-classes", "10")
    assert result.code == 0 and "1x224x224" in result.out
    assert "it reads 1x224x224, channels inferred from the file's features.0.weight" in result.err


def _stranger(tmp_path: Path, source: str, seed: int = 0, stem: str = "stranger") -> tuple[Path, str]:
    factory = tmp_path / f"{stem}_arch.py"
    factory.write_text(source)
    torch.manual_seed(seed)
    net = build_architecture(f"{factory}:build", 10, None)
    path = tmp_path / f"{stem}-{seed}.safetensors"
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path))
    return path, f"{factory}:build"


def _rgb_pngs(tmp_path: Path, n: int = 24, size: int = 12, name: str = "rgb") -> Path:
    from PIL import Image

    rng = np.random.default_rng(3)
    (tmp_path / name).mkdir()
    rows = ["path,label"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB").save(tmp_path / name / f"{i}.png")
        rows.append(f"{name}/{i}.png,{i % 10}")
    (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / f"{name}.csv"


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "no input shape in the metadata" in line]


def test_info_and_check_infer_a_strangers_input_and_say_so_once(tmp_path, cli, factory_file):
    model, arch = _stranger(tmp_path, FACTORY)
    refs = [_stranger(tmp_path, FACTORY, seed)[0] for seed in (1, 2)]
    forget, holdout = _rgb_pngs(tmp_path), _rgb_pngs(tmp_path, name="holdout")
    loading = ("--arch", arch, "--num-classes", "10", "--device", "cpu")
    inferred = cli("info", model, *loading, "--data", forget, "--json", tmp_path / "a.json")
    assert inferred.code == 0, inferred.err
    (note,) = _notes(inferred.err)
    assert "reads 1xHxW, inferred from trunk.0.weight [4, 1, 5, 5]" in note and "RGB images converted" in note
    explicit = cli("info", model, *loading, "--data", forget, "--input-shape", "1,12,12", "--json", tmp_path / "b.json")
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["accuracy"] == b["accuracy"] and a["input_shape"] == b["input_shape"] == [1, 12, 12] and not explicit.err
    check = [*loading, *QUICK_CHECK, "--forget", forget, "--holdout", holdout, "--reference", refs[0]]
    result = cli("check", model, *check, "--reference", refs[1])
    assert result.code in (0, 1, 3), result.err
    assert len(_notes(result.err)) == 1  # model, two references, forget and holdout: one line


def test_no_inference_and_a_shape_clash_is_a_one_line_error(tmp_path, cli):
    model, arch = _stranger(tmp_path, FLAT_SCRIPTED)
    ref, _ = _stranger(tmp_path, FLAT_SCRIPTED, seed=1)
    forget = _rgb_pngs(tmp_path)
    loading = ("--arch", arch, "--num-classes", "10", "--device", "cpu")
    for result in (
        cli("info", model, *loading, "--data", forget),
        cli("check", model, *loading, *QUICK_CHECK, "--forget", forget, "--reference", ref),
    ):
        assert_one_line_error(
            result, "rgb.csv: model", "inputs of shape 3x12x12", "expects 1 input channel(s)", "--input-shape 1,12,12"
        )
        assert "internal error" not in result.err
    assert cli("info", model, *loading, "--data", forget, "--input-shape", "1,12,12").code == 0
    loaded = load_model(model, arch=arch, num_classes=10, device="cpu")
    with pytest.raises(InputError, match="--input-shape 1,12,12"):
        Audit(loaded, references=[ref], forget=forget, model_options={"arch": arch, "num_classes": 10})
    options = {"arch": arch, "num_classes": 10, "input_shape": "1,12,12"}
    fitted = Audit(model, references=[ref], forget=forget, model_options=options).forget  # (the probe engine
    assert fitted.input_shape == (1, 12, 12)  # cannot run TorchScript models, so no check run here)


def test_a_wrong_input_shape_flag_names_what_the_model_reads(tmp_path, cli):
    model, arch = _stranger(tmp_path, FACTORY)
    result = cli(
        "info", model, "--arch", arch, "--num-classes", "10", "--data", _rgb_pngs(tmp_path), "--input-shape", "3,12,12"
    )
    assert_one_line_error(
        result, "expects 1 input channel(s) (input shape 3x12x12: --input-shape)", "--input-shape 1,12,12"
    )


def test_a_flattening_model_gets_grey_or_a_one_line_error(tmp_path, cli):
    model, arch = _stranger(tmp_path, FLAT_MLP)
    loading = ("--arch", arch, "--num-classes", "10", "--device", "cpu")
    ok = cli("info", model, *loading, "--data", _rgb_pngs(tmp_path))  # 3x12x12 RGB -> 144 grey values
    assert ok.code == 0 and "reads 144 features (flattened), inferred from 1.weight [16, 144]" in _notes(ok.err)[0]
    bad = cli("info", model, *loading, "--data", _rgb_pngs(tmp_path, size=10, name="small"))
    assert_one_line_error(bad, "inputs of shape 3x10x10", "expects 144 input features", "(input shape 144 features")


def test_the_python_api_fits_in_memory_tensors_and_checks_every_model():
    torch.manual_seed(0)
    grey_net, other_grey = HeadFirst(), HeadFirst()
    rgb = torch.randint(0, 256, (24, 3, 8, 8)).float() / 255
    labels = torch.arange(24) % 3
    audit = Audit(grey_net, references=[other_grey], forget=(rgb, labels), holdout=(rgb[:12], labels[:12]))
    assert torch.equal(audit.forget.x, rgb_to_grey(rgb)) and audit.holdout.x.shape == (12, 1, 8, 8)
    rgb_net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(InputError, match="model reference-0 cannot read inputs of shape 1x8x8: it expects 3 input"):
        Audit(grey_net, references=[rgb_net], forget=(rgb, labels))
    flat_two_channel = torch.rand(24, 2, 8, 8)
    with pytest.raises(InputError, match=r"inputs of shape 2x8x8: it expects 1 input channel\(s\) \(input shape 1xHxW"):
        Audit(grey_net, references=[other_grey], forget=(flat_two_channel, labels))
