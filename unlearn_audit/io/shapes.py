"""The input a model reads, and fitting sample sets to it.

Where a model's input shape comes from, first match wins:

1. ``--input-shape`` (``load_model(input_shape=...)``, ``wrap_model(input_shape=...)``);
2. the checkpoint's ``input_shape`` metadata;
3. the default of a registry architecture (``small-cnn`` 1×28×28, torchvision names 3×224×224), with the
   channel count corrected from the checkpoint's first layer when they disagree;
4. inferred from the network: the channel count (or flat feature count) of the first layer that consumes the
   input (:mod:`unlearn_audit.io.first_layer`). Height and width then come from the data.

:func:`fit_samples` converts a sample set to what the model reads (greyscale ↔ RGB, :mod:`.images`), runs the
model once on one sample, and turns a shape clash into a one-line :class:`InputError` that names the model's
expected shape, the data's shape and the flag that fixes it. What was inferred is logged once per model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..errors import InputError
from .first_layer import PROBE_BATCH, FirstLayer, eval_mode, find_first_layer
from .images import CONVERTIBLE_CHANNELS, channel_words, convert_channels
from .lazy import LazyRows

if TYPE_CHECKING:
    from torch import nn

    from .models import AuditableModel
    from .sampleset import Samples

log = logging.getLogger(__name__)

_SPEC_ATTRIBUTE = "_unlearn_audit_input_spec"
_SAID_ATTRIBUTE = "_unlearn_audit_input_said"


@dataclass(frozen=True)
class InputSpec:
    """What a model reads: a full ``shape``, or only image ``channels`` or flat ``features``; and how we know."""

    shape: tuple[int, ...] | None = None
    channels: int | None = None
    features: int | None = None
    source: str = "unknown"
    inferred: bool = False

    @classmethod
    def stated(cls, shape: Sequence[int], source: str) -> InputSpec:
        full = tuple(int(s) for s in shape)
        return cls(
            shape=full,
            channels=full[0] if len(full) == 3 else None,
            features=math.prod(full) if len(full) == 1 else None,
            source=source,
        )

    @classmethod
    def from_first_layer(cls, layer: FirstLayer) -> InputSpec:
        source = f"inferred from {layer.evidence()}"
        if layer.kind == "channels":
            return cls(channels=layer.value[0], source=source, inferred=True)
        if layer.kind == "features":
            return cls(features=layer.value[0], source=source, inferred=True)
        return cls(shape=layer.value, channels=layer.value[0], source=source, inferred=True)

    def describe(self) -> str:
        if self.shape is not None:
            return "x".join(map(str, self.shape))
        if self.channels is not None:
            return f"{self.channels}xHxW"
        if self.features is not None:
            return f"{self.features} features (flattened)"
        return "unknown"


def infer_input_spec(net: nn.Module, sample: torch.Tensor | None = None) -> InputSpec:
    """What ``net`` reads, from its first input-consuming layer (traced on ``sample`` if given)."""
    layer, note = find_first_layer(net, sample)
    if layer is None:
        return InputSpec(source=f"not inferred: {note}")
    return InputSpec.from_first_layer(layer)


def expected_input(model: AuditableModel, sample: torch.Tensor | None = None) -> InputSpec:
    """The model's :class:`InputSpec`: stated in its metadata, or inferred once and remembered on the object."""
    meta = model.meta
    if meta.input_shape is not None:
        source = meta.input_shape_source or "the model's metadata"
        return dataclasses.replace(InputSpec.stated(meta.input_shape, source), inferred="inferred" in source)
    cached = model.__dict__.get(_SPEC_ATTRIBUTE)
    if isinstance(cached, InputSpec) and (cached.inferred or sample is None):
        return cached
    spec = infer_input_spec(model.net, sample)
    model.__dict__[_SPEC_ATTRIBUTE] = spec
    log.info("%s: input %s (%s)", meta.name, spec.describe(), spec.source)
    return spec


def _target_channels(samples: Samples, spec: InputSpec) -> int | None:
    """The channel count the images must have for ``spec``; None when ``spec`` does not say."""
    c, h, w = samples.input_shape
    if spec.channels is not None:
        return spec.channels
    flat = spec.features
    if flat is None or flat == c * h * w:
        return None
    if flat % (h * w) == 0 and flat // (h * w) in CONVERTIBLE_CHANNELS:
        return flat // (h * w)
    return None


