"""Peak memory of an audit against the size of the forget set (issue: streaming).

    .venv/bin/python benchmarks/memory.py            # 1k / 10k / 60k Fashion-MNIST training images

Each size runs in a fresh process (so peak RSS is its own): the original reference model audited against one
retrain, Gaussian probe, 2 draws at τ in {0, 8/255}, 500 bootstrap resamples. The forget set is an index CSV
into Debian's Fashion-MNIST (loaded lazily: rows become float tensors one chunk at a time). Prints a
Markdown table for docs/performance.md.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, resource, sys, time
from unlearn_audit.audit import Audit, AuditConfig
root, forget = sys.argv[1], sys.argv[2]
start = time.perf_counter()
config = AuditConfig(probes=("gaussian",), taus=(0.0, 8 / 255), draws=2, bootstrap=500, device="cpu")
audit = Audit(references=[root + "/retrain-2.safetensors"], forget=forget, config=config)
result = audit.run(root + "/original.safetensors")
print(json.dumps({"seconds": time.perf_counter() - start, "lazy": audit.forget.is_lazy,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "R": result.probes["gaussian"].pooled.value}))
"""


def measure(n: int, tmp: Path) -> dict:
    csv = tmp / f"forget-{n}.csv"
    csv.write_text("# dataset=fashion-mnist:train\nindex\n" + "\n".join(str(i) for i in range(n)) + "\n")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "reference_models" / "fmnist-small"), str(csv)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return {"n": n, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1_000, 10_000, 60_000]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, Path(tmp)) for n in sizes]
    base = rows[0]["peak_rss_mb"]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"Measured {date.today().isoformat()} on {cpu} ({__import__('os').cpu_count()} cores), "
        f"python {platform.python_version()}, by benchmarks/memory.py\n"
    )
    print("| forget samples | lazy rows | peak RSS (MB) | vs smallest | seconds | R (sanity) |")
    print("|---:|:---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {'yes' if r['lazy'] else 'no'} | {r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - base:+.0f} | "
            f"{r['seconds']:.1f} | {r['R']:.3f} |"
        )
    _ = resource, time


if __name__ == "__main__":
    main()
