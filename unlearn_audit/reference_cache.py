"""The reference side of an audit, computed once: in memory for one process, on disk across processes.

:class:`~unlearn_audit.probes.reference_side.ReferenceSide` is what the references contribute to one probe's
counts (their predictions on the random draws; the rows crafted on each reference for the leave-one-out band).
It depends only on the inputs :func:`reference_key` hashes, so

* ``Audit.run_many``, every ``remediate --search`` trial and the demo compute it once per process
  (:class:`ReferenceCache` keeps it in memory, keyed by that hash), and
* the disk cache (``--cache-dir``, default ``$XDG_CACHE_HOME/unlearn-audit`` or ``~/.cache/unlearn-audit``;
  ``--no-cache`` turns it off) lets a later process skip it.

A disk entry is ``<dir>/reference-side/<key[:2]>/<key>.npz``. The key is a sha256 over the package and torch
versions and every input, so an entry written by another version or for other inputs is never read. The
entry stores its key and a sha256 of its arrays; one that does not match (torn, corrupt, edited) is ignored
with a warning and recomputed. Writes go to a unique temporary file in the same folder and are renamed into
place (atomic on POSIX), so concurrent processes never see a partial entry and the last writer wins with
identical content.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError
from .io.hashing import sha256_state_dict
from .io.models import AuditableModel
from .probes import Probe
from .probes.preparation import preparation_signature
from .probes.reference_side import ReferenceSide
from .version import __version__

log = logging.getLogger(__name__)

FORMAT = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/unlearn-audit``, else ``~/.cache/unlearn-audit``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "unlearn-audit"


def model_identity(model: AuditableModel) -> dict[str, Any]:
    """What determines a model's outputs: its weights (and the hash recorded when it was loaded), its structure
    (``repr``), the source of its network class where Python can find it, and the normalisation in front of it."""
    net = model.net
    try:
        source = hashlib.sha256(inspect.getsource(type(net)).encode()).hexdigest()
    except (OSError, TypeError):  # built in the REPL or from C: the repr and the weights still pin it
        source = None
    return {
        "weights": sha256_state_dict(model),
        "recorded_sha256": model.meta.sha256,  # the file's hash (formats whose weights live outside state_dict)
        "structure": hashlib.sha256(repr(model).encode()).hexdigest(),
        "source": source,
        "mean": model.meta.mean,
        "std": model.meta.std,
        "num_classes": model.meta.num_classes,
    }


def reference_key(engine: Any, probe: Probe, label: str, draws: int, references: list[dict[str, Any]]) -> str:
    """sha256 over everything the references' share of ``probe``'s counts depends on (module docstring)."""
    samples = engine.samples
    cfg = engine.config
    parts = {
        "format": FORMAT,
        "unlearn_audit": __version__,
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": str(engine.device),
        "device_name": torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else None,
        "engine": engine.kind,
        "references": references,
        "samples": samples.content_sha256,
        "ids": list(samples.ids),
        "bounds": samples.bounds,
        "probe": probe.config(),
        "label": label,
        "adversarial": probe.adversarial,
        "taus": [float(t) for t in cfg.taus],
        "draws": int(draws),
        "seed": int(cfg.seed),
        "precision": engine.precision_for(probe),
        "craft_on_references": cfg.craft_on_references,
        "batch_size": cfg.batch_size,
        "chunk_size": cfg.chunk_size,
        "memory_budget_mb": cfg.memory_budget_mb,
        "channels_last": engine.channels_last,
        "fuse_batchnorm": cfg.fuse_batchnorm,
        "compile": cfg.compile,
        "frozen_scoring": [i - engine.subjects for i in sorted(engine.scorers) if i >= engine.subjects],
        "preparation": [preparation_signature(m.module) for m in engine.models[engine.subjects :]],
        "num_classes": engine.num_classes,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class ReferenceCache:
    """In-memory and (optionally) on-disk store of reference sides, by :func:`reference_key`.

    ``directory=None`` keeps only the in-memory store (``--no-cache``)."""

    directory: Path | None = None
    memory: dict[str, ReferenceSide] = field(default_factory=dict)

    @classmethod
    def from_setting(cls, setting: str | Path | bool | ReferenceCache | None) -> ReferenceCache:
        """``None``/``True``: the default folder; ``False``: memory only; a path: that folder; a
        :class:`ReferenceCache`: that store itself (two audits sharing one in-memory store)."""
        if isinstance(setting, ReferenceCache):
            return setting
        if setting is False:
            return cls(None)
        if setting is None or setting is True:
            return cls(default_cache_dir())
        path = Path(setting)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--cache-dir {path}: not a folder; give a folder (it is created if missing)")
        return cls(path)

    def path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / "reference-side" / key[:2] / f"{key}.npz"

    def get(self, key: str) -> tuple[ReferenceSide | None, str]:
        """The stored side and where it came from: ``memory``, ``disk``, or ``None`` and ``miss``."""
        if key in self.memory:
            return self.memory[key], "memory"
        path = self.path(key)
        if path is None or not path.exists():
            return None, "miss"
        side = _read(path, key)
        if side is None:
            return None, "miss"
        self.memory[key] = side
        return side, "disk"

    def record(self, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The JSON's ``provenance.reference_cache``: ``hit`` (every probe's reference side was reused),
        the folder (None: memory only) and, per ``role/probe``, ``hit``, ``source`` and ``key``."""
        hit = bool(entries) and all(entry["hit"] for entry in entries.values())
        return {"hit": hit, "dir": None if self.directory is None else str(self.directory), "entries": entries}

    def put(self, key: str, side: ReferenceSide) -> None:
        self.memory[key] = side
        path = self.path(key)
        if path is None:
            return
        try:
            _write(path, key, side)
        except OSError as exc:  # a read-only or full disk costs the next run time, never this run's result
            log.warning("reference cache: could not write %s (%s); continuing without it", path, exc)


