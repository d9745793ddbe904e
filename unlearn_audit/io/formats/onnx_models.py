"""ONNX files, converted to a torch module with ``onnx2torch`` so that gradient probes (FGSM, PGD) work.

A conversion can be wrong without failing, so every converted model is checked against ``onnxruntime``, the
reference implementation: at load time on a fixed synthetic batch, and by :class:`~unlearn_audit.audit.Audit`
on the forget set itself (:func:`recheck_on_samples`). The result is stored in ``ModelMeta.extra["onnx_check"]``
(so it is in the audit JSON under the model's metadata) and logged; a disagreement beyond
:data:`AGREEMENT_ATOL`/:data:`AGREEMENT_RTOL` refuses the model.

Before ``onnx`` reads anything beyond the protobuf itself, tensors stored as external data are checked: their
``location`` must be a relative path that stays inside the model's folder (symbolic links resolved) and their
byte range must lie inside that file. ONNX node names are replaced by safe names before conversion, because
onnx2torch turns them into torch.fx module names that end up in generated Python source.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError
from ..auditable import AuditableModel, FileMetadata, choose
from .common import FORMAT_KEY, LoadOptions, file_meta_for, finish, package_version, require

log = logging.getLogger(__name__)

#: Element-wise agreement demanded between the converted module and onnxruntime:
#: ``|torch - onnxruntime| <= ATOL + RTOL * |onnxruntime|`` on every logit. float32 kernels that sum in a
#: different order differ by ~1e-6 on logits of magnitude ~10 (docs/model-formats.md has the measurements).
AGREEMENT_ATOL = 1e-4
AGREEMENT_RTOL = 1e-4
#: Newest opset whose operators onnx2torch 1.5 converts almost completely; newer models are converted down to it
#: with onnx's version converter when an operator's newest version has no converter.
FALLBACK_OPSET = 17
CHECK_KEY = "onnx_check"
SYNTHETIC_ROWS = 16
EXTRA_HINT = "onnx"
REEXPORT_HINT = (
    'torch.onnx.export(model.eval(), (x,), "model.onnx", input_names=["x"], '
    'dynamic_shapes={"x": {0: torch.export.Dim("batch")}})'
)
_SAFE_NODE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _modules(path: Path) -> tuple[Any, Any, Any]:
    what = "loading an ONNX model"
    return (
        require("onnx", EXTRA_HINT, what, path),
        require("onnx2torch", EXTRA_HINT, what, path),
        require("onnxruntime", EXTRA_HINT, what, path),
    )


# ------------------------------------------------------------------------------------------- reading


def _read_proto(path: Path, onnx: Any) -> Any:
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, onnx raises its own types
        raise CheckpointError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:160]}); the file is truncated, "
            "corrupted or not ONNX"
        ) from exc


def _all_tensors(graph: Any) -> list[Any]:
    """Every TensorProto in a graph: initializers, sparse initializers, node attributes, nested subgraphs."""
    tensors = list(getattr(graph, "initializer", []))
    for sparse in getattr(graph, "sparse_initializer", []):
        tensors += [sparse.values, sparse.indices]
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                tensors.append(attribute.t)
            tensors += list(attribute.tensors)
            if attribute.HasField("g"):
                tensors += _all_tensors(attribute.g)
            for sub in attribute.graphs:
                tensors += _all_tensors(sub)
    return tensors


def check_external_data(path: Path, proto: Any, onnx: Any) -> bool:
    """Refuse external-data locations that leave the model's folder; True if the model has external data."""
    folder = path.resolve().parent
    tensors = [t for g in [proto.graph, *proto.functions] for t in _all_tensors(g)]
    external = False
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        external = True
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise CheckpointError(
                f"{path}: tensor {tensor.name!r} keeps its data at {location!r}, outside the model's folder "
                f"{folder}; external data must be a relative path inside that folder"
            )
        if not target.is_file():
            raise CheckpointError(f"{path}: tensor {tensor.name!r}: external data file {location!r} is missing")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", 0) or 0)
        except ValueError as exc:
            raise CheckpointError(f"{path}: tensor {tensor.name!r}: malformed external-data offset/length") from exc
        if offset < 0 or length < 0 or offset + length > target.stat().st_size:
            raise CheckpointError(
                f"{path}: tensor {tensor.name!r}: external data {location!r} bytes {offset}..{offset + length} lie "
                "outside the file; it is truncated or the model points at the wrong file"
            )
    return external


# ------------------------------------------------------------------------------------------- conversion


def _opset(proto: Any, domain: str = "") -> int:
    for entry in proto.opset_import:
        if entry.domain in (domain, "ai.onnx" if domain == "" else domain):
            return int(entry.version)
    return 1


