"""Whole-process benchmark (issue 15): ``unlearn-audit check`` against the loops a user writes with torchattacks
and ART, each timed as its own process, imports included, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/check.py            # writes the first section of docs/performance.md
    PYTHONPATH=. .venv/bin/python benchmarks/check.py --quick    # smoke run (tiny sizes; numbers not meaningful)

Settings (500 forget samples from Fashion-MNIST unless said otherwise, 2 references, Gaussian + targeted FGSM +
targeted PGD-10, 4 τ values 0…8/255, 5 draws):

* (a) a stranger's architecture, written here and not in our registry: a plain VGG-style net (two 3×3 convs with
  32 and 64 channels, ReLU then max-pool, no BatchNorm, two Linear layers), trained briefly on Fashion-MNIST,
  saved as a plain state dict (no metadata) and read with ``--arch vgg.py:factory``;
* (b) the bundled small CNN (``reference_models/fmnist-small``: gd against retrain-1 and retrain-2);
* (c) a torchvision ResNet-18 on 3×32×32 inputs (random weights, a few random inputs), also via a factory file.

Processes: ``check`` with the default policy (null band included) with an empty reference cache (cold) and again
with the cache it filled (warm); ``benchmarks/baseline_loops.py --library torchattacks`` and ``--library art``
(no null band: they craft on the audited model only). Also ``remediate --search`` on the bundled GD model.

FLOP floor: matmul/conv FLOPs of the work done the obvious way (per row: crafting passes on the crafting model and
one forward of each evaluating model; for ``check`` the null band's crafting on each reference included),
counted with ``FlopCounterMode``, over the machine's matmul peak (1024² ``torch.mm``, best of several
measurements). Fraction of floor = floor time / measured time; above 100 % means the implementation skips naive
work (our FGSM computes one gradient per (sample, target) and reuses it across τ and draws).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perfdoc import cpu_model, flops_per_row, matmul_peak, usable_cores, write_section  # noqa: E402

FMNIST = ROOT / "reference_models" / "fmnist-small"
VGG_SOURCE = '''"""A plain VGG-style network as a stranger writes it (benchmarks/check.py, setting a)."""
from torch import nn


def factory(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes),
    )
'''
RESNET_SOURCE = '''"""torchvision's ResNet-18 for 3x32x32 inputs (benchmarks/check.py, setting c)."""
import torchvision


