"""What the benchmarks share: the machine's description, its matmul peak, FLOPs per row, and docs/performance.md
as named sections, so that benchmarks/check.py (whole processes, first) and benchmarks/probes.py (the engine
alone, second) each rewrite their own section and keep the other's."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

TITLE = "# Performance"
ORDER = (
    "check",
    "levers",
    "sequential",
    "engine",
)  # the sections, in the document's order ("levers" is written by hand)


def matmul_peak(dtype: torch.dtype, seconds: float = 1.5) -> float:
    """Best sustained FLOP/s of a 1024x1024 matmul in this process."""
    a = torch.randn(1024, 1024).to(dtype)
    b = torch.randn(1024, 1024).to(dtype)
    torch.mm(a, b)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * 1024**3 / (time.perf_counter() - start))
    return best


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """The cores this process may run on (affinity and cgroup cpusets included)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def flops_per_row(model: torch.nn.Module, shape: tuple[int, ...]) -> tuple[float, float]:
    """(forward, forward + input-gradient backward) matmul/conv FLOPs per input row."""
    model = model.eval()
    x = torch.rand(4, *shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    forward = counter.get_total_flops() / 4
    for p in model.parameters():
        p.requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(xg), torch.zeros(4, dtype=torch.long)).backward()
    for p in model.parameters():
        p.requires_grad_(True)
    return forward, counter.get_total_flops() / 4


WRITERS = {"check": "benchmarks/check.py", "engine": "benchmarks/probes.py", "sequential": "benchmarks/sequential.py"}


def _marker(name: str, end: bool = False) -> str:
    writer = f"written by {WRITERS[name]}" if name in WRITERS else "written by hand"
    return f"<!-- {'end' if end else 'begin'} section: {name} ({writer}) -->"


def read_sections(path: Path) -> dict[str, str]:
    """The named sections of ``path``. A document written before the sections existed is the engine's."""
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    found = {
        m.group(1): m.group(2).strip("\n")
        for m in re.finditer(r"<!-- begin section: (\w+) [^>]*-->\n(.*?)\n<!-- end section: \1 [^>]*-->", text, re.S)
    }
    if not found and text.strip():
        found["engine"] = demote(text.strip("\n"))
    return found


def demote(markdown: str) -> str:
    """Every heading one level down (a stand-alone document becomes a section)."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines())


def write_section(path: Path, name: str, body: str) -> None:
    """Replace section ``name`` of ``path`` with ``body`` (Markdown whose headings start at ``##``)."""
    sections = read_sections(path)
    sections[name] = body.strip("\n")
    parts = [TITLE, ""]
    for key in [*ORDER, *sorted(set(sections) - set(ORDER))]:
        if key in sections:
            parts += [_marker(key), sections[key], _marker(key, end=True), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
