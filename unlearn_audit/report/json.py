"""The JSON report: its schema version, validation against the shipped JSON Schema, and migration of results
saved by older releases.

``SCHEMA_VERSION`` names the layout ``AuditResult.to_dict()`` writes. A reader accepts every version in
``READABLE`` and migrates it to the current one; anything else is a one-line :class:`SchemaError`.

History
-------
1.0  first release of the audit JSON.
1.1  ``kind`` ("audit" or "remediation"); ``provenance`` gains ``tool``, ``seed``, ``api_call`` and ``files``
     (role, path and sha256 of every model, reference and data file).
"""

from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError, SchemaError

SCHEMA_VERSION = "1.3"
READABLE = ("1.0", "1.1", "1.2", "1.3")
# 1.2 added optional keys only: seed_commitment, binding, limits (secret seeds and what an audit can prove),
# provenance.reference_cache and stopped_early, remote (served models), band.spread_measured, probes' access;
# provenance.seed may be null (a secret seed). A 1.1 document is a valid 1.2 document once relabelled.
# 1.3 added optional keys only: sequential (check --stop-early), draws_auto (--draws auto),
# sample_evidence.samples_tested, and config keys written only when used (stop_early, looks, spending, per_sample,
# draws_auto, mc_share). A 1.1 or 1.2 document is a valid 1.3 document once relabelled.


AUDIT_LIMITS = {
    "pass_means": (
        "pass: near the forget set (under these probes, at these τ, against these retrained references, by this "
        "policy) the model behaves like a model retrained without the forget set. It is not a proof that the "
        "data was never used, nor that other probes, other references or other thresholds would agree."
    ),
    "cannot_prove": (
        "No audit of a model's weights or behaviour can prove that data was never used: training with a sample "
        "and training without it can reach the same weights (forging; Thudi et al. 2022, 'On the necessity of auditable "
        "algorithmic definitions for machine unlearning'), and an owner who knows the audit can tune a model to "
        "pass it (Zhang et al., ICML 2024, 'Verification of Machine Unlearning is Fragile'). Proof that data was "
        "removed needs evidence about the training process itself."
    ),
    "findings_mean": (
        "residual_knowledge or over_unlearning: the model's behaviour near the forget set lies outside what honest "
        "retrains show, at the stated error rate. That is evidence that the model is not a retrain's equal there; "
        "it does not name who trained it or how."
    ),
}
"""What an audit can and cannot prove: a fixed text in every report (JSON ``limits``, the HTML and Markdown; the
renderers fall back to it for reports written before it existed)."""


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema shipped with the package (also at docs/report-schema.json)."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy scalars to Python numbers, non-finite floats to null, paths to strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalar
        return jsonable(obj.item())
    return obj


def provenance_files(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Role, name, path and sha256 of every model, reference and data file an audit read."""
    files: list[dict[str, Any]] = []
    model = doc.get("model") or {}
    files.append({"role": "model", "name": model.get("name"), "path": model.get("path"), "sha256": model.get("sha256")})
    for ref in doc.get("references") or []:
        files.append(
            {"role": "reference", "name": ref.get("name"), "path": ref.get("path"), "sha256": ref.get("sha256")}
        )
    for role in ("forget", "holdout"):
        data = doc.get(role)
        if data:
            files.append(
                {
                    "role": role,
                    "name": Path(str(data.get("source"))).name,
                    "path": data.get("source"),
                    "sha256": data.get("sha256"),
                    "content_sha256": data.get("content_sha256"),
                }
            )
    return files


def _where(source: str | Path | None) -> str:
    return str(source) if source is not None else "report"


def _version_of(doc: Any, source: str | Path | None) -> str:
    where = _where(source)
    if not isinstance(doc, dict):
        raise SchemaError(
            f"{where}: not an unlearn-audit result (the top level is a {type(doc).__name__}, not an object)"
        )
    version = doc.get("schema_version")
    if version is None:
        raise SchemaError(
            f"{where}: not an unlearn-audit result (no schema_version); pass a file written by --json or --report"
        )
    version = str(version)
    if version in READABLE:
        return version
    try:
        newer = tuple(int(p) for p in version.split(".")) > tuple(int(p) for p in SCHEMA_VERSION.split("."))
    except ValueError:
        newer = False
    if newer:
        raise SchemaError(
            f"{where}: schema_version {version} is newer than this release understands ({SCHEMA_VERSION}); "
            "upgrade unlearn-audit to render it"
        )
    raise SchemaError(f"{where}: unknown schema_version {version!r}; this release reads {', '.join(READABLE)}")


def _migrate_audit(doc: dict[str, Any], source: str | Path | None) -> dict[str, Any]:
    version = _version_of(doc, source)
    if version == SCHEMA_VERSION:
        return doc
    out = copy.deepcopy(doc)
    if version == "1.0":
        out["kind"] = "audit"
        prov = dict(out.get("provenance") or {})
        seed = out.get("seed", (out.get("config") or {}).get("seed"))
        prov.setdefault("tool", {"name": "unlearn-audit", "version": (out.get("versions") or {}).get("unlearn_audit")})
        prov.setdefault("seed", seed)
        prov.setdefault("api_call", None)
        prov.setdefault("files", provenance_files(out))
        prov["migrated_from"] = "1.0"
        out["provenance"] = prov
    elif version in ("1.1", "1.2"):
        out["provenance"] = {**(out.get("provenance") or {}), "migrated_from": version}
    out["schema_version"] = SCHEMA_VERSION
    return out


def migrate(doc: Any, source: str | Path | None = None) -> dict[str, Any]:
    """``doc`` (an audit or a remediation document, any readable version) in the current layout."""
    _version_of(doc, source)
    if doc.get("kind") == "remediation":
        out = dict(doc)
        for side in ("before", "after"):
            if side not in out:
                raise SchemaError(f"{_where(source)}: remediation document without {side!r}; it needs both audits")
            out[side] = _migrate_audit(out[side], f"{_where(source)} ({side})")
        out["schema_version"] = SCHEMA_VERSION
        return out
    return _migrate_audit(doc, source)


def validate(doc: dict[str, Any], source: str | Path | None = None) -> None:
    """Raise :class:`SchemaError` (one line, naming the field) unless ``doc`` follows the shipped schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        best = jsonschema.exceptions.best_match(errors) or errors[0]
        field = "/".join(str(p) for p in best.absolute_path) or "(top level)"
        message = best.message if len(best.message) < 160 else best.message[:157] + "..."
        raise SchemaError(f"{_where(source)}: field {field}: {message} (schema {SCHEMA_VERSION})")


def prepare(doc: Any, source: str | Path | None = None) -> dict[str, Any]:
    """Migrate, make JSON-clean and validate: what every renderer takes."""
    out = jsonable(migrate(doc, source))
    validate(out, source)
    return out


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a saved result (``--json``/``--report``, any readable schema version), migrated and validated."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; pass the JSON written by check --json or --report") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "pass the JSON written by check --json or --report"
        ) from None
    return prepare(doc, path)
