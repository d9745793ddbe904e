"""Audit-time secrets and commitments: a seed the audited party cannot predict, and the hashes that bind a verdict
to the files it was computed on.

An audit whose random choices are public can be gamed: the owner computes the exact perturbed inputs the default
audit will show the model and fine-tunes on them (docs/methodology.md, "The auditee is an adversary"). So the
auditor draws the seed at audit time from the operating system (:meth:`SecretSeed.draw`, 128 bits), keeps it in
a file only they hold (mode 0600, never overwritten), and the report carries only a **commitment** to it:

    commitment = SHA-256("unlearn-audit/seed-commitment/v1" ‖ 0x00 ‖ salt ‖ seed as 16 big-endian bytes)

* The **seed** has 128 bits: nobody can search the seed space for one whose commitment matches.
* The **salt** (256 random bits, stored beside the seed) keeps the commitment hiding even for a seed that is
  *not* secret (a reused or guessable one would otherwise be found by hashing candidates), and makes two reports
  audited with the same seed unlinkable.
* The **domain prefix** keeps a commitment from ever equalling any other SHA-256 this tool writes (a file hash,
  the binding digest), so one cannot be passed off as another.

Later the auditor hands over the seed file; anyone can check that it opens the commitment and rerun the audit
(``unlearn-audit verify-report``). The **binding** (:func:`binding`) is one digest over the SHA-256 of the model,
the references, the forget set and every other input file, the policy, the configuration, the tool version, the
seed commitment and the verdict, so a report cannot be moved to other files or edited without it showing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError

SEED_BITS = 128
SALT_BYTES = 32
COMMITMENT_DOMAIN = b"unlearn-audit/seed-commitment/v1\x00"
BINDING_DOMAIN = b"unlearn-audit/binding/v1\x00"
SEED_FILE_FORMAT = "unlearn-audit secret seed"


@dataclass(frozen=True, repr=False)
class SecretSeed:
    """A seed drawn at audit time, with the salt of its commitment. ``repr`` shows only the commitment."""

    value: int
    salt: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.value < 1 << SEED_BITS:
            raise ConfigError(f"secret seed: must be a {SEED_BITS}-bit non-negative integer")
        if len(self.salt) != SALT_BYTES:
            raise ConfigError(f"secret seed: the salt must be {SALT_BYTES} bytes, got {len(self.salt)}")

    @classmethod
    def draw(cls) -> SecretSeed:
        """128 bits from the operating system's CSPRNG (:mod:`secrets`), and a fresh 256-bit salt."""
        return cls(secrets.randbits(SEED_BITS), secrets.token_bytes(SALT_BYTES))

    @property
    def commitment(self) -> str:
        return seed_commitment(self.value, self.salt)

    def __repr__(self) -> str:
        return f"SecretSeed(commitment={self.commitment[:16]}…)"

    __str__ = __repr__

    def write(self, path: str | Path) -> Path:
        """Write the seed file: created new (an existing file is never overwritten), readable by its owner only."""
        path = Path(path)
        text = json.dumps(
            {
                "format": SEED_FILE_FORMAT,
                "version": 1,
                "seed": f"{self.value:032x}",
                "salt": self.salt.hex(),
                "commitment": self.commitment,
            },
            indent=2,
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(
                f"--seed-file {path}: the file exists; a seed file is never overwritten (choose a new path)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"--seed-file {path}: cannot create it ({exc.strerror})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.chmod(path, 0o600)  # the umask cannot widen it, but an inherited ACL default might
        return path

    @classmethod
    def read(cls, path: str | Path) -> SecretSeed:
        """The seed file written by :meth:`write`; a one-line :class:`InputError` naming the file otherwise."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such seed file")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InputError(
                f"{path}: not a seed file (not JSON); pass the file written by check --seed-file"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != SEED_FILE_FORMAT:
            raise InputError(f"{path}: not a seed file (no format {SEED_FILE_FORMAT!r}); pass the --seed-file of check")
        try:
            seed = cls(int(str(doc["seed"]), 16), bytes.fromhex(str(doc["salt"])))
        except (KeyError, ValueError) as exc:
            raise InputError(f"{path}: field seed or salt is missing or not hexadecimal ({exc})") from None
        except ConfigError as exc:
            raise InputError(f"{path}: {exc}") from None
        if doc.get("commitment") not in (None, seed.commitment):
            raise InputError(f"{path}: the stored commitment does not match its seed and salt; the file was edited")
        return seed


def seed_commitment(value: int, salt: bytes) -> str:
    """SHA-256 over the domain prefix, the salt and the seed (16 bytes, big-endian)."""
    return hashlib.sha256(COMMITMENT_DOMAIN + salt + int(value).to_bytes(SEED_BITS // 8, "big")).hexdigest()


def canonical_sha256(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys, no spaces): the same document gives the same digest."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


UNBOUND_CONFIG = ("batch_size", "device")
"""Config keys that say how an audit ran, not what it computed (results do not depend on the batch size; the device
is provenance): left out of ``config_sha256`` so a rerun elsewhere binds the same."""
BOUND_FIELDS = ("files", "policy_sha256", "config_sha256", "tool_version", "seed", "verdict")


def binding(
    files: dict[str, str | None],
    policy: dict[str, Any],
    config: dict[str, Any],
    tool_version: str,
    seed: dict[str, Any],
    verdict: str,
) -> dict[str, Any]:
    """The ``binding`` object of a report: what the verdict was computed on, and one digest over all of it.

    ``config`` is bound without :data:`UNBOUND_CONFIG`. ``files`` maps a role (``model``, ``reference_0``, ``forget``, ...) to the SHA-256 of its file (of its content
    when it came from memory); ``seed`` is ``{"commitment": ...}`` for a secret seed, ``{"value": n}`` otherwise."""
    bound = {
        "files": dict(files),
        "policy_sha256": canonical_sha256(policy),
        "config_sha256": canonical_sha256({k: v for k, v in config.items() if k not in UNBOUND_CONFIG}),
        "tool_version": tool_version,
        "seed": dict(seed),
        "verdict": verdict,
    }
    return {**bound, "digest": binding_digest(bound)}


def binding_digest(bound: dict[str, Any]) -> str:
    """SHA-256 over the domain prefix and the canonical JSON of the bound fields (:data:`BOUND_FIELDS`)."""
    fields = {key: bound[key] for key in BOUND_FIELDS}
    return hashlib.sha256(BINDING_DOMAIN + canonical_sha256(fields).encode("ascii")).hexdigest()
