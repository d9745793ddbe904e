"""Thumbnails of flagged forget samples, as inline ``data:`` PNGs, rendered from the forget set itself.

The forget set is used only when it is provably the one the audit read: its content sha256 must match the
report's ``forget.content_sha256``. Otherwise the report says why there are no thumbnails.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnlearnAuditError

log = logging.getLogger(__name__)

MAX_THUMBNAILS = 100


def _find_forget(doc: dict[str, Any], search_dirs: Sequence[Path]) -> Any:
    from ..io.samples import load_samples

    source = str(doc["forget"]["source"])
    if source.startswith("<"):
        return None, "the forget set was given in memory, not as a file"
    candidates = (
        [Path(source)] + [Path(d) / source for d in search_dirs] + [Path(d) / Path(source).name for d in search_dirs]
    )
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        return None, f"the forget set {source} was not found next to the report or in the working directory"
    model = doc.get("model") or {}
    try:
        samples = load_samples(path, num_classes=model.get("num_classes"))
    except UnlearnAuditError as exc:
        return None, f"the forget set could not be read again ({exc})"
    return samples, None


def _png(image: np.ndarray, size: int = 56) -> str:
    from PIL import Image

    arr = np.clip(image, 0.0, 1.0)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):  # CHW -> HWC
        arr = np.transpose(arr, (1, 2, 0))
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    pil = Image.fromarray((arr * 255).round().astype(np.uint8))
    scale = max(1, size // max(pil.size))
    pil = pil.resize((pil.size[0] * scale, pil.size[1] * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnails(
    doc: dict[str, Any], samples: Any = None, search_dirs: Sequence[Path] = ()
) -> tuple[dict[str, str], str | None]:
    """``({sample id: data URI}, why-not note or None)`` for the first ``MAX_THUMBNAILS`` flagged samples."""
    flagged = [f["id"] for f in doc.get("flagged_samples") or []][:MAX_THUMBNAILS]
    if not flagged:
        return {}, None
    note = None
    if samples is None:
        samples, note = _find_forget(doc, search_dirs)
        if samples is None:
            return {}, f"No thumbnails: {note}."
    if getattr(samples, "domain", "image") != "image" or len(samples.input_shape) != 3:
        return {}, "No thumbnails: the forget set is not image data."
    if samples.content_sha256 != doc["forget"]["content_sha256"]:
        return {}, "No thumbnails: the forget set on disk differs from the one audited (content sha256 mismatch)."
    channels = samples.input_shape[0]
    if channels not in (1, 3):
        return {}, f"No thumbnails: images with {channels} channels."
    index = {sample_id: i for i, sample_id in enumerate(samples.ids)}
    rows = [index[i] for i in flagged if i in index]
    if not rows:
        return {}, "No thumbnails: the flagged ids are not in the forget set."
    images = samples.x[np.asarray(rows)]
    images = images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images, dtype=float)
    lo, hi = samples.bounds if samples.bounds else (float(images.min()), float(images.max()))
    scaled = (images - lo) / max(hi - lo, 1e-12)
    out = {
        sid: _png(img)
        for sid, img in zip([flagged_id for flagged_id in flagged if flagged_id in index], scaled, strict=True)
    }
    return out, None
