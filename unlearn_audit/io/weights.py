"""Fitting a state dict to a network: wrapper prefixes stripped, BatchNorm counters filled in, and a one-line
diagnosis with the likely fix when the weights do not fit the architecture."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

STRIPPABLE_PREFIXES = ("module.", "model.", "_orig_mod.", "net.")


def _strip_prefixes(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes (``module.`` from DataParallel, ``model.``, ``_orig_mod.`` from torch.compile)."""
    changed = True
    while changed and not set(state) <= expected:
        changed = False
        for prefix in STRIPPABLE_PREFIXES:
            keys = list(state)
            if keys and all(k.startswith(prefix) for k in keys):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
                break
    return state


def _fits(state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> bool:
    """Keys and shapes agree; BatchNorm counters missing from older checkpoints are filled in (eval ignores them)."""
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key].clone()
    return set(state) == set(expected) and all(tuple(state[k].shape) == tuple(expected[k].shape) for k in expected)


def _short_list(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ...and {len(items) - limit} more" if len(items) > limit else "")


def diagnose_mismatch(
    path: Path, arch: str, state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> str:
    """One line that explains why ``state`` does not fit ``arch``, with the most likely fix."""
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = sorted(k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
    parts = [f"{path}: weights do not fit --arch {arch}:"]
    if mismatched:
        shapes = [f"{k} file {list(state[k].shape)} vs arch {list(expected[k].shape)}" for k in mismatched]
        parts.append(f"{len(mismatched)} shape mismatch(es) ({_short_list(shapes, 2)});")
    if missing:
        parts.append(f"{len(missing)} missing ({_short_list(missing)});")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_short_list(unexpected)});")
    hint = _mismatch_hint(arch, state, expected, mismatched, missing, unexpected)
    if hint:
        parts.append(f"hint: {hint}")
    return " ".join(parts)


def _mismatch_hint(
    arch: str,
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    mismatched: list[str],
    missing: list[str],
    unexpected: list[str],
) -> str:
    stem = "conv1.weight"
    if stem in mismatched and state[stem].dim() == 4:
        kernel = state[stem].shape[-1]
        if kernel == 7 and arch == "resnet18-cifar":
            return "a 7x7 stem is the ImageNet ResNet; try --arch resnet18"
        if kernel == 3 and arch.startswith("resnet") and arch != "resnet18-cifar":
            return "a 3x3 stem is the CIFAR ResNet; try --arch resnet18-cifar"
        if state[stem].shape[1] != expected[stem].shape[1]:
            return f"the checkpoint takes {state[stem].shape[1]} input channels; pass --input-shape accordingly"
    head = [k for k in mismatched if state[k].dim() >= 1 and state[k].shape[1:] == expected[k].shape[1:]]
    if head and len(head) == len(mismatched):
        classes = {int(state[k].shape[0]) for k in head}
        if len(classes) == 1:
            return f"the checkpoint's classifier has {classes.pop()} outputs; pass --num-classes accordingly"
    if any(k.startswith("linear.") for k in unexpected) and any(k.startswith("fc.") for k in missing):
        return "keys 'linear.*'/'shortcut.*' come from a pytorch-cifar style ResNet; load it with a factory --arch file.py:fn"
    if len(missing) == len([k for k in expected if not k.endswith("num_batches_tracked")]):
        return "no tensor name matches; check --arch (or write a factory --arch file.py:fn)"
    return ""
