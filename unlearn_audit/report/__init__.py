"""Reports: the versioned JSON (``json``), a self-contained HTML page (``html``) and a Markdown summary
(``markdown``), written together by :func:`write_report`.

Importing this package is cheap (no matplotlib, no jinja2): the renderers load on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .json import SCHEMA_VERSION, load_report, migrate, prepare, validate

FORMATS = ("json", "html", "md")
SUFFIXES = {".json": "json", ".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "load_report",
    "migrate",
    "parse_formats",
    "prepare",
    "render",
    "validate",
    "write_report",
]


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"json,html"`` or ``["json", "md"]`` -> validated tuple (``ConfigError`` naming the bad one)."""
    items = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    for item in items:
        if item not in FORMATS:
            raise ConfigError(f"--format {item!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    if not items:
        raise ConfigError(f"--format: give at least one of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def _thumbs(doc: dict[str, Any], thumbnails: Any, search_dirs: Sequence[Path]) -> tuple[dict[str, str], str | None]:
    if thumbnails is False or thumbnails is None:
        return {}, None
    from .thumbnails import thumbnails as make

    samples = None if thumbnails is True else thumbnails
    return make(doc, samples, search_dirs)


def render(doc: dict[str, Any], fmt: str, *, thumbnails: Any = True, search_dirs: Sequence[Path] = ()) -> str:
    """One format as text. ``doc`` is prepared (migrated + validated) here; ``thumbnails``: True (find the forget
    set on disk), False, or the forget ``Samples`` already in memory."""
    import json

    doc = prepare(doc)
    if fmt == "json":
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if fmt == "md":
        from .markdown import render_markdown

        return render_markdown(doc)
    if fmt == "html":
        from .html import render_html

        if doc.get("kind") == "remediation":
            before, note = _thumbs(doc["before"], thumbnails, search_dirs)
            after, _ = _thumbs(doc["after"], thumbnails, search_dirs)
            return render_html(doc, before, note, after)
        thumbs, note = _thumbs(doc, thumbnails, search_dirs)
        return render_html(doc, thumbs, note)
    raise ConfigError(f"format {fmt!r}: choose from {', '.join(FORMATS)}")


def write_report(
    data: dict[str, Any],
    out_dir: Path,
    formats: Sequence[str] = FORMATS,
    *,
    thumbnails: Any = True,
    search_dirs: Sequence[Path] = (),
) -> dict[str, Path]:
    """Write ``report.json``, ``report.html`` and/or ``report.md`` into ``out_dir``; return ``{format: path}``.

    ``data`` is an audit (``AuditResult.to_dict()``, any readable schema version) or a remediation document
    (``{"kind": "remediation", "before": ..., "after": ..., ...}``). It is validated against the shipped schema
    first, so an invalid document writes nothing."""
    formats = parse_formats(formats)
    doc = prepare(data)
    texts = {fmt: render(doc, fmt, thumbnails=thumbnails, search_dirs=search_dirs) for fmt in formats}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt, text in texts.items():
        path = out_dir / f"report.{fmt}"
        path.write_text(text, encoding="utf-8")
        paths[fmt] = path
    return paths
