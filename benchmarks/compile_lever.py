"""The torch.compile lever of issue 15 (docs/performance.md, levers table): one engine run of Gaussian, FGSM and
PGD on setting (a)'s VGG (benchmarks/check.py, trained here) with ``EngineConfig(compile=False)`` and then
``compile=True``, timed end to end, compilation included; the counts must be identical.

    PYTHONPATH=. .venv/bin/python benchmarks/compile_lever.py [--samples 250]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.check import vgg_setting  # noqa: E402
from unlearn_audit.io.models import load_model  # noqa: E402
from unlearn_audit.io.samples import load_samples  # noqa: E402
from unlearn_audit.probes import EngineConfig, make_engine, make_probe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=250)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="compile-lever-"))
    setting = vgg_setting(folder, 500, 6000)
    spec = setting["arch"][1]
    models = [load_model(p, arch=spec, num_classes=10, input_shape=(1, 28, 28)) for p in setting["paths"]]
    forget = load_samples(setting["forget"])
    samples = forget.subset(range(args.samples), source=forget.source)
    counts = {}
    for compiled in (False, True, True):  # the second compiled run finds inductor's on-disk cache warm
        config = EngineConfig(taus=(0, 2 / 255, 4 / 255, 8 / 255), draws=5, seed=0, device="cpu", compile=compiled)
        clock = time.perf_counter()
        engine = make_engine(models, samples, config)
        out = [engine.run(make_probe(p)) for p in ("gaussian", "fgsm", "pgd")]
        seconds = time.perf_counter() - clock
        totals = [int(c.correct.sum()) for c in out]
        counts.setdefault(compiled, totals)
        print(json.dumps({"compile": compiled, "seconds": round(seconds, 1), "precision": engine.precision,
                          "crafting": engine.crafting_precision, "correct_totals": totals}), flush=True)  # fmt: skip
    print(json.dumps({"counts_identical": counts[False] == counts[True]}))


if __name__ == "__main__":
    main()
