"""Image files to arrays, and greyscale ↔ RGB conversion.

Conversion rules (docs/inputs.md):

* RGB → grey uses the ITU-R BT.601 luma weights ``0.299 R + 0.587 G + 0.114 B``. For 8-bit data (every value
  a multiple of 1/255, as decoded from PNG/JPEG or stored as uint8) the fixed-point form Pillow uses in
  ``Image.convert("L")`` is applied, ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, so converting here gives
  exactly the pixels a data owner would get by converting the files beforehand. Other float data is weighted
  in float64 and rounded once to float32.
* grey → RGB replicates the single channel three times (exact).
* Nothing else is converted: other channel counts are an error, never a guess.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

MAX_IMAGE_PIXELS = 50_000_000
LUMA_601 = (0.299, 0.587, 0.114)
#: Pillow's fixed-point ITU-R 601 weights (they sum to 2**16), see ``L24`` in libImaging/Convert.c.
LUMA_601_FIXED = (19595, 38470, 7471)
CONVERTIBLE_CHANNELS = (1, 3)
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
REFUSED_MODES = ("F", "I", "CMYK", "YCbCr", "LAB", "HSV")


def is_eight_bit(x: torch.Tensor) -> bool:
    """True when every value of ``x`` (in [0, 1]) is, up to float rounding, a multiple of 1/255."""
    scaled = x.to(torch.float64) * 255.0
    return bool(torch.all((scaled - scaled.round()).abs() < 1e-3))


def rgb_to_grey(x: torch.Tensor, eight_bit: bool | None = None) -> torch.Tensor:
    """``[N, 3, ...]`` in [0, 1] → ``[N, 1, ...]`` by ITU-R 601 luma (Pillow's exact arithmetic for 8-bit data)."""
    if eight_bit is None:
        eight_bit = is_eight_bit(x)
    shape = (1, 3) + (1,) * (x.dim() - 2)
    if eight_bit:
        levels = (x.to(torch.float64) * 255.0).round().to(torch.int64)
        weights = torch.tensor(LUMA_601_FIXED, dtype=torch.int64).view(shape)
        grey = ((levels * weights).sum(1, keepdim=True) + 32768) >> 16
        return grey.to(torch.float32) / 255.0
    weights64 = torch.tensor(LUMA_601, dtype=torch.float64).view(shape)
    return (x.to(torch.float64) * weights64).sum(1, keepdim=True).clamp(0.0, 1.0).to(torch.float32)


def grey_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """``[N, 1, ...]`` → ``[N, 3, ...]`` by replicating the channel."""
    return x.repeat(1, 3, *([1] * (x.dim() - 2))).contiguous()


def convert_channels(x: torch.Tensor, channels: int, eight_bit: bool | None = None) -> torch.Tensor:
    """Greyscale ↔ RGB on a batch ``[N, C, H, W]``; ``x`` itself when it already has ``channels``."""
    have = int(x.shape[1])
    if have == channels:
        return x
    if have == 3 and channels == 1:
        return rgb_to_grey(x, eight_bit)
    if have == 1 and channels == 3:
        return grey_to_rgb(x)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels (only grey <-> RGB)")


def channel_words(channels: int) -> str:
    return {1: "greyscale", 3: "RGB"}.get(channels, f"{channels}-channel")


def load_image(path: Path, where: str, channels: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """Decode one image file to float32 ``[C, H, W]`` in [0, 1]; ``where`` (``file.csv:LINE``) prefixes errors.

    ``channels`` converts greyscale ↔ RGB as described in the module docstring; ``None`` keeps the file's own
    (1 for L/LA/1-bit/16-bit greyscale, 3 for everything else Pillow can turn into RGB)."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise InputError(f"{where}: image {path} not found")
    if path.stat().st_size == 0:
        raise InputError(f"{where}: image {path} is an empty (zero-byte) file")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise InputError(f"{where}: image {path} is {img.width}x{img.height}, too large")
            img.load()
            mode = img.mode
            eight_bit = mode not in SIXTEEN_BIT_MODES
            if not eight_bit:
                array = np.asarray(img, dtype=np.float32)[None] / 65535.0
            elif mode in REFUSED_MODES:
                raise InputError(f"{where}: image {path} has mode {mode}; convert it to 8-bit greyscale (L) or RGB")
            else:
                decoded = np.asarray(img.convert("L" if mode in ("1", "L", "LA") else "RGB"), dtype=np.float32)
                array = decoded[None] / 255.0 if decoded.ndim == 2 else decoded.transpose(2, 0, 1) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{where}: {path} is not a readable image ({type(exc).__name__})") from exc
    if channels is not None and channels != array.shape[0]:
        if channels not in CONVERTIBLE_CHANNELS:
            raise InputError(
                f"{where}: image {path.name} has {array.shape[0]} channel(s) but the model expects {channels}; "
                "only greyscale and RGB are converted"
            )
        array = convert_channels(torch.from_numpy(np.ascontiguousarray(array))[None], channels, eight_bit)[0].numpy()
    if size is not None and tuple(array.shape[1:]) != size:
        raise InputError(
            f"{where}: image {path.name} is {array.shape[2]}x{array.shape[1]} (WxH) but the model "
            f"expects {size[1]}x{size[0]}; resize the images or pass the right --input-shape"
        )
    return np.ascontiguousarray(array, dtype=np.float32)
