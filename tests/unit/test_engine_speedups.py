"""Engine speed-ups must not change a single bit: pooling before ReLU, cache-sized CPU batches."""

from __future__ import annotations

import torch

from tests.conftest import FMNIST
from unlearn_audit.io.models import load_model
from unlearn_audit.probes import preparation
from unlearn_audit.probes.adversarial import input_gradient
from unlearn_audit.probes.preparation import auto_batch_size, pool_before_relu, prepare_models


def test_pool_before_relu_is_bit_exact(monkeypatch):
    model = load_model(FMNIST / "original.safetensors")
    swapped = prepare_models([model], torch.device("cpu"), True, False)[0].module
    monkeypatch.setattr(preparation, "pool_before_relu", lambda module: 0)
    plain = prepare_models([model], torch.device("cpu"), True, False)[0].module
    code = swapped.net.code
    assert code.index('"3")(features_0)') < code.index('"2")(features_3)')  # max-pool now runs before ReLU
    x = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (300,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(swapped(x), plain(x))
    assert torch.equal(input_gradient(swapped, x, y), input_gradient(plain, x, y))
    assert pool_before_relu(swapped) == 0  # nothing left to swap; the pass is idempotent


def test_cpu_batches_stay_cache_sized():
    assert auto_batch_size((1, 28, 28), 512, adversarial=True, device_type="cpu") == 256
    assert auto_batch_size((1, 28, 28), 512, adversarial=False, device_type="cuda") == 4096
    assert auto_batch_size((3, 224, 224), 512, adversarial=True, device_type="cuda") < 4096


def test_the_cli_keeps_freed_memory_unless_the_user_set_malloc(monkeypatch):
    """``tune_allocator`` (the CLI's first step) sets glibc's two thresholds; a user's MALLOC_* settings or
    UNLEARN_AUDIT_SYSTEM_MALLOC win, and other platforms are left alone (docs/performance.md measures it)."""
    import platform
    import sys

    from unlearn_audit.device import tune_allocator

    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "UNLEARN_AUDIT_SYSTEM_MALLOC"):
        with monkeypatch.context() as m:
            m.setenv(name, "1")
            assert tune_allocator() is False
    glibc = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert tune_allocator() is glibc
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tune_allocator() is False