def conform(samples: Samples, spec: InputSpec, name: str = "the model") -> tuple[Samples, str | None]:
    """``samples`` converted to what ``spec`` reads, and a note on the conversion (None if there was none).

    A *stated* spec that the data cannot meet raises :class:`InputError`. An *inferred* one never does: the data
    is then left as it is, and :func:`check_model_reads` has the last word."""
    data = samples.input_shape
    stated = spec.shape is not None and not spec.inferred
    expects = f"{name} expects {list(spec.shape) if spec.shape else spec.describe()}"
    expects += f" ({spec.source})" if spec.source else ""
    if samples.domain != "image" or len(data) != 3:
        if stated and data != spec.shape:
            if samples.domain == "tabular" and math.prod(data) == math.prod(spec.shape or ()):
                return dataclasses.replace(samples, x=samples.x.reshape(len(samples), *(spec.shape or ()))), None
            raise InputError(f"{samples.source}: inputs have shape {list(data)} but {expects}")
        return samples, None
    c, h, w = data
    if stated and spec.shape is not None and len(spec.shape) == 3 and (h, w) != spec.shape[1:]:
        raise InputError(
            f"{samples.source}: inputs have shape {list(data)} but {expects}; resize the images or pass the right "
            "--input-shape"
        )
    target = _target_channels(samples, spec)
    convertible = c in CONVERTIBLE_CHANNELS and target in CONVERTIBLE_CHANNELS
    if target is not None and target != c and not convertible and stated:
        raise InputError(
            f"{samples.source}: images have {c} channels but {expects}; only greyscale and RGB are converted"
        )
    channels_after = target if convertible and target is not None else c
    if stated and math.prod(spec.shape or ()) != channels_after * h * w:
        raise InputError(f"{samples.source}: inputs have shape {list(data)} but {expects}")
    if target is None or target == c or not convertible:
        return samples, None
    if isinstance(samples.x, LazyRows):
        x: torch.Tensor | LazyRows = samples.x.with_channels(target)
    else:
        x = convert_channels(samples.x, target)
    how = "ITU-R 601 luma" if target == 1 else "replicated"
    note = f"{samples.source}: {channel_words(c)} images converted to {channel_words(target)} ({how})"
    return dataclasses.replace(samples, x=x), note  # type: ignore[arg-type] # LazyRows stands in for a tensor


_CONV_CLASH = re.compile(r"weight of size \[(\d+), (\d+)[^\]]*\], expected input\[[^\]]*\] to have (\d+) channels")
_LINEAR_CLASH = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")
_VIEW_CLASH = re.compile(r"shape '\[([-\d, ]+)\]' is invalid for input of size (\d+)")
_SHAPE_WORDS = ("channels", "shape", "size", "mat1 and mat2", "dimension", "must match", "Expected", "expected")


def _expected_from_error(message: str, data: tuple[int, ...]) -> tuple[str | None, str]:
    """(what the model expects, an --input-shape value that would fix it) read from torch's error message."""
    hw = data[1:] if len(data) == 3 else None
    fix = "C,H,W" if hw is not None else "D"
    if match := _CONV_CLASH.search(message):
        channels = int(match.group(3))
        return f"{channels} input channel(s)", (f"{channels},{hw[0]},{hw[1]}" if hw else fix)
    if match := _LINEAR_CLASH.search(message):
        features = int(match.group(3))
        if hw and features % (hw[0] * hw[1]) == 0:
            fix = f"{features // (hw[0] * hw[1])},{hw[0]},{hw[1]}"
        return f"{features} input features", fix
    if match := _VIEW_CLASH.search(message):
        return f"a reshape to [{match.group(1)}]", fix
    return None, fix


def check_model_reads(model: AuditableModel, samples: Samples, spec: InputSpec | None = None) -> None:
    """Run ``model`` on the first sample; a shape clash becomes a one-line :class:`InputError` with the fix."""
    from ..inference import model_device

    x = samples.x[:PROBE_BATCH]
    if not isinstance(x, torch.Tensor) or x.shape[0] == 0:
        return
    try:
        with eval_mode(model), torch.no_grad():
            model(x.to(model_device(model)))
    except (RuntimeError, ValueError, IndexError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        message = lines[-1].removeprefix("RuntimeError: ") if lines else type(exc).__name__  # TorchScript: last
        if not any(word in message for word in _SHAPE_WORDS):
            raise
        spec = spec or expected_input(model)
        data = samples.input_shape
        parsed, fix = _expected_from_error(message, data)
        known = spec.shape is not None or spec.channels is not None or spec.features is not None
        how = f" (input shape {spec.describe()}: {spec.source})" if known else f" ({spec.source})"
        expected = parsed or (spec.describe() if known else "another input shape")
        raise InputError(
            f"{samples.source}: model {model.meta.name} cannot read inputs of shape {'x'.join(map(str, data))}: "
            f"it expects {expected}{how}; pass --input-shape {fix} with the model's input shape "
            f"(torch: {message[:160]})"
        ) from None


def announce_input(model: AuditableModel, spec: InputSpec, note: str | None = None) -> bool:
    """Log, once per model object, what was inferred about its input (and ``note``); True if this call did."""
    if not spec.inferred or model.__dict__.get(_SAID_ATTRIBUTE):
        return False
    model.__dict__[_SAID_ATTRIBUTE] = True
    log.warning(
        "%s: no input shape in the metadata or --input-shape; it reads %s, %s%s",
        model.meta.name,
        spec.describe(),
        spec.source,
        f"; {note}" if note else "",
    )
    return True


def fit_samples(samples: Samples, model: AuditableModel) -> Samples:
    """``samples`` converted to what ``model`` reads and checked by running the model on one of them.

    When the model's input was inferred (no metadata, no ``--input-shape``), one warning per model says what was
    inferred and how the data was converted; later conversions are logged at INFO."""
    sample = samples.x[:2] if len(samples) else None
    spec = expected_input(model, sample if isinstance(sample, torch.Tensor) else None)
    fitted, note = conform(samples, spec, f"model {model.meta.name}")
    check_model_reads(model, fitted, spec)
    if not announce_input(model, spec, note) and note:
        log.info("%s", note)
    return fitted
