"""Loading checkpoints from strangers: metadata, registry, factories, prefixes, diagnosis, pickles."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tests.conftest import assert_one_line_error
from unlearn_audit import AuditableModel, CheckpointError, ConfigError, load_model, save_model, wrap_model
from unlearn_audit.io.architectures import build_architecture
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
