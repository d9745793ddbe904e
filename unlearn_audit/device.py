"""The one place that turns ``auto|cpu|cuda[:i]|mps`` into a ``torch.device``."""

from __future__ import annotations

import ctypes
import os
import platform
import sys

import torch

from .errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the device to run on. ``auto`` prefers CUDA, then Apple MPS, then the CPU."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r}: not a device name; use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device!r}: CUDA is not available on this machine; use --device cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible; "
                f"use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    return resolved


def configure_numerics(device: torch.device, precision: str) -> None:
    """fp32 means fp32: switch TF32 off on CUDA (it would round matmul inputs to 10 mantissa bits)."""
    if device.type == "cuda" and precision == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 * 1024**2
"""Allocations below this come from the heap, not from fresh ``mmap`` pages (glibc's largest allowed value)."""
TRIM_THRESHOLD = 256 * 1024**2
"""Free memory at the top of the heap is returned to the system only beyond this."""


def tune_allocator() -> bool:
    """For our own processes (the CLI): keep freed tensor memory in the process instead of giving it back to the
    system after every batch. glibc's defaults return it, and an audit that allocates the same activations
    thousands of times pays a page fault per 4 KiB page each time: on the VGG of docs/performance.md, setting (a),
    a cold fp32 ``check`` took 7 million minor faults and 14–18 s of system time (39–45 s wall); with these two
    thresholds 0.15 million, 1.5 s and 30–31 s. Both must be set (either alone was slower: 60 and 82 s).

    Not done when the user set ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` (theirs wins) or
    ``UNLEARN_AUDIT_SYSTEM_MALLOC``, nor off glibc Linux. The library API never calls this: a pipeline's
    allocator is its owner's. Returns whether both settings were applied."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(
        k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "UNLEARN_AUDIT_SYSTEM_MALLOC")
    ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False
