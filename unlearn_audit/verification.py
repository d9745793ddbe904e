"""``verify_report``: show that a saved report was produced by its seed, on its files, by this procedure.

    outcome = verify_report("report.json", seed_file="audit.seed")
    outcome.ok, outcome.lines()

Four checks, in order; each gives one line (``Check``):

1. **seed**: the seed file opens the report's commitment (a secret seed), or the report's seed is public;
2. **binding**: the report's ``binding`` digest matches its fields, and the policy, config, verdict and file
   hashes written in the report are the ones bound (so an edited report shows);
3. **files**: the SHA-256 of every bound file on disk (model, references, forget set, holdout, the panel's
   retain/test/original) equals the bound one; moved files are found with ``root`` or ``paths`` overrides;
4. **rerun**: the audit runs again with the same config and seed, and its verdict and statistics (the JSON
   without provenance, paths and library versions) equal the report's.

The rerun is skipped when an earlier check failed (its inputs would not be the bound ones).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .commitment import BOUND_FIELDS, SecretSeed, binding, binding_digest
from .config import AuditConfig
from .errors import InputError
from .io.hashing import sha256_file
from .progress import NULL_PROGRESS, Progress
from .report.json import load_report
from .results import jsonable

IGNORED_KEYS = frozenset(
    {"provenance", "versions", "path", "source", "command", "api_call", "time", "device", "batch_size"}
)
"""What the rerun comparison leaves out: where files were and when and how the audit ran, not what it found."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.message}"


@dataclass
class Verification:
    """The outcome of :func:`verify_report`: one :class:`Check` per step; ``ok`` only if every one passed."""

    report: Path
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]


@dataclass(frozen=True)
class BoundFile:
    role: str
    path: str | None
    sha256: str | None


def bound_files(doc: dict[str, Any]) -> list[BoundFile]:
    """Every input file a report names, with the role its binding uses (``reference_0``, ``retain``, ...)."""
    out = [BoundFile("model", doc["model"].get("path"), doc["model"].get("sha256"))]
    out += [BoundFile(f"reference_{i}", r.get("path"), r.get("sha256")) for i, r in enumerate(doc["references"])]
    for role in ("forget", "holdout"):
        if doc.get(role):
            out.append(BoundFile(role, doc[role].get("source"), doc[role].get("sha256")))
    for role, record in ((doc.get("panel") or {}).get("inputs") or {}).items():
        if record:
            out.append(BoundFile(role, record.get("path", record.get("source")), record.get("sha256")))
    return out


