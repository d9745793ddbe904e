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

import logging
import math
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import InputError
from .datasets import FolderDataset, open_dataset
from .hashing import sha256_file
from .images import MAX_IMAGE_PIXELS, load_image
from .lazy import LazyRows
from .sampleset import Domain, Samples
from .shapes import InputSpec, conform
from .tables import Table, ids_column, parse_label, read_table, resolve_inside

__all__ = [
    "DEFAULT_MAX_ROWS",
    "LAZY_THRESHOLD_BYTES",
    "MAX_IMAGE_PIXELS",
    "LazyRows",
    "Samples",
    "load_samples",
    "samples_from_tensors",
    "write_index_csv",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 500_000
#: Sets larger than this (as float32) are kept lazy: rows are converted only when a chunk is requested.
LAZY_THRESHOLD_BYTES = int(16 * 1024**2)


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


def _load_image_csv(
    table: Table, data_root: Path | None, input_shape: tuple[int, ...] | None, num_classes: int | None
) -> Samples:
    if "label" not in table.header:
        raise InputError(f"{table.path}:1: image CSV needs a 'label' column next to 'path'")
    root = data_root or table.path.parent
    root_from_directive = table.directives.get("data-root")
    if data_root is None and root_from_directive:
        root = (table.path.parent / root_from_directive).resolve()
    p_col, l_col = table.header.index("path"), table.header.index("label")
    channels, size = _image_target(input_shape)
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[str] = []
    for line, cells in table.rows:
        labels.append(parse_label(table, line, cells[l_col], num_classes))
        full = resolve_inside(root, cells[p_col], table, line)
        array = load_image(full, f"{table.path}:{line}", channels, size)
        if images and array.shape != images[0].shape:
            raise InputError(
                f"{table.path}:{line}: image {full.name} has shape {list(array.shape)} but earlier images have "
                f"{list(images[0].shape)}; all images must have one size"
            )
        images.append(array)
        paths.append(cells[p_col])
    x = torch.from_numpy(np.stack(images))
    y = torch.tensor(labels, dtype=torch.long)
    ids = ids_column(table, paths)
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


def _load_tabular_csv(table: Table, input_shape: tuple[int, ...] | None, num_classes: int | None) -> Samples:
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
        labels.append(parse_label(table, line, cells[l_col], num_classes))
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
    ids = ids_column(table, [f"row{line}" for line, _ in table.rows])
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
    table: Table, dataset: str | None, num_classes: int | None, input_shape: tuple[int, ...] | None
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
        label = parse_label(table, line, cells[l_col], classes) if l_col is not None else truth
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
        channels, size = _image_target(input_shape)
        arrays = [
            load_image(Path(ds.paths[i]), f"{table.path}:{line}", channels, size)
            for (line, _), i in zip(table.rows, idx, strict=True)
        ]
        x = torch.from_numpy(np.stack(arrays))
    else:
        row_shape = tuple(int(d) for d in ds.images.shape[1:])
        if len(idx) * 4 * math.prod(row_shape) > LAZY_THRESHOLD_BYTES:
            x = LazyRows(ds.images, idx)  # type: ignore[assignment]
        else:
            x = torch.from_numpy(ds.take(idx))
    ids = ids_column(table, [f"{ds.spec}:{i}" for i in indices])
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


def _load_npz(path: Path, num_classes: int | None) -> Samples:
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
    """Load a labelled set from a CSV, ``.npz``, ``(x, y)`` arrays, or pass :class:`Samples` through.

    With ``input_shape``, images are converted to its channel count (greyscale ↔ RGB, see
    :mod:`unlearn_audit.io.images`) and any other disagreement is an :class:`InputError`. To fit a set to a model
    whose input shape may have to be inferred, use :func:`unlearn_audit.io.shapes.fit_samples`."""
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    samples = _load_any(source, data_root, dataset, num_classes, shape, max_rows)
    return conform(samples, InputSpec.stated(shape, ""))[0] if shape is not None else samples


def _load_any(
    source: str | Path | Samples | tuple[Any, Any],
    data_root: str | Path | None,
    dataset: str | None,
    num_classes: int | None,
    shape: tuple[int, ...] | None,
    max_rows: int,
) -> Samples:
    if isinstance(source, Samples):
        return source
    if isinstance(source, tuple):
        if len(source) not in (2, 3):
            raise InputError("in-memory samples are given as (x, y) or (x, y, ids)")
        return samples_from_tensors(*source, num_classes=num_classes)
    path = Path(source)
    if path.suffix.lower() == ".npz":
        if not path.exists():
            raise InputError(f"{path}: no such file")
        return _load_npz(path, num_classes)
    table = read_table(path, max_rows)
    root = Path(data_root) if data_root is not None else None
    if "path" in table.header:
        return _load_image_csv(table, root, shape, num_classes)
    if "index" in table.header:
        return _load_index_csv(table, dataset, num_classes, shape)
    return _load_tabular_csv(table, shape, num_classes)


def _image_target(input_shape: tuple[int, ...] | None) -> tuple[int | None, tuple[int, int] | None]:
    """(channels, (height, width)) that decoded images must have; flat shapes are left to :func:`conform`."""
    if input_shape is None or len(input_shape) != 3:
        return None, None
    return input_shape[0], (input_shape[1], input_shape[2])


def write_index_csv(path: str | Path, indices: Sequence[int], labels: Sequence[int], dataset: str) -> None:
    """Write ``# dataset=...`` plus ``index,label`` rows (the format of the bundled reference sets)."""
    lines = [f"# dataset={dataset}", "index,label"] + [
        f"{int(i)},{int(lbl)}" for i, lbl in zip(indices, labels, strict=True)
    ]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
