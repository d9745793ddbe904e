"""Make docs/report-screenshot.png: audit the bundled original model, write the HTML report, and photograph the
top of it with headless Chromium (Debian's ``chromium``).

    python examples/report_screenshot.py [--out docs/report-screenshot.png]

The audit uses a small configuration (Gaussian and FGSM probes, 3 τ values, 10 draws, two retrained
references) so that it runs in well under a minute on a laptop CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FMNIST = REPO / "reference_models" / "fmnist-small"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report-screenshot.png")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1250)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    from PIL import Image

    from unlearn_audit.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        os.chdir(REPO)  # relative paths in the report, as a user would type them
        fm = FMNIST.relative_to(REPO)
        code = cli(
            [
                "check",
                str(fm / "original.safetensors"),
                "--forget",
                str(fm / "forget.npz"),
                "--reference",
                str(fm / "retrain-2.safetensors"),
                "--reference",
                str(fm / "retrain-3.safetensors"),
                "--probes",
                "gaussian,fgsm",
                "--taus",
                "0,4/255,8/255",
                "--draws",
                "10",
                "--device",
                "cpu",
                "--report",
                str(report),
                "--format",
                "html",
            ]
        )
        if code not in (0, 1, 3):
            return code
        raw = Path(tmp) / "shot.png"
        command = [
            chromium,
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={args.width},{args.height}",
            f"--screenshot={raw}",
            (report / "report.html").as_uri(),
        ]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        image = Image.open(raw).convert("RGB").quantize(colors=128, method=Image.Quantize.FASTOCTREE)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
