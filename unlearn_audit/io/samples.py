"""Loading forget / retain / test / holdout sets into tensors.

Every loader returns :class:`Samples`: ``x`` as float32 (images in [0, 1], ``[N, C, H, W]``; tabular
features as given, ``[N, D]``), ``y`` as int64 labels, and one string id per row. Problems raise
:class:`InputError` with ``file:line`` and the fix.

Accepted sources
----------------
* image CSV, header ``path,label[,id]``; paths relative to ``data_root`` (default: the CSV's folder) and
  never outside it (symlinks are resolved first);
* tabular CSV, header with a ``label`` column plus numeric feature columns (and an optional ``id``);
* index CSV, header ``index[,label][,id]`` into a dataset on disk (see :mod:`unlearn_audit.io.datasets`),
  named by ``dataset=`` or by a first line ``# dataset=fashion-mnist:train`` in the CSV;
* ``.npz`` with arrays ``x`` and ``y`` (and optionally ``ids``); uint8 images are scaled by 1/255.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import InputError
from .datasets import FolderDataset, open_dataset
from .hashing import sha256_file, sha256_tensors

log = logging.getLogger(__name__)

Domain = Literal["image", "tabular"]
DEFAULT_MAX_ROWS = 500_000
MAX_IMAGE_PIXELS = 50_000_000
#: Sets larger than this (as float32) are kept lazy: rows are converted only when a chunk is requested.
LAZY_THRESHOLD_BYTES = int(16 * 1024**2)


class LazyRows:
    """Tensor-like, read-only view of ``rows`` of a uint8/float array, converted to float32 in [0, 1] on access.

    Supports what the audit needs from ``Samples.x``: ``shape``, ``dim()``, ``len()`` and indexing with a
    slice, an int, or an index array/tensor, each returning a real ``torch.Tensor``. ``x[:]`` materialises.
    Used for large dataset-backed sets so that memory does not grow with the forget set (issue: streaming).
    """

    dtype = torch.float32

    def __init__(self, array: np.ndarray, rows: np.ndarray | None = None) -> None:
        self._array = array
        self._rows = np.arange(array.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self._rows), *self._array.shape[1:]))

    def dim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self._rows)

    def _convert(self, block: np.ndarray) -> torch.Tensor:
        if block.dtype == np.uint8:
            return torch.from_numpy(block.astype(np.float32) / 255.0)
        return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        picked = self._rows[index]
        if np.ndim(picked) == 0:
            return self._convert(self._array[int(picked)][None])[0]
        return self._convert(self._array[picked])

    def subset(self, indices: np.ndarray) -> LazyRows:
        return LazyRows(self._array, self._rows[np.asarray(indices, dtype=np.int64)])

    def chunks(self, size: int = 4096):  # noqa: ANN201 - iterator of tensors
        for start in range(0, len(self), size):
            yield self[start : start + size]


@dataclass(frozen=True)
class Samples:
    """A labelled set of inputs. ``bounds`` is the valid input range probes clip to (None: no clipping)."""

    x: torch.Tensor  # or a LazyRows view for large dataset-backed sets (index it to get tensors)
    y: torch.Tensor
    ids: tuple[str, ...]
    domain: Domain = "image"
    bounds: tuple[float, float] | None = (0.0, 1.0)
    source: str = "<memory>"
    sha256: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0] or self.y.shape[0] != len(self.ids):
            raise InputError(
                f"{self.source}: {self.x.shape[0]} inputs, {self.y.shape[0]} labels and {len(self.ids)} ids; "
                "they must have the same length"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def is_lazy(self) -> bool:
        return isinstance(self.x, LazyRows)

    @property
    def content_sha256(self) -> str:
        if isinstance(self.x, LazyRows):
            import hashlib

            digest = hashlib.sha256(f"float32{tuple(self.x.shape)}".encode())
            for block in self.x.chunks():
                digest.update(block.numpy().tobytes())
            return digest.hexdigest() + ":" + sha256_tensors(self.y)[:16]
        return sha256_tensors(self.x, self.y)

    def materialise(self) -> Samples:
        """The same set with ``x`` as an in-memory tensor."""
        return replace(self, x=self.x[:]) if isinstance(self.x, LazyRows) else self

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor, source: str | None = None) -> Samples:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return replace(
            self,
            x=self.x.subset(idx.numpy()) if isinstance(self.x, LazyRows) else self.x[idx],  # type: ignore[arg-type]
            y=self.y[idx],
            ids=tuple(self.ids[int(i)] for i in idx),
            source=source or f"{self.source}[subset]",
            sha256=None,
        )

    def classes(self) -> list[int]:
        return sorted(int(c) for c in torch.unique(self.y))


def samples_from_tensors(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray | Sequence[int],
    ids: Sequence[str] | None = None,
    *,
    domain: Domain | None = None,
    bounds: tuple[float, float] | None | Literal["auto"] = "auto",
    source: str = "<memory>",
    num_classes: int | None = None,
) -> Samples:
    """Wrap arrays already in memory. Images must already be scaled to [0, 1]."""
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu()
    if xt.dtype == torch.uint8:
        xt = xt.float() / 255.0
    xt = xt.float().contiguous()
    yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).detach().cpu()
    if xt.dim() < 2:
        raise InputError(f"{source}: x has shape {tuple(xt.shape)}; expected [N, features] or [N, C, H, W]")
    if yt.dim() != 1:
        raise InputError(f"{source}: y has shape {tuple(yt.shape)}; expected one label per row")
    if yt.dtype.is_floating_point:
        if not torch.all(yt == yt.round()):
            raise InputError(f"{source}: labels must be integers")
    elif yt.dtype == torch.bool:
        raise InputError(f"{source}: labels must be integers, got booleans")
    yt = yt.long()
    n = int(yt.shape[0])
    if n == 0:
        raise InputError(f"{source}: the set is empty; an audit needs at least one sample")
    if xt.shape[0] != n:
        raise InputError(f"{source}: {xt.shape[0]} inputs but {n} labels")
    if not torch.isfinite(xt).all():
        bad = int((~torch.isfinite(xt.reshape(n, -1))).any(1).nonzero()[0])
        raise InputError(f"{source}: row {bad} has NaN or infinite values; clean the data first")
    if yt.min() < 0 or (num_classes is not None and yt.max() >= num_classes):
        bad = int(((yt < 0) | (yt >= (num_classes or 1 << 62))).nonzero()[0])
        raise InputError(
            f"{source}: row {bad}: label {int(yt[bad])} outside 0..{(num_classes or 0) - 1} (num_classes={num_classes})"
        )
    if domain is None:
        domain = "image" if xt.dim() >= 3 else "tabular"
    if xt.dim() == 3 and domain == "image":
        xt = xt.unsqueeze(1)
    if bounds == "auto":
        bounds = (0.0, 1.0) if domain == "image" else None
    if bounds is not None and (xt.min() < bounds[0] - 1e-6 or xt.max() > bounds[1] + 1e-6):
        raise InputError(
            f"{source}: image values span [{float(xt.min()):.3g}, {float(xt.max()):.3g}] but must lie in "
            f"[{bounds[0]:g}, {bounds[1]:g}]; pass pixels scaled to [0, 1] and put mean/std in the model"
        )
    id_list = tuple(str(i) for i in ids) if ids is not None else tuple(str(i) for i in range(n))
    if len(id_list) != n:
        raise InputError(f"{source}: {len(id_list)} ids for {n} rows")
    warnings = _duplicate_warnings(source, id_list, xt)
    return Samples(xt, yt, id_list, domain, bounds, source, None, warnings)


def _duplicate_warnings(source: str, ids: Sequence[str], x: torch.Tensor | None = None) -> tuple[str, ...]:
    warnings = []
    repeated = [k for k, c in Counter(ids).items() if c > 1]
    if repeated:
        warnings.append(
            f"{source}: {len(repeated)} id(s) appear more than once (e.g. {repeated[0]!r}); duplicates count twice"
        )
    for w in warnings:
        log.warning(w)
    return tuple(warnings)


# ---------------------------------------------------------------------------------------------------- CSV


@dataclass
class _Table:
    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (1-based line number, cells)
    directives: dict[str, str]


def _read_table(path: Path, max_rows: int) -> _Table:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    if not raw.strip():
        raise InputError(f"{path}: the file is empty; expected a header row and at least one sample")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: unreadable UTF-16 text; save the CSV as UTF-8") from exc
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise InputError(
                f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the CSV as UTF-8"
            ) from exc
    if "\x00" in text:
        raise InputError(f"{path}: contains NUL bytes; this is not a text CSV")
    directives: dict[str, str] = {}
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            first = cells[0].lstrip()
            if first.startswith("#"):
                if header is None:
                    body = ",".join(cells).lstrip("# ").strip()
                    key, sep, value = body.partition("=")
                    if sep:
                        directives[key.strip().lower()] = value.strip()
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                continue
            rows.append((line, [c.strip() for c in cells]))
            if len(rows) > max_rows:
                raise InputError(f"{path}: more than {max_rows} rows; split the set or raise the limit with --max-rows")
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc
    if header is None:
        raise InputError(f"{path}: no header row; expected e.g. 'path,label', 'index,label' or features plus 'label'")
    if len(set(header)) != len(header):
        dup = [h for h, c in Counter(header).items() if c > 1][0]
        raise InputError(f"{path}:1: column {dup!r} appears twice in the header")
    if not rows:
        raise InputError(f"{path}: header only, no samples; an audit needs at least one row")
    for line, cells in rows:
        if len(cells) != len(header):
            raise InputError(
                f"{path}:{line}: {len(cells)} fields but the header has {len(header)} ({','.join(header)})"
            )
    return _Table(path, header, rows, directives)


def _parse_label(table: _Table, line: int, text: str, num_classes: int | None) -> int:
    try:
        value = int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            raise InputError(f"{table.path}:{line}: label {text!r} is not an integer") from None
        if not math.isfinite(as_float) or not as_float.is_integer():
            raise InputError(f"{table.path}:{line}: label {text!r} is not an integer") from None
        value = int(as_float)
    if value < 0 or (num_classes is not None and value >= num_classes):
        upper = f"{num_classes - 1}" if num_classes is not None else "N-1"
        raise InputError(f"{table.path}:{line}: label {value} outside 0..{upper} (num_classes={num_classes})")
    return value


def _resolve_inside(root: Path, relative: str, table: _Table, line: int) -> Path:
    if not relative:
        raise InputError(f"{table.path}:{line}: empty path")
    root_real = root.resolve()
    candidate = Path(relative)
    full = (candidate if candidate.is_absolute() else root_real / candidate).resolve()
    try:
        full.relative_to(root_real)
    except ValueError:
        raise InputError(
            f"{table.path}:{line}: path {relative!r} resolves outside the data root {root_real}; "
            "move the file under the root or pass --data-root"
        ) from None
    return full


def _load_image(path: Path, table: _Table, line: int, channels: int | None, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise InputError(f"{table.path}:{line}: image {path} not found")
    if path.stat().st_size == 0:
        raise InputError(f"{table.path}:{line}: image {path} is an empty (zero-byte) file")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise InputError(f"{table.path}:{line}: image {path} is {img.width}x{img.height}, too large")
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                array = np.asarray(img, dtype=np.float32) / 65535.0
                array = array[None]
                if channels == 3:
                    array = np.repeat(array, 3, axis=0)
            elif mode in ("F", "I", "CMYK", "YCbCr", "LAB", "HSV"):
                raise InputError(
                    f"{table.path}:{line}: image {path} has mode {mode}; convert it to 8-bit greyscale (L) or RGB"
                )
            else:
                want = {1: "L", 3: "RGB"}.get(channels or 0)
                if want is None:
                    want = "L" if mode in ("1", "L", "LA") else "RGB"
                array = np.asarray(img.convert(want), dtype=np.float32) / 255.0
                array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{table.path}:{line}: {path} is not a readable image ({type(exc).__name__})") from exc
    if size is not None and tuple(array.shape[1:]) != size:
        raise InputError(
            f"{table.path}:{line}: image {path.name} is {array.shape[2]}x{array.shape[1]} (WxH) but the model "
            f"expects {size[1]}x{size[0]}; resize the images or pass the right --input-shape"
        )
    return array


def _ids_column(table: _Table, default: list[str]) -> list[str]:
    if "id" not in table.header:
        return default
    col = table.header.index("id")
    return [cells[col] or default[i] for i, (_, cells) in enumerate(table.rows)]


def _load_image_csv(
    table: _Table, data_root: Path | None, input_shape: tuple[int, ...] | None, num_classes: int | None
) -> Samples:
    if "label" not in table.header:
        raise InputError(f"{table.path}:1: image CSV needs a 'label' column next to 'path'")
    root = data_root or table.path.parent
    root_from_directive = table.directives.get("data-root")
    if data_root is None and root_from_directive:
        root = (table.path.parent / root_from_directive).resolve()
    p_col, l_col = table.header.index("path"), table.header.index("label")
    channels = size = None
    if input_shape is not None:
        if len(input_shape) != 3:
            raise InputError(f"{table.path}: image CSV given but the model expects flat input {input_shape}")
        channels, size = input_shape[0], (input_shape[1], input_shape[2])
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[str] = []
    for line, cells in table.rows:
        labels.append(_parse_label(table, line, cells[l_col], num_classes))
        full = _resolve_inside(root, cells[p_col], table, line)
        array = _load_image(full, table, line, channels, size)
        if images and array.shape != images[0].shape:
            raise InputError(
                f"{table.path}:{line}: image {full.name} has shape {list(array.shape)} but earlier images have "
                f"{list(images[0].shape)}; all images must have one size"
            )
        images.append(array)
        paths.append(cells[p_col])
    x = torch.from_numpy(np.stack(images))
    y = torch.tensor(labels, dtype=torch.long)
    ids = _ids_column(table, paths)
    return Samples(
        x,
        y,
        tuple(ids),
        "image",
        (0.0, 1.0),
        str(table.path),
        sha256_file(table.path),
        _duplicate_warnings(str(table.path), ids),
    )


def _load_tabular_csv(table: _Table, input_shape: tuple[int, ...] | None, num_classes: int | None) -> Samples:
    if "label" not in table.header:
        raise InputError(
            f"{table.path}:1: no 'label' column; expected 'path,label' (images), 'index,label' (dataset) or "
            "feature columns plus 'label' (tabular)"
        )
    l_col = table.header.index("label")
    features = [i for i, h in enumerate(table.header) if h not in ("label", "id")]
    if not features:
        raise InputError(f"{table.path}:1: no feature columns besides 'label'")
    if input_shape is not None and math.prod(input_shape) != len(features):
        raise InputError(
            f"{table.path}:1: {len(features)} feature columns but the model expects {math.prod(input_shape)} inputs"
        )
    values = np.empty((len(table.rows), len(features)), dtype=np.float32)
    labels = []
    for r, (line, cells) in enumerate(table.rows):
        labels.append(_parse_label(table, line, cells[l_col], num_classes))
        for j, col in enumerate(features):
            text = cells[col]
            try:
                number = float(text)
            except ValueError:
                raise InputError(
                    f"{table.path}:{line}: column {table.header[col]!r} value {text!r} is not a number"
                ) from None
            if not math.isfinite(number):
                raise InputError(
                    f"{table.path}:{line}: column {table.header[col]!r} is {text}; NaN/inf features cannot be probed, "
                    "impute or drop the row"
                )
            values[r, j] = number
    ids = _ids_column(table, [f"row{line}" for line, _ in table.rows])
    x = torch.from_numpy(values)
    if input_shape is not None:
        x = x.reshape(len(table.rows), *input_shape)
    return Samples(
        x,
        torch.tensor(labels, dtype=torch.long),
        tuple(ids),
        "tabular",
        None,
        str(table.path),
        sha256_file(table.path),
        _duplicate_warnings(str(table.path), ids),
    )


def _load_index_csv(
    table: _Table, dataset: str | None, num_classes: int | None, input_shape: tuple[int, ...] | None
) -> Samples:
    spec = dataset or table.directives.get("dataset")
    if not spec:
        raise InputError(
            f"{table.path}: index CSV without a dataset; pass --dataset (e.g. fashion-mnist:train) or start the "
            "file with '# dataset=fashion-mnist:train'"
        )
    ds = open_dataset(spec)
    classes = num_classes if num_classes is not None else ds.num_classes
    i_col = table.header.index("index")
    l_col = table.header.index("label") if "label" in table.header else None
    indices, labels = [], []
    mismatched = 0
    for line, cells in table.rows:
        try:
            index = int(cells[i_col])
        except ValueError:
            raise InputError(f"{table.path}:{line}: index {cells[i_col]!r} is not an integer") from None
        if not 0 <= index < len(ds):
            raise InputError(f"{table.path}:{line}: index {index} outside 0..{len(ds) - 1} of dataset {ds.spec}")
        truth = int(ds.labels[index])
        label = _parse_label(table, line, cells[l_col], classes) if l_col is not None else truth
        if label >= classes:
            raise InputError(f"{table.path}:{line}: label {label} outside 0..{classes - 1} (num_classes={classes})")
        mismatched += int(label != truth)
        indices.append(index)
        labels.append(label)
    warnings = list(_duplicate_warnings(str(table.path), [str(i) for i in indices]))
    if mismatched:
        msg = f"{table.path}: {mismatched} label(s) differ from the dataset's own labels; using the CSV's labels"
        log.warning(msg)
        warnings.append(msg)
    idx = np.asarray(indices)
    if isinstance(ds, FolderDataset):
        fake = _Table(table.path, table.header, table.rows, table.directives)
        arrays = []
        channels = size = None
        if input_shape is not None and len(input_shape) == 3:
            channels, size = input_shape[0], (input_shape[1], input_shape[2])
        for (line, _), i in zip(table.rows, idx, strict=True):
            arrays.append(_load_image(Path(ds.paths[i]), fake, line, channels, size))
        x = torch.from_numpy(np.stack(arrays))
    else:
        row_shape = tuple(int(d) for d in ds.images.shape[1:])
        if input_shape is not None and row_shape != tuple(input_shape):
            raise InputError(
                f"{table.path}: dataset {ds.spec} has inputs {list(row_shape)} but the model expects {list(input_shape)}"
            )
        if len(idx) * 4 * math.prod(row_shape) > LAZY_THRESHOLD_BYTES:
            x = LazyRows(ds.images, idx)  # type: ignore[assignment]
        else:
            x = torch.from_numpy(ds.take(idx))
    ids = _ids_column(table, [f"{ds.spec}:{i}" for i in indices])
    return Samples(
        x,
        torch.tensor(labels, dtype=torch.long),
        tuple(ids),
        "image",
        (0.0, 1.0),
        str(table.path),
        sha256_file(table.path),
        tuple(warnings),
    )


def _load_npz(path: Path, num_classes: int | None, input_shape: tuple[int, ...] | None) -> Samples:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive or "y" not in archive:
                raise InputError(
                    f"{path}: an .npz forget set needs arrays 'x' and 'y' (found {', '.join(archive.files)})"
                )
            x, y = archive["x"], archive["y"]
            ids = archive["ids"] if "ids" in archive else None
            domain_arr = archive["domain"] if "domain" in archive else None
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"{path}: cannot read .npz without pickle ({exc}); store plain numeric arrays") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    if x.dtype.kind not in "fiub":
        raise InputError(f"{path}: x has dtype {x.dtype}; expected numbers")
    domain: Domain | None = str(domain_arr) if domain_arr is not None else None  # type: ignore[assignment]
    samples = samples_from_tensors(
        x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32),
        y,
        [str(i) for i in ids] if ids is not None else [f"{path.name}:{i}" for i in range(len(y))],
        domain=domain,
        source=str(path),
        num_classes=num_classes,
    )
    if input_shape is not None and samples.input_shape != tuple(input_shape):
        raise InputError(
            f"{path}: inputs have shape {list(samples.input_shape)} but the model expects {list(input_shape)}"
        )
    return replace(samples, sha256=sha256_file(path))


def load_samples(
    source: str | Path | Samples | tuple[Any, Any],
    *,
    data_root: str | Path | None = None,
    dataset: str | None = None,
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Samples:
    """Load a labelled set from a CSV, ``.npz``, ``(x, y)`` arrays, or pass :class:`Samples` through."""
    if isinstance(source, Samples):
        return source
    if isinstance(source, tuple):
        if len(source) not in (2, 3):
            raise InputError("in-memory samples are given as (x, y) or (x, y, ids)")
        return samples_from_tensors(*source, num_classes=num_classes)
    path = Path(source)
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    if path.suffix.lower() == ".npz":
        if not path.exists():
            raise InputError(f"{path}: no such file")
        return _load_npz(path, num_classes, shape)
    table = _read_table(path, max_rows)
    root = Path(data_root) if data_root is not None else None
    if "path" in table.header:
        samples = _load_image_csv(table, root, shape, num_classes)
    elif "index" in table.header:
        samples = _load_index_csv(table, dataset, num_classes, shape)
    else:
        samples = _load_tabular_csv(table, shape, num_classes)
    return samples


def write_index_csv(path: str | Path, indices: Sequence[int], labels: Sequence[int], dataset: str) -> None:
    """Write ``# dataset=...`` plus ``index,label`` rows (the format of the bundled reference sets)."""
    lines = [f"# dataset={dataset}", "index,label"] + [
        f"{int(i)},{int(lbl)}" for i, lbl in zip(indices, labels, strict=True)
    ]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
