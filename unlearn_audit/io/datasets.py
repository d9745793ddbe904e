"""Datasets already on disk, addressed by a short spec. Nothing here ever downloads.

=============================  ==========================================================================
``fashion-mnist:train|test``   Debian's ``dataset-fashion-mnist`` IDX files (``/usr/share/datasets/fashion-mnist``)
``fashion-mnist:train:/dir``   the same IDX files (``.gz`` or not) in another folder
``digits``                     scikit-learn's bundled 8x8 digits (1,797 images, values scaled to [0, 1])
``cifar10:train|test:/root``   torchvision's CIFAR-10 python batches under ``/root`` (``download=False``)
``imagefolder:/dir``           torchvision ``ImageFolder`` (class = sub-folder, sorted)
=============================  ==========================================================================
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class ArrayDataset:
    """Images as uint8 ``[N, C, H, W]`` (or float in [0, 1]) with integer labels."""

    spec: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Float32 images in [0, 1] for the given indices."""
        block = self.images[indices]
        if block.dtype == np.uint8:
            return block.astype(np.float32) / 255.0
        return block.astype(np.float32)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX (``ubyte``) file, gzip-compressed or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise InputError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) - offset != count:
        raise InputError(f"{path}: IDX header says {dims} but the file holds {len(data) - offset} values")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    raise InputError(
        f"dataset fashion-mnist: {folder / stem}[.gz] not found; install Debian's dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist) or give the folder as fashion-mnist:train:/dir"
    )


@functools.lru_cache(maxsize=8)
def _fashion_mnist(split: str, folder: str) -> ArrayDataset:
    prefix = "train" if split == "train" else "t10k"
    root = Path(folder)
    images = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        raise InputError(f"dataset fashion-mnist:{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return ArrayDataset(
        f"fashion-mnist:{split}", images[:, None, :, :], labels.astype(np.int64), 10, FASHION_MNIST_CLASSES
    )


@functools.lru_cache(maxsize=1)
def _digits() -> ArrayDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return ArrayDataset("digits", images, bunch.target.astype(np.int64), 10, tuple(str(i) for i in range(10)))


@functools.lru_cache(maxsize=4)
def _cifar10(split: str, root: str) -> ArrayDataset:
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(root, train=(split == "train"), download=False)
    except RuntimeError as exc:
        raise InputError(
            f"dataset cifar10:{split}:{root}: {exc} (we never download; put the python batches there)"
        ) from exc
    images = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))
    return ArrayDataset(f"cifar10:{split}", images, np.asarray(ds.targets, dtype=np.int64), 10, tuple(ds.classes))


@dataclass(frozen=True)
class FolderDataset:
    """Lazy ``ImageFolder``: images are decoded only when indexed."""

    spec: str
    paths: tuple[str, ...]
    labels: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


@functools.lru_cache(maxsize=4)
def _imagefolder(root: str) -> FolderDataset:
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(root)
    except (FileNotFoundError, OSError) as exc:
        raise InputError(f"dataset imagefolder:{root}: {exc}") from exc
    return FolderDataset(
        f"imagefolder:{root}",
        tuple(p for p, _ in ds.samples),
        np.asarray([t for _, t in ds.samples], dtype=np.int64),
        len(ds.classes),
        tuple(ds.classes),
    )


def open_dataset(spec: str) -> ArrayDataset | FolderDataset:
    """Resolve a dataset spec (see the module docstring)."""
    name, _, rest = spec.strip().partition(":")
    name = name.lower()
    if name in ("fashion-mnist", "fashion_mnist", "fmnist"):
        split, _, folder = rest.partition(":")
        split = split or "train"
        if split not in ("train", "test"):
            raise InputError(f"dataset {spec!r}: split must be train or test")
        return _fashion_mnist(split, folder or str(FASHION_MNIST_DIR))
    if name == "digits":
        return _digits()
    if name == "cifar10":
        split, _, root = rest.partition(":")
        if split not in ("train", "test") or not root:
            raise InputError(f"dataset {spec!r}: write cifar10:train:/root or cifar10:test:/root")
        return _cifar10(split, root)
    if name == "imagefolder":
        if not rest:
            raise InputError(f"dataset {spec!r}: write imagefolder:/path/to/dir")
        return _imagefolder(rest)
    raise InputError(
        f"dataset {spec!r}: unknown; use fashion-mnist:train|test, digits, cifar10:train|test:/root or imagefolder:/dir"
    )
