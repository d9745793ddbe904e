"""Loading forget sets: image CSVs (PNG), tabular CSVs, index CSVs, npz, and every bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import assert_one_line_error
from unlearn_audit import InputError, load_samples, samples_from_tensors
from unlearn_audit.io.images import convert_channels, grey_to_rgb, is_eight_bit, rgb_to_grey


def _png_set(tmp_path: Path, n: int = 6, size=(28, 28), mode="L", sub="imgs") -> Path:
    folder = tmp_path / sub
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for i in range(n):
        shape = size[::-1] if mode == "L" else (*size[::-1], 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(folder / f"{i}.png")
        rows.append(f"{sub}/{i}.png,{i % 3}")
    csv = tmp_path / "forget.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def test_png_csv_loads_with_right_shape_and_range(tmp_path):
    csv = _png_set(tmp_path)
    s = load_samples(csv, input_shape=(1, 28, 28), num_classes=10)
    assert s.x.shape == (6, 1, 28, 28) and s.x.dtype == torch.float32
    assert 0.0 <= float(s.x.min()) and float(s.x.max()) <= 1.0 and float(s.x.max()) > 0.9
    assert s.y.tolist() == [0, 1, 2, 0, 1, 2] and s.ids[0] == "imgs/0.png"
    expected = np.asarray(Image.open(tmp_path / "imgs" / "3.png"), dtype=np.float32) / 255
    assert np.allclose(s.x[3, 0].numpy(), expected)
    assert len(s.sha256 or "") == 64


def test_rgb_images_become_grey_for_a_grey_model_and_vice_versa(tmp_path):
    csv = _png_set(tmp_path, mode="RGB")
    assert load_samples(csv, input_shape=(1, 28, 28)).x.shape == (6, 1, 28, 28)
    assert load_samples(csv, input_shape=(3, 28, 28)).x.shape == (6, 3, 28, 28)
    grey = _png_set(tmp_path / "g")
    rgb = load_samples(grey, input_shape=(3, 28, 28)).x
    assert rgb.shape == (6, 3, 28, 28) and torch.equal(rgb[:, 0], rgb[:, 2])


def test_data_root_and_id_column(tmp_path):
    _png_set(tmp_path / "root")
    csv = tmp_path / "elsewhere.csv"
    csv.write_text("id,path,label\nsubject-17,imgs/0.png,1\n,imgs/1.png,2\n")
    s = load_samples(csv, data_root=tmp_path / "root")
    assert s.ids == ("subject-17", "imgs/1.png")


def test_tabular_csv(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("\ufeffage,income,label,id\n0.5,-1.25,1,a\n1.5,2.0,0,b\n")
    s = load_samples(csv, num_classes=2)
    assert s.domain == "tabular" and s.bounds is None
    assert s.x.tolist() == [[0.5, -1.25], [1.5, 2.0]] and s.ids == ("a", "b")


def test_index_csv_with_directive_and_dataset_option(tmp_path):
    from sklearn.datasets import load_digits

    csv = tmp_path / "i.csv"
    csv.write_text("# dataset=digits\nindex,label\n0,0\n5,5\n")
    s = load_samples(csv)
    digits = load_digits()
    assert s.x.shape == (2, 1, 8, 8) and np.allclose(s.x[1, 0].numpy(), digits.images[5] / 16)
    bare = tmp_path / "bare.csv"
    bare.write_text("index\n3\n")
    assert load_samples(bare, dataset="digits").y.tolist() == [int(digits.target[3])]


def test_fashion_mnist_index_csv_uses_debian_files(fmnist_dir):
    s = load_samples(fmnist_dir / "forget.csv", num_classes=10, input_shape=(1, 28, 28))
    assert len(s) == 500 and set(s.y.tolist()) == {0}
    bundled = load_samples(fmnist_dir / "forget.npz")
    assert torch.allclose(s.x, bundled.x, atol=1 / 510) and s.ids == bundled.ids


def test_npz(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.full((3, 28, 28), 255, np.uint8), y=np.array([1, 2, 3]))
    s = load_samples(tmp_path / "d.npz", num_classes=10)
    assert s.x.shape == (3, 1, 28, 28) and float(s.x.max()) == 1.0


def test_in_memory_tensors():
    s = load_samples((torch.rand(4, 1, 5, 5), torch.tensor([0, 1, 0, 1])))
    assert len(s) == 4 and s.ids == ("0", "1", "2", "3")
    with pytest.raises(InputError, match="must lie in"):
        samples_from_tensors(torch.rand(2, 1, 4, 4) * 255, [0, 1])


def test_duplicates_warn(tmp_path, caplog):
    csv = tmp_path / "d.csv"
    csv.write_text("# dataset=digits\nindex,label\n1,1\n1,1\n")
    s = load_samples(csv)
    assert len(s) == 2 and any("more than once" in w for w in s.warnings)


# ------------------------------------------------------------------------------------------- bad inputs, CLI


@pytest.fixture
def model_path(fmnist_dir) -> Path:
    return fmnist_dir / "original.safetensors"


def _info(cli, model_path, data, *extra):
    return cli("info", model_path, "--data", data, *extra)


def test_missing_file(cli, model_path, tmp_path):
    assert_one_line_error(_info(cli, model_path, tmp_path / "none.csv"), "none.csv", "no such file")


def test_unreadable_encoding(cli, model_path, tmp_path):
    bad = tmp_path / "latin.csv"
    bad.write_bytes("path,label\nim\xe9.png,1\n".encode("latin-1"))
    assert_one_line_error(_info(cli, model_path, bad), "latin.csv:2", "not valid UTF-8")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_permissions(cli, model_path, tmp_path):  # pragma: no cover - CI runs as root
    bad = tmp_path / "secret.csv"
    bad.write_text("index,label\n1,1\n")
    bad.chmod(0)
    assert_one_line_error(_info(cli, model_path, bad), "secret.csv", "cannot read")


@pytest.mark.parametrize(
    "label, fragment",
    [
        ("abc", "label 'abc' is not an integer"),
        ("2.5", "not an integer"),
        ("10", "label 10 outside 0..9 (num_classes=10)"),
        ("-1", "label -1 outside"),
    ],
)
def test_bad_labels(cli, model_path, tmp_path, label, fragment):
    csv = tmp_path / "f.csv"
    csv.write_text(f"# dataset=fashion-mnist:test\nindex,label\n0,0\n1,{label}\n")
    assert_one_line_error(_info(cli, model_path, csv), "f.csv:4", fragment)


def test_inconsistent_image_shapes(cli, model_path, tmp_path):
    csv = _png_set(tmp_path, n=2)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "imgs" / "1.png")
    assert_one_line_error(_info(cli, model_path, csv), "forget.csv:3", "20x20", "expects 28x28")
    assert_one_line_error(cli("info", model_path, "--data", csv, "--input-shape", "1,28,28"), "expects 28x28")
    with pytest.raises(InputError, match="all images must have one size"):
        load_samples(csv)


def test_inconsistent_row_lengths(cli, model_path, tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_text("index,label\n1,1\n2\n")
    assert_one_line_error(
        _info(cli, model_path, csv, "--dataset", "fashion-mnist:test"), "r.csv:3", "1 fields but the header has 2"
    )


def test_empty_sets(cli, model_path, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_one_line_error(_info(cli, model_path, empty), "empty.csv", "empty")
    header_only = tmp_path / "h.csv"
    header_only.write_text("path,label\n")
    assert_one_line_error(_info(cli, model_path, header_only), "h.csv", "no samples")
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 1, 28, 28), np.float32), y=np.zeros(0, np.int64))
    assert_one_line_error(_info(cli, model_path, tmp_path / "e.npz"), "e.npz", "empty")


def test_path_outside_root(cli, model_path, tmp_path):
    _png_set(tmp_path / "outside")
    root = tmp_path / "root"
    root.mkdir()
    csv = root / "f.csv"
    csv.write_text("path,label\n../outside/imgs/0.png,1\n")
    assert_one_line_error(_info(cli, model_path, csv), "f.csv:2", "outside the data root")
    os.symlink(tmp_path / "outside" / "imgs" / "0.png", root / "link.png")
    csv.write_text("path,label\nlink.png,1\n")
    assert_one_line_error(_info(cli, model_path, csv), "f.csv:2", "outside the data root")
    csv.write_text(f"path,label\n{tmp_path / 'outside' / 'imgs' / '0.png'},1\n")
    assert_one_line_error(_info(cli, model_path, csv), "outside the data root")


def test_zero_byte_and_corrupt_images(cli, model_path, tmp_path):
    csv = _png_set(tmp_path, n=2)
    (tmp_path / "imgs" / "0.png").write_bytes(b"")
    assert_one_line_error(_info(cli, model_path, csv), "forget.csv:2", "zero-byte")
    (tmp_path / "imgs" / "0.png").write_bytes(b"\x89PNG garbage")
    assert_one_line_error(_info(cli, model_path, csv), "forget.csv:2", "not a readable image")


def test_wrong_image_mode(cli, model_path, tmp_path):
    csv = _png_set(tmp_path, n=1)
    Image.fromarray(np.zeros((28, 28), np.float32), mode="F").save(tmp_path / "imgs" / "0.tiff")
    csv.write_text("path,label\nimgs/0.tiff,1\n")
    assert_one_line_error(_info(cli, model_path, csv), "mode F", "convert it")


def test_nan_features(cli, tmp_path):
    csv = tmp_path / "tab.csv"
    csv.write_text("a,b,label\n1,2,0\n1,nan,1\n")
    with pytest.raises(InputError, match=r"tab.csv:3: column 'b' is nan"):
        load_samples(csv)


def test_index_out_of_range_and_unknown_dataset(cli, model_path, tmp_path):
    csv = tmp_path / "i.csv"
    csv.write_text("# dataset=fashion-mnist:test\nindex,label\n10000,1\n")
    assert_one_line_error(_info(cli, model_path, csv), "i.csv:3", "index 10000 outside 0..9999")
    csv.write_text("# dataset=mnist-ish\nindex,label\n1,1\n")
    assert_one_line_error(_info(cli, model_path, csv), "unknown")
    csv.write_text("index,label\n1,1\n")
    assert_one_line_error(_info(cli, model_path, csv), "i.csv", "without a dataset")


def test_row_limit(tmp_path):
    csv = tmp_path / "big.csv"
    csv.write_text("a,label\n" + "1,0\n" * 20)
    with pytest.raises(InputError, match="more than 10 rows"):
        load_samples(csv, max_rows=10)


def test_info_reports_accuracy_with_interval(cli, fmnist_dir):
    result = cli("info", fmnist_dir / "original.safetensors", "--data", fmnist_dir / "test.csv")
    assert result.code == 0, result.err
    assert "95% Wilson CI" in result.out and "accuracy" in result.out


# --------------------------------------------------------------------------------------- greyscale <-> RGB


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 9), width=st.integers(1, 9))
def test_rgb_to_grey_is_pillows_convert_l_exactly(seed, height, width):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(pixels, "RGB").convert("L"), dtype=np.float32) / 255.0
    x = torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    assert torch.equal(rgb_to_grey(x)[0, 0], torch.from_numpy(want))
    assert torch.equal(rgb_to_grey(x, eight_bit=True), rgb_to_grey(x))


def test_float_rgb_uses_the_itu_601_weights():
    x = torch.tensor([0.1234567, 0.5, 0.9]).view(1, 3, 1, 1)  # not 8-bit levels
    assert not is_eight_bit(x)
    assert float(rgb_to_grey(x)) == pytest.approx(0.299 * 0.1234567 + 0.587 * 0.5 + 0.114 * 0.9, abs=1e-7)
    grey = torch.rand(2, 1, 4, 4)
    assert torch.equal(grey_to_rgb(grey), grey.repeat(1, 3, 1, 1))
    with pytest.raises(ValueError, match="only grey <-> RGB"):
        convert_channels(torch.rand(1, 2, 4, 4), 1)


def test_replicated_rgb_png_reads_back_as_the_grey_png(tmp_path):
    grey_csv = _png_set(tmp_path / "g")
    rows = ["path,label"]
    for i in range(6):
        Image.open(tmp_path / "g" / "imgs" / f"{i}.png").convert("RGB").save(tmp_path / f"rgb{i}.png")
        rows.append(f"rgb{i}.png,{i % 3}")
    (tmp_path / "rgb.csv").write_text("\n".join(rows) + "\n")
    rgb = load_samples(tmp_path / "rgb.csv")
    assert rgb.x.shape == (6, 3, 28, 28)
    assert torch.equal(load_samples(tmp_path / "rgb.csv", input_shape=(1, 28, 28)).x, load_samples(grey_csv).x)


def test_mixed_grey_and_rgb_images_in_one_csv(tmp_path):
    _png_set(tmp_path, n=2, mode="RGB", sub="rgb")
    _png_set(tmp_path, n=2, mode="L", sub="grey")
    (tmp_path / "mixed.csv").write_text("path,label\nrgb/0.png,0\ngrey/1.png,1\n")
    assert load_samples(tmp_path / "mixed.csv", input_shape=(1, 28, 28)).x.shape == (2, 1, 28, 28)
    with pytest.raises(InputError, match="all images must have one size"):
        load_samples(tmp_path / "mixed.csv")


def test_every_source_is_converted(tmp_path, monkeypatch):
    from unlearn_audit.io import samples as samples_module

    pixels = np.random.default_rng(1).integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    grey_want = torch.from_numpy(
        np.stack([np.asarray(Image.fromarray(p.transpose(1, 2, 0), "RGB").convert("L")) for p in pixels])[
            :, None
        ].astype(np.float32)
        / 255.0
    )
    np.savez(tmp_path / "rgb.npz", x=pixels, y=np.arange(5) % 2)
    assert torch.equal(load_samples(tmp_path / "rgb.npz", input_shape=(1, 8, 8)).x, grey_want)
    as_float = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    in_memory = load_samples((as_float, torch.arange(5) % 2), input_shape=(1, 8, 8))
    assert torch.equal(in_memory.x, grey_want)
    passed_through = load_samples(samples_from_tensors(as_float, torch.arange(5) % 2), input_shape=[1, 8, 8])
    assert torch.equal(passed_through.x, grey_want)
    csv = tmp_path / "index.csv"
    csv.write_text("# dataset=fashion-mnist:test\nindex,label\n0,9\n1,2\n")
    grey = load_samples(csv)
    rgb = load_samples(csv, input_shape=(3, 28, 28))
    assert rgb.x.shape == (2, 3, 28, 28) and torch.equal(rgb.x, grey.x.repeat(1, 3, 1, 1))
    monkeypatch.setattr(samples_module, "LAZY_THRESHOLD_BYTES", 0)  # the streaming path converts per chunk
    lazy = load_samples(csv, input_shape=(3, 28, 28))
    assert lazy.is_lazy and lazy.input_shape == (3, 28, 28) and torch.equal(lazy.x[:], rgb.x)
    assert torch.equal(lazy.subset([1]).x[:], rgb.x[1:])


def test_stated_shapes_that_the_data_cannot_meet(tmp_path):
    np.savez(tmp_path / "two.npz", x=np.zeros((2, 2, 8, 8), np.float32), y=np.array([0, 1]))
    with pytest.raises(InputError, match=r"images have 2 channels but .*expects \[1, 8, 8\]; only greyscale and RGB"):
        load_samples(tmp_path / "two.npz", input_shape=(1, 8, 8))
    np.savez(tmp_path / "big.npz", x=np.zeros((2, 3, 9, 9), np.float32), y=np.array([0, 1]))
    with pytest.raises(InputError, match=r"inputs have shape \[3, 9, 9\] but .*expects \[1, 8, 8\]"):
        load_samples(tmp_path / "big.npz", input_shape=(1, 8, 8))
    flat = load_samples(tmp_path / "big.npz", input_shape=(81,))  # a flattening model: 3x9x9 RGB -> 81 grey values
    assert flat.input_shape == (1, 9, 9)
