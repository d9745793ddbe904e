"""What an endpoint takes and returns, settled from its metadata and the settings before the first query.

:func:`settle_signature` picks the input and output tensors, checks the input datatype and the batch
dimension, fits ``input_shape`` to the declared row shape and reads the number of classes and the output kind
(``auto`` becomes ``labels`` for an integer output; logits or probabilities are told apart on the first answers).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from .protocol import FLOAT_TYPES, INPUT_TYPES, INT_TYPES, ModelMetadata, TensorSpec, pick_tensor
from .settings import OutputKind, RemoteSettings
from .wire import shape_text


@dataclass(frozen=True)
class Signature:
    """The input tensor, its row shape and batch limit; the output tensor (if the metadata names one), the
    number of classes it declares and the output kind."""

    input: TensorSpec
    row_shape: tuple[int, ...]
    batch_limit: int
    output: TensorSpec | None
    num_classes: int | None
    kind: OutputKind


def settle_signature(metadata: ModelMetadata, s: RemoteSettings, where: str) -> Signature:
    spec = pick_tensor(metadata.inputs, s.input_name, "input", where)
    assert spec is not None  # metadata always lists inputs (parse_metadata checks)
    if spec.datatype not in INPUT_TYPES:
        raise ConfigError(
            f"{where}: input {spec.name!r} has datatype {spec.datatype}; audits send FP32, FP64, FP16 or UINT8"
        )
    if not spec.shape or spec.shape[0] == 0 or (spec.shape[0] == -1 and len(spec.shape) == 1):
        raise ConfigError(
            f"{where}: input {spec.name!r} has shape {shape_text(spec.shape)}; expected a batch dimension "
            "(-1) followed by the row shape, e.g. [-1, 1, 28, 28]"
        )
    row_shape = tuple(spec.shape[1:])
    batch_limit = s.batch_size
    if spec.shape[0] > 0:  # a fixed batch dimension: never send more rows than that in one request
        batch_limit = min(s.batch_size, spec.shape[0])
    if s.input_shape is not None:
        if len(s.input_shape) != len(row_shape) or any(
            m not in (-1, g) for m, g in zip(row_shape, s.input_shape, strict=True)
        ):
            raise ConfigError(
                f"{where}: input_shape {list(s.input_shape)} does not fit the endpoint's row shape "
                f"{shape_text(row_shape)} (input {spec.name!r})"
            )
        row_shape = tuple(s.input_shape)
    if spec.datatype == "UINT8" and s.mean is not None:
        raise ConfigError(f"{where}: input {spec.name!r} is UINT8 (pixels 0..255); mean/std normalisation cannot apply")
    output = pick_tensor(metadata.outputs, s.output_name, "output", where)
    kind, num_classes = s.output, s.num_classes
    if output is not None:
        kind, declared_classes = _output_kind(output, kind, where)
        if declared_classes is not None:
            if s.num_classes is not None and s.num_classes != declared_classes:
                raise ConfigError(
                    f"{where}: output {output.name!r} has {declared_classes} classes but num_classes={s.num_classes}"
                )
            num_classes = declared_classes
    return Signature(spec, row_shape, batch_limit, output, num_classes, kind)


def _output_kind(output: TensorSpec, kind: OutputKind, where: str) -> tuple[OutputKind, int | None]:
    """The output kind the output's datatype allows, and the number of classes its shape declares."""
    integer, floating = output.datatype in INT_TYPES, output.datatype in FLOAT_TYPES
    if not (integer or floating):
        raise ConfigError(
            f"{where}: output {output.name!r} has datatype {output.datatype}; expected scores (FP16/FP32/FP64) or "
            "integer class labels"
        )
    if kind == "auto" and integer:
        kind = "labels"
    if kind == "labels" and not integer:
        raise ConfigError(
            f"{where}: output {output.name!r} is {output.datatype}, not integer labels; output=labels does not fit"
        )
    if kind in ("logits", "probabilities") and integer:
        raise ConfigError(f"{where}: output {output.name!r} holds integer labels, not {kind}")
    if kind != "labels" and len(output.shape) == 2 and output.shape[1] > 0:
        return kind, int(output.shape[1])
    return kind, None