def _prepare_for_onnx2torch(proto: Any) -> dict[str, str]:
    """Semantics-preserving rewrites onnx2torch needs (in place).

    * node names become ``n<index>`` (returned: new name -> original): onnx2torch uses them as torch.fx module
      names, which reach generated code;
    * ``Reshape(allowzero=1)`` with a constant target shape that has no zero is the same as ``allowzero=0``
      (torch.onnx's exporter writes ``allowzero=1``; onnx2torch implements only 0).
    """
    from onnx import numpy_helper

    constants = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.HasField("t"):
                    constants[node.output[0]] = attribute.t
    original = {}
    for index, node in enumerate(proto.graph.node):
        original[f"n{index}"] = node.name
        node.name = f"n{index}"
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        shape = numpy_helper.to_array(constants[node.input[1]])
        for attribute in node.attribute:
            if attribute.name == "allowzero" and attribute.i == 1 and not (shape == 0).any():
                attribute.i = 0
    return original


def _unconvertible(proto: Any) -> list[tuple[str, str, int, str]]:
    from onnx2torch.node_converters.registry import get_converter

    missing = []
    for node in proto.graph.node:
        version = _opset(proto, node.domain)
        try:
            get_converter(operation_type=node.op_type, version=version, domain=node.domain)
        except NotImplementedError:
            missing.append((node.op_type, node.domain or "ai.onnx", version, node.name))
    return missing


def _convert(path: Path, proto: Any, onnx2torch: Any) -> tuple[nn.Module, str]:
    """The converted module and a note on what was done to make onnx2torch accept the model."""
    names = _prepare_for_onnx2torch(proto)
    note = "as given"
    missing = _unconvertible(proto)
    if missing and _opset(proto) > FALLBACK_OPSET:
        from onnx import version_converter

        try:
            lowered = version_converter.convert_version(proto, FALLBACK_OPSET)
        except Exception:  # noqa: BLE001 - no adapter for some operator: report the original operator below
            lowered = None
        if lowered is not None and not _unconvertible(lowered):
            proto, missing = lowered, []
            _prepare_for_onnx2torch(proto)
            note = f"opset {_opset(lowered)} (converted down by onnx.version_converter)"
    version = package_version("onnx2torch")
    if missing:
        op, domain, opset, node = missing[0]
        others = sorted({m[0] for m in missing[1:]} - {op})
        raise CheckpointError(
            f"{path}: ONNX operator {op} (domain {domain}, opset {opset}, node {names.get(node, node)[:60]!r}) cannot "
            f"be converted to torch by onnx2torch "
            f"{version}{'; also ' + ', '.join(others) if others else ''}; export the model without it, or as a "
            "torch.export .pt2"
        )
    try:
        module = onnx2torch.convert(proto)
    except Exception as exc:  # noqa: BLE001 - a converter refused an attribute value
        culprit = _failing_node(proto, names)
        raise CheckpointError(
            f"{path}: onnx2torch {version} cannot convert {culprit or 'this model'} ({type(exc).__name__}: "
            f"{str(exc)[:160]}); export the model without it, or as a torch.export .pt2"
        ) from exc
    return module, note


def _failing_node(proto: Any, names: dict[str, str]) -> str | None:
    """Name the first node whose converter raises (onnx2torch's own errors do not)."""
    from onnx2torch.node_converters.registry import get_converter
    from onnx2torch.onnx_graph import OnnxGraph

    graph = OnnxGraph(proto.graph)
    for node in graph.nodes.values():
        try:
            get_converter(node.operation_type, _opset(proto, node.domain), node.domain)(node, graph)
        except Exception:  # noqa: BLE001
            return f"operator {node.operation_type} (node {names.get(node.name, node.name)[:60]!r})"
    return None


# ------------------------------------------------------------------------------------------- signature


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _signature(path: Path, proto: Any) -> tuple[str, list[int | None], int | None]:
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise CheckpointError(
            f"{path}: the ONNX graph takes {len(inputs)} inputs; an auditable classifier takes one image or "
            "feature tensor"
        )
    if len(proto.graph.output) != 1:
        raise CheckpointError(
            f"{path}: the ONNX graph returns {len(proto.graph.output)} values; export a model returning logits only"
        )
    (graph_input,) = inputs
    if graph_input.type.tensor_type.elem_type != 1:  # TensorProto.FLOAT
        raise CheckpointError(f"{path}: the ONNX input {graph_input.name!r} is not float32; export with float32 input")
    dims = _dims(graph_input)
    if len(dims) < 2:
        raise CheckpointError(f"{path}: the ONNX input {graph_input.name!r} is not a [batch, ...] tensor")
    if dims[0] is not None:
        raise CheckpointError(
            f"{path}: the ONNX model was exported with a fixed batch size of {dims[0]}; an audit runs other batch "
            f"sizes. Re-export with a dynamic batch dimension: {REEXPORT_HINT}"
        )
    out = _dims(proto.graph.output[0])
    classes = out[1] if len(out) == 2 else None
    return graph_input.name, dims[1:], classes


# ------------------------------------------------------------------------------------------- agreement


