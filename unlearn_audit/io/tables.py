"""Reading CSV sample lists safely: encodings, directives (``# dataset=...``), row limits, labels, paths."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


@dataclass
class Table:
    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (1-based line number, cells)
    directives: dict[str, str]


def read_table(path: Path, max_rows: int) -> Table:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    if not raw.strip():
        raise InputError(f"{path}: the file is empty; expected a header row and at least one sample")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: unreadable UTF-16 text; save the CSV as UTF-8") from exc
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise InputError(
                f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the CSV as UTF-8"
            ) from exc
    if "\x00" in text:
        raise InputError(f"{path}: contains NUL bytes; this is not a text CSV")
    directives: dict[str, str] = {}
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            first = cells[0].lstrip()
            if first.startswith("#"):
                if header is None:
                    body = ",".join(cells).lstrip("# ").strip()
                    key, sep, value = body.partition("=")
                    if sep:
                        directives[key.strip().lower()] = value.strip()
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                continue
            rows.append((line, [c.strip() for c in cells]))
            if len(rows) > max_rows:
                raise InputError(f"{path}: more than {max_rows} rows; split the set or raise the limit with --max-rows")
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc
    if header is None:
        raise InputError(f"{path}: no header row; expected e.g. 'path,label', 'index,label' or features plus 'label'")
    if len(set(header)) != len(header):
        dup = [h for h, c in Counter(header).items() if c > 1][0]
        raise InputError(f"{path}:1: column {dup!r} appears twice in the header")
    if not rows:
        raise InputError(f"{path}: header only, no samples; an audit needs at least one row")
    for line, cells in rows:
        if len(cells) != len(header):
            raise InputError(
                f"{path}:{line}: {len(cells)} fields but the header has {len(header)} ({','.join(header)})"
            )
    return Table(path, header, rows, directives)


def parse_label(table: Table, line: int, text: str, num_classes: int | None) -> int:
    try:
        value = int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            raise InputError(f"{table.path}:{line}: label {text!r} is not an integer") from None
        if not math.isfinite(as_float) or not as_float.is_integer():
            raise InputError(f"{table.path}:{line}: label {text!r} is not an integer") from None
        value = int(as_float)
    if value < 0 or (num_classes is not None and value >= num_classes):
        upper = f"{num_classes - 1}" if num_classes is not None else "N-1"
        raise InputError(f"{table.path}:{line}: label {value} outside 0..{upper} (num_classes={num_classes})")
    return value


def resolve_inside(root: Path, relative: str, table: Table, line: int) -> Path:
    if not relative:
        raise InputError(f"{table.path}:{line}: empty path")
    root_real = root.resolve()
    candidate = Path(relative)
    full = (candidate if candidate.is_absolute() else root_real / candidate).resolve()
    try:
        full.relative_to(root_real)
    except ValueError:
        raise InputError(
            f"{table.path}:{line}: path {relative!r} resolves outside the data root {root_real}; "
            "move the file under the root or pass --data-root"
        ) from None
    return full


def ids_column(table: Table, default: list[str]) -> list[str]:
    if "id" not in table.header:
        return default
    col = table.header.index("id")
    return [cells[col] or default[i] for i, (_, cells) in enumerate(table.rows)]