def _write(path: Path, key: str, side: ReferenceSide) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"key": key, "sha256": side.digest(), "version": __version__, "format": FORMAT, **side.describe()}
    meta["sample_ids"] = list(side.sample_ids)
    handle, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, meta=np.asarray(json.dumps(meta, sort_keys=True)), **side.arrays())  # type: ignore[arg-type]
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path, key: str) -> ReferenceSide | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {name: data[name] for name in data.files if name != "meta"}
        if meta.get("key") != key or meta.get("format") != FORMAT:
            raise ValueError("the entry was written for other inputs")
        side = ReferenceSide(
            probe=str(meta["probe"]),
            adversarial=bool(meta["adversarial"]),
            taus=arrays["taus"],
            draws=int(meta["draws"]),
            sample_ids=tuple(str(i) for i in meta["sample_ids"]),
            references=int(meta["references"]),
            predictions=arrays.get("predictions"),
            correct=arrays.get("correct"),
            disagree=arrays.get("disagree"),
        )
        if side.digest() != meta.get("sha256"):
            raise ValueError("sha256 of the stored arrays does not match (corrupt entry)")
        return side
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("reference cache: ignoring %s (%s); recomputing it", path, exc)
        return None


def reference_side_for(
    cache: ReferenceCache, engine: Any, probe: Probe, label: str, draws: int, references: list[dict[str, Any]]
) -> tuple[ReferenceSide, dict[str, Any]]:
    """The references' share of ``probe`` on ``engine``'s samples: from memory, from disk, or computed (and
    stored). The record says which (``hit`` is True unless it was computed) and under which key."""
    key = reference_key(engine, probe, label, draws, references)
    side, source = cache.get(key)
    if side is None:
        side = engine.reference_side(probe, draws=draws)
        cache.put(key, side)
        source = "computed"
    return side, {"hit": source != "computed", "source": source, "key": key}