def factory(num_classes=10):
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)
'''


# ------------------------------------------------------------------------------------------------ settings
def _factory(source: str, folder: Path, name: str) -> Any:
    path = folder / f"{name}.py"
    path.write_text(source)
    scope: dict[str, Any] = {}
    exec(compile(source, str(path), "exec"), scope)  # noqa: S102 - our own source, written just above
    return scope["factory"], f"{path}:factory"


def _save(net: torch.nn.Module, path: Path) -> str:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return str(path)


def vgg_setting(folder: Path, n_forget: int, n_train: int) -> dict[str, Any]:
    """Trains the audited model on train ∪ forget and two references on train alone (1 epoch, SGD)."""
    from unlearn_audit.io.datasets import open_dataset

    factory, spec = _factory(VGG_SOURCE, folder, "vgg")
    data = open_dataset("fashion-mnist:train")
    x = torch.from_numpy(np.asarray(data.images[: n_forget + n_train], dtype=np.float32) / 255.0)
    y = torch.from_numpy(np.asarray(data.labels[: n_forget + n_train], dtype=np.int64))
    forget = folder / "forget.npz"
    np.savez(forget, x=x[:n_forget].numpy(), y=y[:n_forget].numpy(), ids=np.array([f"fm{i}" for i in range(n_forget)]))
    paths = []
    for seed, lo in ((0, 0), (1, n_forget), (2, n_forget)):  # audited: saw the forget set; references: did not
        torch.manual_seed(seed)
        net = factory(num_classes=10)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        order = torch.randperm(len(x) - lo) + lo
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
        paths.append(_save(net.eval(), folder / f"vgg-{seed}.safetensors"))
    arch = ["--arch", spec, "--num-classes", "10", "--input-shape", "1,28,28"]
    return {"key": "a", "title": "(a) stranger's VGG-style net (--arch file.py:factory)", "paths": paths,
            "forget": str(forget), "arch": arch, "baseline_arch": spec, "net": factory(10), "shape": (1, 28, 28),
            "n": n_forget}  # fmt: skip


def bundled_setting(folder: Path, n_forget: int) -> dict[str, Any]:
    from unlearn_audit.io.models import load_model

    data = np.load(FMNIST / "forget.npz")
    forget = folder / "forget-bundled.npz"
    np.savez(forget, x=data["x"][:n_forget], y=data["y"][:n_forget], ids=data["ids"][:n_forget])
    paths = [str(FMNIST / f"{name}.safetensors") for name in ("gd", "retrain-1", "retrain-2")]
    return {"key": "b", "title": "(b) bundled small CNN (reference_models/fmnist-small)", "paths": paths,
            "forget": str(forget), "arch": [], "baseline_arch": "bundled", "net": load_model(paths[0]),
            "shape": (1, 28, 28), "n": n_forget}  # fmt: skip


def resnet_setting(folder: Path, n: int) -> dict[str, Any]:
    factory, spec = _factory(RESNET_SOURCE, folder, "resnet")
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        paths.append(_save(factory(num_classes=10).eval(), folder / f"resnet-{seed}.safetensors"))
    gen = torch.Generator().manual_seed(0)
    forget = folder / "forget-resnet.npz"
    x, y = torch.rand(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    np.savez(forget, x=x.numpy(), y=y.numpy(), ids=np.array([f"r{i}" for i in range(n)]))
    arch = ["--arch", spec, "--num-classes", "10", "--input-shape", "3,32,32"]
    return {"key": "c", "title": f"(c) torchvision ResNet-18, {n} random 3x32x32 inputs", "paths": paths,
            "forget": str(forget), "arch": arch, "baseline_arch": spec, "net": factory(10), "shape": (3, 32, 32),
            "n": n}  # fmt: skip


# ------------------------------------------------------------------------------------------------- timing
def timed(command: list[str], env: dict[str, str], log: Any, timeout: float | None = None) -> dict[str, Any]:
    """Wall-clock seconds of ``command`` as a process, and its CPU seconds (user + system, all threads): on a
    shared machine the wall clock includes waiting for the cores, the CPU time does not."""
    log("$ " + " ".join(command))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": time.perf_counter() - start, "cpu_seconds": None, "code": None, "timed_out": True}
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1, 3):  # check: 0 pass, 1 finding, 3 inconclusive
        raise RuntimeError(f"{command[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    log(f"  {seconds:.1f} s wall, {cpu:.1f} s CPU")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "code": done.returncode,
        "stdout": done.stdout[-4000:],
        "timed_out": False,
    }


def check_command(
    setting: dict[str, Any], taus: str, draws: int, cache: Path, out: Path, device: str = "cpu"
) -> list[str]:
    model, *refs = setting["paths"]
    command = [sys.executable, "-m", "unlearn_audit", "check", model, "--forget", setting["forget"], *setting["arch"]]
    for ref in refs:
        command += ["--reference", ref]
    command += ["--taus", taus, "--draws", str(draws), "--cache-dir", str(cache), "--json", str(out)]
    return command + ["--device", device]


def baseline_command(
    setting: dict[str, Any], library: str, taus: list[float], draws: int, device: str = "cpu"
) -> list[str]:
    model, *refs = setting["paths"]
    command = [sys.executable, str(ROOT / "benchmarks" / "baseline_loops.py"), "--library", library]
    command += ["--arch", setting["baseline_arch"], "--model", model, "--forget", setting["forget"]]
    for ref in refs:
        command += ["--reference", ref]
    return command + ["--taus", ",".join(f"{t:.6f}" for t in taus), "--draws", str(draws), "--device", device]


def floors(setting: dict[str, Any], taus: list[float], draws: int, references: int = 2) -> dict[str, float]:
    """Naive FLOPs of each process's probe work (module docstring)."""
    fwd, grad = flops_per_row(setting["net"], setting["shape"])
    n, clean = setting["n"], sum(1 for t in taus if t == 0)
    rows = n * (len(taus) - clean) * draws
    evals = rows + n * clean  # τ = 0 rows stand for every draw
    k = references
    ours_subject = (
        (1 * fwd * evals) + (grad * rows + (k + 1) * fwd * evals) + (10 * grad * rows + (k + 1) * fwd * evals)
    )
    reference_side = k * fwd * evals + k * ((grad * rows + k * fwd * evals) + (10 * grad * rows + k * fwd * evals))
    baseline = (k + 1) * fwd * (rows * 3 + n * clean) + 11 * grad * rows
    return {"ours_cold": ours_subject + reference_side, "ours_warm": ours_subject, "baseline": baseline}


def run_setting(setting: dict[str, Any], args: Any, env: dict[str, str], work: Path, log: Any) -> dict[str, Any]:
    taus = [float(t) for t in np.linspace(0.0, 8.0 / 255.0, args.taus)]
    tau_text = f"0:8/255:{args.taus}"
    cache = work / f"cache-{setting['key']}"
    out: dict[str, Any] = {"key": setting["key"], "title": setting["title"], "n": setting["n"]}
    for label in ("cold", "warm"):
        json_path = work / f"check-{setting['key']}-{label}.json"
        command = check_command(setting, tau_text, args.draws, cache, json_path, args.device)
        out[f"check_{label}"] = timed(command, env, log)
        doc = json.loads(json_path.read_text())
        out[f"check_{label}"].update(
            engine_seconds=doc["provenance"]["time"]["seconds"],
            verdict=doc["verdict"],
            cache_hit=doc["provenance"]["reference_cache"]["hit"],
            precision=doc["precision"]["used"]
            + (f", rows crafted in {doc['precision']['crafting']['used']}" if "crafting" in doc["precision"] else ""),
            R={name: p["pooled"]["value"] for name, p in doc["probes"].items()},
            R_clean=doc["probes"]["gaussian"]["taus"][0]["R"],  # τ = 0: the loops must read the same
        )
    for library in ("torchattacks", "art"):
        result = timed(baseline_command(setting, library, taus, args.draws, args.device), env, log)
        result.update(json.loads(result.pop("stdout").strip().splitlines()[-1]))
        out[library] = result
    out["floors"] = floors(setting, taus, args.draws)
    # What any such process pays before its work: Python with torch, and with the package's CLI imported.
    out["imports"] = {
        "torch": timed([sys.executable, "-c", "import torch"], env, log),
        "unlearn_audit": timed([sys.executable, "-c", "import unlearn_audit.cli"], env, log),
    }
    if args.profile and setting["key"] in ("a", "b"):  # the settings with targets: a profile for each row
        out["profiles"] = {}
        for label in ("cold", "warm"):
            profile_cache = work / f"cache-{setting['key']}-profile"  # empty for the cold run, filled by it
            profile_path = work / f"profile-{setting['key']}-{label}.out"
            command = check_command(setting, tau_text, args.draws, profile_cache, work / "profile.json", args.device)
            timed([sys.executable, "-m", "cProfile", "-o", str(profile_path), *command[1:]], env, log)
            out["profiles"][label] = profile_text(profile_path)
    return out


PROFILE_PARTS = (  # (file suffix, function, what it is): where a `check` process spends its time
    ("<frozen runpy>", "_get_module_details", "importing the package (torch, scipy.stats, …)"),
    ("adversarial.py", "input_gradient", "crafting: forward + input gradient (FGSM, PGD steps)"),
    ("engine.py", "_predict", "scoring: every model on every perturbed row"),
    ("preparation.py", "decide_precision", "the bf16 scoring check"),
    ("preparation.py", "decide_crafting", "the bf16 crafting check"),
    ("audit.py", "_analyse", "statistics (bootstraps, bands, verdict)"),
)


def profile_text(path: Path, top: int = 14) -> str:
    """Top functions by own time, then the cumulative seconds of the parts in ``PROFILE_PARTS``."""
    import io
    import pstats

    stream = io.StringIO()
    stats = pstats.Stats(str(path), stream=stream)
    stats.sort_stats("tottime").print_stats(top)
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    total = stats.total_tt  # type: ignore[attr-defined]
    parts = [f"whole process under the profiler: {total:.2f} s; cumulative seconds of its parts:"]
    for suffix, function, what in PROFILE_PARTS:
        seconds = sum(
            entry[3]
            for (file, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
            if name == function and file.endswith(suffix)
        )
        parts.append(f"  {seconds:6.2f} s  {what} ({function})")
    return "\n".join(lines[start:] + [""] + parts)


def remediation_run(args: Any, env: dict[str, str], work: Path, log: Any) -> dict[str, Any]:
    data = np.load(FMNIST / "forget.npz")
    n = args.remediate_samples
    forget = work / "forget-remediation.npz"
    np.savez(forget, x=data["x"][:n], y=data["y"][:n], ids=data["ids"][:n])
    command = [
        sys.executable, "-m", "unlearn_audit", "remediate", str(FMNIST / "gd.safetensors"),
        "--forget", str(forget), "--retain", str(FMNIST / "retain_subset.npz"),
        "--reference", str(FMNIST / "retrain-1.safetensors"), "--reference", str(FMNIST / "retrain-2.safetensors"),
        "--search", "-o", str(work / "gd-fixed.safetensors"), "--json", str(work / "remediation.json"),
        "--cache-dir", str(work / "cache-remediation"), "--device", args.device, *args.remediate_args.split(),
    ]  # fmt: skip
    result = timed(command, env, log, timeout=args.remediate_timeout)
    result.pop("stdout", None)
    result["args"] = args.remediate_args
    result["samples"] = n
    if not result["timed_out"] and (work / "remediation.json").exists():
        doc = json.loads((work / "remediation.json").read_text())
        result.update(
            success=doc["success"],
            verdict=doc["after"]["verdict"],
            trials=[{k: t.get(k) for k in ("verdict", "seconds", "probes_skipped")} for t in doc["trials"]],
        )
    return result


# --------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the benchmark runs (CI)")
    parser.add_argument("--settings", default="a,b,c", help="comma list of a, b, c")
    parser.add_argument("--forget", type=int, default=500, help="forget samples in (a) and (b)")
    parser.add_argument("--resnet-samples", type=int, default=4)
    parser.add_argument("--taus", type=int, default=4, help="τ values, 0 … 8/255")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: usable cores)")
    parser.add_argument("--remediate-args", default="", help="extra options of the timed remediate --search")
    parser.add_argument("--remediate-timeout", type=float, default=1800.0)
    parser.add_argument("--remediate-samples", type=int, default=500, help="forget samples of the timed remediate")
    parser.add_argument("--no-remediate", action="store_true")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for check, remediate and the baseline loops")
    parser.add_argument("--render-only", action="store_true", help="rewrite the section from its .json results")
    args = parser.parse_args(argv)
    raw_path = args.out.with_name("performance-check.json")
    if args.render_only:
        write_section(args.out, "check", render(json.loads(raw_path.read_text())))
        return 0
    if args.quick:
        args.forget, args.resnet_samples, args.draws, args.taus, args.remediate_samples = 16, 2, 1, 2, 40
        args.remediate_args = args.remediate_args or "--probes gaussian --taus 0,8/255 --draws 2 --param max_steps=2"
    threads = args.threads or usable_cores()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "UNLEARN_AUDIT_NO_PROGRESS": "1"}
    log = print
    started, load_before = datetime.now(timezone.utc), os.getloadavg()
    peaks = [matmul_peak(torch.float32, 0.3 if args.quick else 2.0)]
    results = []
    with tempfile.TemporaryDirectory(prefix="check-bench-") as tmp:
        work = Path(tmp)
        builders = {
            "a": lambda: vgg_setting(work, args.forget, 200 if args.quick else 6000),
            "b": lambda: bundled_setting(work, args.forget),
            "c": lambda: resnet_setting(work, args.resnet_samples),
        }
        remediation = None

        def save() -> dict[str, Any]:  # after every step: a long run that is stopped keeps what it measured
            raw = raw_results(args, results, remediation, peaks, threads, load_before, started)
            raw_path.parent.mkdir(parents=True, exist_ok=True)
            raw_path.write_text(json.dumps(raw, indent=1, default=str))
            write_section(args.out, "check", render(raw))
            return raw

        for key in [k.strip() for k in args.settings.split(",") if k.strip()]:
            results.append(run_setting(builders[key](), args, env, work, log))
            peaks.append(matmul_peak(torch.float32, 0.3 if args.quick else 2.0))
            save()
        if not args.no_remediate:
            remediation = remediation_run(args, env, work, log)
        save()
    log(f"wrote {args.out} (section 'check') and {raw_path}")
    return 0


def raw_results(
    args: Any,
    results: list[dict[str, Any]],
    remediation: dict[str, Any] | None,
    peaks: list[float],
    threads: int,
    load_before: tuple[float, float, float],
    started: datetime,
) -> dict[str, Any]:
    return {
        "results": results,
        "remediation": remediation,
        "peak": max(peaks),
        "peaks": peaks,
        "threads": threads,
        "cores": usable_cores(),
        "cpu": cpu_model(),
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" and torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "settings": {"forget": args.forget, "taus": args.taus, "draws": args.draws},
    }


# ------------------------------------------------------------------------------------------------- render
def _ratio(base: float, ours: float) -> str:
    return f"{base / ours:.2f}×"


def _ratios(proc: dict[str, Any], *bases: dict[str, Any]) -> str:
    """``base ÷ proc`` for each base, by the wall clock and by CPU time, as table cells."""
    return " | ".join(
        f"{_ratio(b['seconds'], proc['seconds'])} / {_ratio(b['cpu_seconds'], proc['cpu_seconds'])}" for b in bases
    )


def render(raw: dict[str, Any]) -> str:
    s = raw["settings"]
    lines = [
        "## The whole `check`, as a user times it",
        "",
        f"Produced by `benchmarks/check.py`{' --quick (tiny sizes: not meaningful)' if raw['quick'] else ''} "
        f"({raw['started']} to {raw['finished']}). **Every number in this section comes from that run.**",
        "",
        f"- Machine: {raw['cpu']}, {raw['cores']} usable core(s); torch {raw['torch']}; "
        f"`OMP_NUM_THREADS={raw['threads']}` for every process"
        + (f"; every process on `--device cuda` ({raw['gpu']})." if raw.get("device") == "cuda" else "."),
        f"- Matmul peak (fp32, 1024² `torch.mm`, best of {len(raw['peaks'])}): {raw['peak'] / 1e9:.1f} GFLOP/s.",
        f"- Load average (1/5/15 min) before: {' / '.join(f'{v:.2f}' for v in raw['load_before'])}, after: "
        f"{' / '.join(f'{v:.2f}' for v in raw['load_after'])}."
        + (
            " The machine was shared with other jobs: the seconds are upper bounds."
            if raw["load_before"][0] > 1.5
            else ""
        ),
        f"- Work: {s['forget']} forget samples ((a), (b)), 2 references, Gaussian + targeted FGSM + targeted PGD-10, "
        f"{s['taus']} τ values 0…8/255, {s['draws']} draws. `check` runs the default policy (null band included: "
        "FGSM and PGD are crafted on each reference too); the loops craft on the audited model only.",
        "- Every time is a whole process (`python -m unlearn_audit check …`, `python benchmarks/baseline_loops.py "
        "…`), Python start-up and imports included. *Cold*: an empty reference cache; *warm*: the cache the cold "
        "run filled (`--cache-dir`). *Engine s*: the part of `check` that computes counts (`provenance.time`).",
        "",
        "| setting | process | wall s | CPU s | engine s | torchattacks ÷ this (wall / CPU) | ART ÷ this (wall / CPU) | fraction of FLOP floor (process / engine) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    targets = []
    for r in raw["results"]:
        ta, art = r["torchattacks"], r["art"]

        for label in ("cold", "warm"):
            c = r[f"check_{label}"]
            floor = r["floors"][f"ours_{label}"] / raw["peak"]
            lines.append(
                f"| {r['title']} | `check` ({label} cache) | {c['seconds']:.1f} | {c['cpu_seconds']:.1f} | "
                f"{c['engine_seconds']:.1f} | {_ratios(c, ta, art)} | "
                f"{floor / c['seconds']:.0%} / {floor / max(c['engine_seconds'], 1e-9):.0%} |"
            )
            if r["key"] in ("a", "b"):
                targets.append((r["title"], label, ta["seconds"] / c["seconds"], art["seconds"] / c["seconds"],
                                ta["cpu_seconds"] / c["cpu_seconds"], art["cpu_seconds"] / c["cpu_seconds"],
                                floor / c["engine_seconds"]))  # fmt: skip
        floor = r["floors"]["baseline"] / raw["peak"]
        for library, name in (("torchattacks", "torchattacks loop"), ("art", "ART loop")):
            b = r[library]
            lines.append(f"| {r['title']} | {name} | {b['seconds']:.1f} | {b['cpu_seconds']:.1f} | – | {_ratios(b, ta, art)} | "
                         f"{floor / b['seconds']:.0%} / – |")  # fmt: skip
    lines += ["", "Verdicts and pooled R (a sanity check that every process did the same work):", ""]
    for r in raw["results"]:
        c = r["check_cold"]
        rs = ", ".join(f"{k} {v:.3f}" for k, v in c["R"].items())
        loops = "; ".join(
            f"{lib}: " + ", ".join(f"{p} {np.mean([v for v in vals if v == v]):.3f}" for p, vals in r[lib]["R"].items())
            for lib in ("torchattacks", "art")
        )
        lines.append(
            f"- {r['title']}: `check` {c['verdict']} (precision {c['precision']}; R pooled over τ: {rs}); warm "
            f"cache hit: {r['check_warm']['cache_hit']}, same verdict: {r['check_warm']['verdict'] == c['verdict']}. "
            f"Loops, mean R over τ: {loops}."
        )
    crafted = {r["title"]: r["check_cold"]["precision"] for r in raw["results"]}
    lines += ["", "### Targets", ""]
    for title, label, vs_ta, vs_art, cpu_ta, cpu_art, fraction in targets:

        def verdict(value: float, target: float) -> str:
            return "met" if value >= target else f"missed by a factor {target / value:.2f}"

        parts = [
            f"{vs_ta:.2f}× torchattacks by the wall clock, {cpu_ta:.2f}× by CPU time (target ≥ 5×: "
            f"{verdict(vs_ta, 5)} / {verdict(cpu_ta, 5)})",
            f"{vs_art:.2f}× ART, {cpu_art:.2f}× by CPU time (target ≥ 6×: {verdict(vs_art, 6)} / {verdict(cpu_art, 6)})",
            f"engine at {fraction:.0%} of the FLOP floor (target ≥ 50 %: {'met' if fraction >= 0.5 else 'missed'})",
        ]
        if "crafted in bf16" in crafted.get(title, ""):
            parts[-1] += " (the floor is priced at the fp32 matmul peak; rows crafted in bf16 run faster than that)"
        lines.append(f"- {title}, {label} cache: " + "; ".join(parts) + ".")
    rem = raw.get("remediation")
    if rem:
        lines += ["", "### `remediate --search` on the bundled GD model", ""]
        args = rem["args"] or "(the defaults)"
        if rem["timed_out"]:
            lines.append(
                f"- {rem.get('samples', 500)} forget samples, options {args}: no answer within {rem['seconds']:.0f} s "
                "(stopped by the benchmark)."
            )
        else:
            trials = ", ".join(
                f"{t['verdict']} {t['seconds']:.0f} s"
                + (f" (skipped {'+'.join(t['probes_skipped'])})" if t.get("probes_skipped") else "")
                for t in rem["trials"]
            )
            lines.append(
                f"- {rem.get('samples', 500)} forget samples, options {args}: {rem['seconds']:.0f} s in all (process, cold reference cache), final verdict "
                f"{rem['verdict']}, success {rem['success']}; trials: {trials}."
            )
    imports = [r for r in raw["results"] if r.get("imports") and r["key"] in ("a", "b")]  # the targets
    if imports:
        lines += ["", "### The fixed cost of a process", "",
                  "Before any work, a process starts Python and imports torch (the loops do too), and `check` also "
                  "imports the package (scipy.stats, typer, rich). `check`'s time outside the engine (wall − engine "
                  "s) adds reading the models and the forget set, the precision checks, the bootstraps and the "
                  "report. A 5× target leaves this much time for the whole `check`:", ""]  # fmt: skip
        for r in imports:
            budget = r["torchattacks"]["seconds"] / 5
            warm = r["check_warm"]
            lines.append(
                f'- {r["title"]}: 5× the torchattacks loop = {budget:.1f} s; `python -c "import torch"` '
                f'{r["imports"]["torch"]["seconds"]:.1f} s, `python -c "import unlearn_audit.cli"` '
                f"{r['imports']['unlearn_audit']['seconds']:.1f} s; warm `check` outside its engine "
                f"{warm['seconds'] - warm['engine_seconds']:.1f} s, its engine {warm['engine_seconds']:.1f} s."
            )
    for r in raw["results"]:
        for label, text in r.get("profiles", {}).items():
            lines += ["", f"### Profile of `check` on {r['title'].split(' ')[0]}, {label} cache (cProfile, top "
                      "functions by own time)", "", "```text", text, "```"]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