def runtime_agreement(model: AuditableModel, x: torch.Tensor, on: str) -> dict[str, Any]:
    """Compare the converted module with onnxruntime on the data-domain inputs ``x``; raise if they disagree."""
    path = Path(str(model.meta.path))
    _, _, ort = _modules(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    worst, disagreements, passed = 0.0, 0, True
    with torch.no_grad():
        for start in range(0, x.shape[0], 256):
            batch = model.normalise(x[start : start + 256].to(device).float())
            converted = model.net(batch).float().cpu()
            reference = torch.from_numpy(session.run(None, {input_name: batch.cpu().numpy()})[0]).float()
            if converted.shape != reference.shape:
                raise CheckpointError(
                    f"{path}: converted module returns shape {list(converted.shape)}, onnxruntime "
                    f"{list(reference.shape)}; the conversion is wrong"
                )
            gap = (converted - reference).abs()
            worst = max(worst, float(gap.max()))
            passed &= bool((gap <= AGREEMENT_ATOL + AGREEMENT_RTOL * reference.abs()).all())
            disagreements += int((converted.argmax(1) != reference.argmax(1)).sum())
    record = {
        "reference": f"onnxruntime {package_version('onnxruntime')} (CPUExecutionProvider)",
        "converter": f"onnx2torch {package_version('onnx2torch')}",
        "on": on,
        "rows": int(x.shape[0]),
        "max_abs_logit_diff": worst,
        "tolerance": f"|torch - onnxruntime| <= {AGREEMENT_ATOL:g} + {AGREEMENT_RTOL:g} * |onnxruntime|",
        "argmax_disagreements": disagreements,
        "passed": passed,
    }
    log.info(
        "%s: converted module vs onnxruntime on %s: max |Δlogit| %.3g, %d argmax disagreement(s), %s",
        path, on, worst, disagreements, "passed" if passed else "FAILED",
    )  # fmt: skip
    if not passed:
        raise CheckpointError(
            f"{path}: the converted torch module disagrees with onnxruntime on {on} (max |Δlogit| {worst:.3g}, "
            f"tolerance {AGREEMENT_ATOL:g} + {AGREEMENT_RTOL:g}·|logit|, {disagreements} of {x.shape[0]} predictions "
            "differ); onnx2torch mistranslated an operator: audit a torch.export .pt2 or the safetensors weights"
        )
    return record


def recheck_on_samples(model: AuditableModel, x: torch.Tensor, description: str) -> AuditableModel:
    """A converted ONNX model re-checked against onnxruntime on ``x`` (e.g. the forget set), as a new
    :class:`AuditableModel` sharing the network, with the record in ``extra``; other models pass through."""
    if model.meta.extra.get(FORMAT_KEY) != "onnx" or not model.meta.path:
        return model
    previous = model.meta.extra.get(CHECK_KEY)
    if previous and json.loads(previous).get("on") == description:
        return model
    record = runtime_agreement(model, x, description)
    extra = {**model.meta.extra, CHECK_KEY: json.dumps(record, sort_keys=True)}
    return AuditableModel(model.net, dataclasses.replace(model.meta, extra=extra))


# ------------------------------------------------------------------------------------------- loading


def load_onnx(path: Path, options: LoadOptions) -> AuditableModel:
    onnx, onnx2torch, _ = _modules(path)
    proto = _read_proto(path, onnx)
    external = check_external_data(path, proto, onnx)
    if external:
        onnx.load_external_data_for_model(proto, str(path.resolve().parent))
    try:
        onnx.checker.check_model(str(path) if external else proto)
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends
        raise CheckpointError(f"{path}: invalid ONNX model ({str(exc).splitlines()[0][:200]})") from exc
    _, dims, out_classes = _signature(path, proto)
    file_meta = FileMetadata.parse({p.key: p.value for p in proto.metadata_props}, path)
    net, note = _convert(path, proto, onnx2torch)

    known = [d for d in dims if d is not None]
    program_shape = tuple(known) if len(known) == len(dims) else None
    shape = choose(path, "input_shape", options.input_shape, program_shape, "the ONNX input shape")
    shape = shape if shape is not None else file_meta.input_shape
    if shape is None:
        raise CheckpointError(
            f"{path}: the ONNX input has dynamic dimensions besides the batch {dims}; pass --input-shape"
        )
    if program_shape is not None and tuple(shape) != program_shape:
        raise CheckpointError(
            f"{path}: --input-shape {list(shape)} does not match the ONNX input {list(program_shape)}"
        )
    classes = choose(path, "num_classes", options.num_classes, out_classes or file_meta.num_classes, "the ONNX output")
    if out_classes is not None and classes != out_classes:
        raise CheckpointError(f"{path}: --num-classes {classes} but the ONNX model returns {out_classes} logits")
    mean = choose(path, "mean", options.mean, file_meta.mean)
    std = choose(path, "std", options.std, file_meta.std)
    extra = {FORMAT_KEY: "onnx", "onnx_opset": str(_opset(proto)), "onnx_conversion": note}
    meta = file_meta_for(
        path, options, file_meta, arch=f"onnx:{path.name}", num_classes=classes, input_shape=shape,
        mean=mean, std=std, extra=extra,
    )  # fmt: skip
    model = finish(net, meta, options.device)
    generator = torch.Generator().manual_seed(0)
    synthetic = torch.rand((SYNTHETIC_ROWS, *shape), generator=generator)
    return recheck_on_samples(model, synthetic, f"{SYNTHETIC_ROWS} synthetic inputs (uniform [0, 1], seed 0)")
