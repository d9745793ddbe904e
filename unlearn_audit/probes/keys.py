"""Keyed randomness: every (probe, sample, τ) gets its own generator, derived from one seed.

``SeedSequence(seed, spawn_key=(probe_code, sample_key, tau_index))`` gives the stream, so a sample's draws do
not depend on batch size, chunking, device count, sharding or resume point. The sample key is a stable hash
of the sample's *id*, so reordering the forget CSV does not change any sample's draws either.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

import numpy as np
import torch


def probe_code(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def sample_keys(ids: Sequence[str]) -> np.ndarray:
    """64-bit keys from sample ids (sha256 prefix), as Python ints in a uint64 array."""
    return np.asarray(
        [int.from_bytes(hashlib.sha256(str(i).encode("utf-8")).digest()[:8], "little") for i in ids], dtype=np.uint64
    )


def unit_seeds(seed: int, probe: str, keys: np.ndarray, tau_indices: Sequence[int]) -> np.ndarray:
    """``[len(keys), len(tau_indices)]`` 63-bit seeds, one per (sample, τ) unit."""
    code = probe_code(probe)
    out = np.empty((len(keys), len(tau_indices)), dtype=np.int64)
    for i, key in enumerate(keys.tolist()):
        for j, t in enumerate(tau_indices):
            state = np.random.SeedSequence(int(seed), spawn_key=(code, int(key), int(t))).generate_state(2, np.uint32)
            out[i, j] = ((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)
    return out


def generator_for(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
