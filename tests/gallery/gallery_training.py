"""The strangers' gallery, trained on a small Fashion-MNIST subset (seconds per model), once per test session
by the ``gallery`` fixture in conftest.py.

Per architecture: ``model`` (trained on the whole subset, forget samples included) and two references retrained
without the forget samples (other seeds), each saved as safetensors WITHOUT metadata, so ``--arch file.py:build_x
--num-classes 10`` is needed and the input shape is never stated. The forget samples are written twice, as RGB PNGs
(tinted, so RGB -> grey really computes luma) and as greyscale PNGs, each with an image CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from unlearn_audit.io.architectures import build_architecture
from unlearn_audit.io.datasets import open_dataset

ARCH_FILE = Path(__file__).resolve().with_name("architectures.py")
TRAIN_SAMPLES, FORGET_SAMPLES, BATCH = 192, 32, 32

#: architecture -> (the tensor the input inference must name, saved from nn.DataParallel, training epochs)
GALLERY = {
    "bn_buffers": ("trunk.0.weight [24, 1, 5, 5]", False, 2),
    "relu_pool": ("features.0.weight [16, 1, 3, 3]", False, 2),
    "parallel": ("body.0.weight [16, 1, 3, 3]", True, 2),
    "torchvision": ("conv1.weight [64, 1, 3, 3]", False, 1),  # the slowest to train on CPU by far
    "functional": ("w1 [16, 1, 5, 5]", False, 2),
}


@dataclass(frozen=True)
class GalleryCase:
    name: str
    arch: str  # the --arch value
    model: Path
    references: tuple[Path, ...]
    forget: dict[str, Path]  # "rgb" / "grey" -> image CSV
    first_layer: str


def arch_spec(name: str) -> str:
    return f"{ARCH_FILE}:build_{name}"


def _train(arch: str, x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int) -> nn.Module:
    torch.manual_seed(seed)
    net = build_architecture(arch, 10, None)
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=order)
        for start in range(0, len(y), BATCH):
            rows = perm[start : start + BATCH]
            loss = F.cross_entropy(net(x[rows]), y[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


def _save(net: nn.Module, path: Path, data_parallel: bool) -> Path:
    state = (nn.DataParallel(net) if data_parallel else net).state_dict()
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path))  # no metadata at all
    return path


def _tint(grey: np.ndarray) -> np.ndarray:
    """A deterministic RGB version of a greyscale image whose channels differ (so luma is not the identity)."""
    v = grey.astype(np.int32)
    return np.stack([v, (v * 3) // 4, 255 - (255 - v) // 2], axis=-1).astype(np.uint8)


def _write_forget_sets(root: Path, images: np.ndarray, labels: np.ndarray, ids: list[str]) -> dict[str, Path]:
    (root / "png").mkdir()
    rows = {"rgb": ["path,label,id"], "grey": ["path,label,id"]}
    for i, (image, label, sample_id) in enumerate(zip(images, labels, ids, strict=True)):
        Image.fromarray(_tint(image[0]), "RGB").save(root / "png" / f"rgb-{i}.png")
        Image.fromarray(image[0], "L").save(root / "png" / f"grey-{i}.png")
        rows["rgb"].append(f"png/rgb-{i}.png,{label},{sample_id}")
        rows["grey"].append(f"png/grey-{i}.png,{label},{sample_id}")
    out = {}
    for colour, lines in rows.items():
        out[colour] = root / f"forget-{colour}.csv"
        out[colour].write_text("\n".join(lines) + "\n")
    return out


def make_gallery(root: Path) -> dict[str, GalleryCase]:
    """Train every gallery architecture and write its files and the forget sets under ``root``."""
    dataset = open_dataset("fashion-mnist:train")
    chosen = np.sort(np.random.default_rng(13).choice(len(dataset), TRAIN_SAMPLES, replace=False))
    x = torch.from_numpy(dataset.take(chosen))
    y = torch.from_numpy(dataset.labels[chosen].astype(np.int64))
    forget = chosen[:FORGET_SAMPLES]
    csvs = _write_forget_sets(
        root, dataset.images[forget], dataset.labels[forget], [f"fashion-mnist:train:{i}" for i in forget]
    )
    cases = {}
    for name, (first_layer, data_parallel, epochs) in GALLERY.items():
        arch = arch_spec(name)
        model = _save(_train(arch, x, y, 0, epochs), root / f"{name}.safetensors", data_parallel)
        references = tuple(
            _save(
                _train(arch, x[FORGET_SAMPLES:], y[FORGET_SAMPLES:], seed, epochs),
                root / f"{name}-ref{seed}.safetensors",
                data_parallel,
            )
            for seed in (1, 2)
        )
        cases[name] = GalleryCase(name, arch, model, references, csvs, first_layer)
    return cases