def locate(file: BoundFile, root: Path | None, paths: Mapping[str, Path]) -> Path:
    """Where ``file`` is now: an override for its role, else its recorded path (relative paths under ``root``),
    else ``root`` / its file name."""
    if file.role in paths:
        return Path(paths[file.role])
    if file.path is None:
        raise InputError(
            f"{file.role}: the report has no path for it (it was given in memory); pass --path {file.role}=FILE"
        )
    recorded = Path(file.path)
    candidates = [recorded] if root is None else [root / recorded, root / recorded.name]
    if recorded.is_absolute() and root is not None:
        candidates = [recorded, root / recorded.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = " or ".join(str(c) for c in candidates)
    raise InputError(f"{file.role}: not found at {where}; pass --root DIR or --path {file.role}=FILE")


def _seed_check(doc: dict[str, Any], seed_file: Path | None) -> tuple[Check, int | SecretSeed]:
    committed = doc.get("seed_commitment")
    if committed is None:
        if seed_file is not None:
            raise InputError(
                f"--seed-file {seed_file}: the report's seed is public ({doc['seed']}); it has no commitment"
            )
        return Check("seed", True, f"public seed {doc['seed']} (no commitment to open)"), int(doc["seed"])
    if seed_file is None:
        raise InputError("the report was audited with a secret seed; pass --seed-file with the file check wrote")
    secret = SecretSeed.read(seed_file)
    if secret.commitment != committed:
        return Check("seed", False, f"{seed_file} does not open the report's commitment {committed[:16]}…"), secret
    return Check("seed", True, f"{seed_file} opens the report's commitment {committed[:16]}…"), secret


def _binding_checks(doc: dict[str, Any]) -> list[Check]:
    bound = doc.get("binding")
    if not bound:
        raise InputError("the report has no binding (written before unlearn-audit bound reports); nothing to verify")
    if any(key not in bound for key in (*BOUND_FIELDS, "digest")):
        raise InputError("the report's binding lacks fields; it was not written by check")
    problems = []
    if binding_digest(bound) != bound["digest"]:
        problems.append("the binding digest does not match the bound fields (the binding was edited)")
    expected_seed = {"commitment": doc["seed_commitment"]} if doc.get("seed_commitment") else {"value": doc["seed"]}
    again = binding(bound["files"], doc["policy"], doc["config"], bound["tool_version"], expected_seed, doc["verdict"])
    for key, label in (("policy_sha256", "policy"), ("config_sha256", "config")):
        if again[key] != bound[key]:
            problems.append(f"the report's {label} is not the one bound to the verdict (its sha256 changed)")
    if doc["verdict"] != bound["verdict"]:
        problems.append(f"the report's verdict {doc['verdict']!r} is not the bound one {bound['verdict']!r}")
    if bound["seed"] != expected_seed:
        problems.append("the report's seed (or commitment) is not the bound one")
    for role, sha in doc["hashes"].items():
        if bound["files"].get(role) != sha:
            problems.append(f"the report's hash for {role} is not the bound one")
    if problems:
        return [Check("binding", False, p) for p in problems]
    return [
        Check(
            "binding", True, f"digest {bound['digest'][:16]}… matches the report's verdict, policy, config and hashes"
        )
    ]


def _file_checks(
    doc: dict[str, Any], root: Path | None, paths: Mapping[str, Path]
) -> tuple[list[Check], dict[str, Path]]:
    checks, found = [], {}
    bound = doc["binding"]["files"]
    for file in bound_files(doc):
        path = locate(file, root, paths)
        found[file.role] = path
        expected = bound.get(file.role)
        if file.sha256 is None:  # in memory, or a directory of images: the rerun compares the content hash
            checks.append(Check(file.role, True, f"{path}: no file hash bound; the rerun compares its content"))
            continue
        actual = sha256_file(path)
        if actual != expected:
            checks.append(
                Check(
                    file.role,
                    False,
                    f"{path}: sha256 {actual[:16]}… differs from the bound {str(expected)[:16]}… (the file changed)",
                )
            )
        else:
            checks.append(Check(file.role, True, f"{path}: sha256 {actual[:16]}… as bound"))
    return checks, found


def differences(report: Any, rerun: Any, where: str = "", rtol: float = 0.0) -> list[str]:
    """Where two JSON values differ (keys in :data:`IGNORED_KEYS` left out); floats within ``rtol`` count as equal."""
    if isinstance(report, dict) and isinstance(rerun, dict):
        out = []
        for key in sorted(set(report) | set(rerun)):
            if key in IGNORED_KEYS:
                continue
            path = f"{where}.{key}" if where else str(key)
            if key not in report or key not in rerun:
                out.append(f"{path}: only in the {'rerun' if key in rerun else 'report'}")
            else:
                out += differences(report[key], rerun[key], path, rtol)
        return out
    if isinstance(report, list) and isinstance(rerun, list):
        if len(report) != len(rerun):
            return [f"{where}: {len(report)} entries in the report, {len(rerun)} in the rerun"]
        return [
            d
            for i, (a, b) in enumerate(zip(report, rerun, strict=True))
            for d in differences(a, b, f"{where}[{i}]", rtol)
        ]
    if isinstance(report, float) and isinstance(rerun, float | int) and not isinstance(rerun, bool):
        if math.isclose(report, float(rerun), rel_tol=rtol, abs_tol=0.0):
            return []
    elif report == rerun and type(report) is type(rerun):
        return []
    return [f"{where}: report {report!r}, rerun {rerun!r}"]


def verify_report(
    report: str | Path,
    seed_file: str | Path | None = None,
    *,
    root: str | Path | None = None,
    paths: Mapping[str, str | Path] | None = None,
    model_options: Mapping[str, Any] | None = None,
    sample_options: Mapping[str, Any] | None = None,
    device: str | None = None,
    rtol: float = 0.0,
    progress: Progress = NULL_PROGRESS,
) -> Verification:
    """Check a saved audit report against its seed file and its files, and rerun it (see the module docstring)."""
    from .audit import Audit

    report = Path(report)
    doc = load_report(report)
    if doc.get("kind") != "audit":
        raise InputError(f"{report}: a {doc.get('kind')} document; verify-report checks audit reports (check --json)")
    outcome = Verification(report)
    seed_check, seed = _seed_check(doc, Path(seed_file) if seed_file is not None else None)
    outcome.checks.append(seed_check)
    outcome.checks += _binding_checks(doc)
    file_checks, found = _file_checks(
        doc, Path(root) if root is not None else None, {k: Path(v) for k, v in (paths or {}).items()}
    )
    outcome.checks += file_checks
    if not outcome.ok:
        outcome.checks.append(Check("rerun", False, "not run: the seed, the report or a bound file does not match"))
        return outcome
    config = AuditConfig.from_dict(doc["config"], seed)
    if device is not None:
        config = AuditConfig.from_dict({**doc["config"], "device": device}, seed)
    refs = [found[f"reference_{i}"] for i in range(len(doc["references"]))]
    audit = Audit(
        found["model"],
        references=refs,
        forget=found["forget"],
        holdout=found.get("holdout"),
        config=config,
        progress=progress,
        model_options=model_options,
        sample_options=sample_options,
        command=doc["provenance"].get("command"),
        retain=found.get("retain"),
        test=found.get("test"),
        original=found.get("original"),
    )
    rerun = json.loads(json.dumps(jsonable(audit.run().to_dict())))
    diffs = differences(doc, rerun, rtol=rtol)
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        outcome.checks.append(Check("rerun", False, f"{len(diffs)} difference(s): {shown}"))
    else:
        outcome.checks.append(
            Check("rerun", True, f"verdict {rerun['verdict']} and every statistic equal the report's")
        )
    return outcome
