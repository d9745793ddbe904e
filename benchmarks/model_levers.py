"""Two levers of issue 15 measured on their own: several models in one call (not kept), and frozen
(oneDNN-fused) inference graphs for scoring (kept: ``unlearn_audit/probes/frozen.py``).

    PYTHONPATH=. .venv/bin/python benchmarks/model_levers.py            # ~6 minutes on 2 cores
    PYTHONPATH=. .venv/bin/python benchmarks/model_levers.py --quick    # smoke run

Models are prepared as the engine prepares them (``prepare_models``: BatchNorm folded, max-pool before ReLU,
channels-last) and the process keeps freed memory as the CLI does (``tune_allocator``). Three models of one
architecture: setting (a) of ``benchmarks/check.py`` (the stranger's VGG-style net, written here, random
weights), setting (b) (the bundled small CNN: gd, retrain-1, retrain-2) and setting (c) (torchvision's
ResNet-18 on 3×32×32, random weights; scoring levers only).

1. *Stacked crafting*, the reference side of a cold ``check``: each model crafts targeted PGD-10 (ℓ∞, step
   2/255, random start) on its own copy of a batch of rows, then every model scores every model's x'.
   Sequential (the engine): ``input_gradient`` per model and step. Stacked: ``vmap(grad(loss))`` over
   ``stack_module_state`` (vmap's batching rule runs a convolution with per-model weights as a grouped one).
2. *Stacked scoring*: the three models score one batch of x' (what every probe does for every row):
   one forward per model against one ``vmap``-ed forward (shared input: the first convolution becomes one
   convolution with three models' filters, the later ones grouped).
3. *Frozen scoring*: the graph ``unlearn_audit.probes.frozen.frozen_scorer`` builds
   (``torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model)))``: oneDNN conv + ReLU fusion,
   pooling without indices, prepacked weights; checked against the module) against the eager prepared model,
   forward only; the time to build the three graphs is reported beside it.

4. *Frozen scoring in a whole audit*: ``unlearn-audit check --probes gaussian`` (all scoring: the paper's default
   probe at ``--audit-draws`` draws and the default 11 τ) as a process, ``--eager-scoring`` against the default
   ``--frozen-scoring``, no cache, on settings (a) (trained as ``benchmarks/check.py`` trains it) and (b); wall
   and engine seconds, and whether the per-τ R are identical.

Seconds in 1–3 are per batch, best of ``--repeats``. Each row says whether the predictions (what the counts are
made of) are identical. Writes ``benchmarks/results/model_levers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perfdoc import cpu_model, usable_cores  # noqa: E402
from unlearn_audit.device import tune_allocator  # noqa: E402
from unlearn_audit.io.auditable import AuditableModel  # noqa: E402
from unlearn_audit.probes.adversarial import input_gradient  # noqa: E402
from unlearn_audit.probes.frozen import frozen_scorer  # noqa: E402
from unlearn_audit.probes.preparation import prepare_models  # noqa: E402

STEP = 2.0 / 255.0
SHAPES = {"a": (1, 28, 28), "b": (1, 28, 28), "c": (3, 32, 32)}


def vgg() -> nn.Module:
    """Setting (a)'s network, from the source ``benchmarks/check.py`` writes for ``--arch`` (one definition)."""
    from benchmarks.check import VGG_SOURCE

    namespace: dict[str, Any] = {}
    exec(VGG_SOURCE, namespace)  # noqa: S102 - our own benchmark source, as check.py imports it from a file
    return namespace["factory"](num_classes=10)


def models_for(setting: str) -> list[nn.Module]:
    """Three models of the setting's architecture, prepared as the engine prepares them."""
    if setting == "a":
        torch.manual_seed(0)
        loaded = [AuditableModel(vgg()) for _ in range(3)]
    elif setting == "c":
        import torchvision

        torch.manual_seed(0)
        loaded = [AuditableModel(torchvision.models.resnet18(num_classes=10)) for _ in range(3)]
    else:
        from unlearn_audit.io.models import load_model

        folder = ROOT / "reference_models" / "fmnist-small"
        loaded = [load_model(folder / f"{name}.safetensors") for name in ("gd", "retrain-1", "retrain-2")]
    return [p.module for p in prepare_models(loaded, torch.device("cpu"), True, False, True)]


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def project(x: torch.Tensor, x0: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    return torch.min(torch.max(x, x0 - tau), x0 + tau).clamp(0, 1)


def craft_sequential(models: list[nn.Module], x0, start, targets, tau):
    crafted = []
    for model in models:
        x = start
        for _ in range(10):
            x = project(x - STEP * input_gradient(model, x, targets).sign(), x0, tau)
        crafted.append(x)
    with torch.inference_mode():
        return torch.stack([torch.stack([m(x).argmax(1) for m in models]) for x in crafted])


def stacked_logits(models: list[nn.Module]) -> tuple[Callable, dict, dict]:
    params, buffers = stack_module_state(models)
    for p in params.values():
        p.requires_grad_(False)
    base = models[0]
    return (lambda p, b, x: functional_call(base, (p, b), (x,))), params, buffers


def craft_stacked(models: list[nn.Module], x0, start, targets, tau):
    logits, params, buffers = stacked_logits(models)

    def loss(x: torch.Tensor, p: dict, b: dict) -> torch.Tensor:
        return F.cross_entropy(logits(p, b, x), targets, reduction="sum")

    step_grad = vmap(grad(loss))
    x = start.expand(len(models), *start.shape).clone()
    for _ in range(10):
        x = project(x - STEP * step_grad(x, params, buffers).sign(), x0, tau)
    score = vmap(logits, in_dims=(0, 0, None))
    with torch.no_grad():
        return torch.stack([score(params, buffers, channels_last(x[k])).argmax(-1) for k in range(len(models))])


def score_each(models: list, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.stack([m(x).argmax(1) for m in models])


def score_stacked(stacked_score: Callable, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return stacked_score(params, buffers, x).argmax(-1)


def best_of(fn: Callable, repeats: int, *args: Any) -> tuple[float, Any]:
    out = fn(*args)  # warm-up: oneDNN primitives and TorchScript's profiling runs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), out


def compare(name: str, setting: str, rows: int, repeats: int, ours: Callable, lever: Callable, *args: Any) -> dict:
    t_ours, p_ours = best_of(ours, repeats, *args)
    t_lever, p_lever = best_of(lever, repeats, *args)
    row = {
        "lever": name, "setting": setting, "rows": rows, "engine_s": t_ours, "lever_s": t_lever,
        "lever_speedup": t_ours / t_lever, "predictions_differing": int((p_ours != p_lever).sum()),
        "predictions": int(p_ours.numel()),
    }  # fmt: skip
    print(json.dumps(row))
    return row


def whole_audits(folder: Path, n_forget: int, n_train: int, draws: int) -> list[dict[str, Any]]:
    """Lever 4: the same Gaussian audit with eager and with frozen scoring, as processes."""
    from benchmarks.check import bundled_setting, check_command, timed, vgg_setting

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(usable_cores()),
           "UNLEARN_AUDIT_NO_PROGRESS": "1"}  # fmt: skip
    rows = []
    for setting in (vgg_setting(folder, n_forget, n_train), bundled_setting(folder, n_forget)):
        runs = {}
        for mode in ("--eager-scoring", "--frozen-scoring"):
            out = folder / f"audit-{setting['key']}{mode}.json"
            command = check_command(setting, "0:8/255:11", draws, folder / f"cache{mode}", out, "cpu")
            command += ["--probes", "gaussian", "--panel", "none", mode]  # a fresh cache folder per run: cold
            run = timed(command, env, print)
            doc = json.loads(out.read_text())
            runs[mode] = {"wall_s": run["seconds"], "cpu_s": run["cpu_seconds"],
                          "engine_s": doc["provenance"]["time"]["seconds"], "precision": doc["precision"]["used"],
                          "R": [t["R"] for t in doc["probes"]["gaussian"]["taus"]]}  # fmt: skip
        eager, frozen = runs["--eager-scoring"], runs["--frozen-scoring"]
        row = {"lever": "frozen scoring, whole audit", "setting": setting["key"], "forget": setting["n"],
               "draws": draws, "eager": eager, "frozen": frozen, "same_R": eager["R"] == frozen["R"],
               "wall_speedup": eager["wall_s"] / frozen["wall_s"],
               "engine_speedup": eager["engine_s"] / frozen["engine_s"]}  # fmt: skip
        print(json.dumps({k: v for k, v in row.items() if k not in ("eager", "frozen")}))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=512, help="rows per crafting batch")
    parser.add_argument("--score-rows", default="512,1024", help="rows per scoring batch (the engine's hold 256–1,024)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--audit-draws", type=int, default=50, help="draws of the whole Gaussian audits (lever 4)")
    parser.add_argument("--audit-forget", type=int, default=500, help="forget samples of the whole audits")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.score_rows, args.repeats, args.audit_draws, args.audit_forget = 16, "16", 1, 1, 16
    torch.set_num_threads(usable_cores())
    tuned = tune_allocator()
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.* are deprecated in favour of compile
    results = []
    for setting in ("a", "b", "c"):
        models = models_for(setting)
        shape = SHAPES[setting]
        gen = torch.Generator().manual_seed(0)
        x0 = channels_last(torch.rand(args.rows, *shape, generator=gen))
        targets = torch.randint(0, 10, (args.rows,), generator=gen)
        tau = (torch.randint(1, 4, (args.rows,), generator=gen).float() * (8 / 3 / 255)).view(-1, 1, 1, 1)
        start = project(x0 + tau * (2 * torch.rand(x0.shape, generator=gen) - 1), x0, tau)
        crafting = (x0, start, targets, tau)
        if setting != "c":  # ResNet-18: PGD-10 on 512 rows, stacked, would take minutes per repeat
            results.append(
                compare("stacked crafting", setting, args.rows, args.repeats, craft_sequential, craft_stacked, models,
                        *crafting)
            )  # fmt: skip
        logits, params, buffers = stacked_logits(models)
        stacked_score = vmap(logits, in_dims=(0, 0, None))
        started = time.perf_counter()
        frozen = [frozen_scorer(m, x0[:8], f"{setting}{i}") for i, m in enumerate(models)]  # what the engine builds
        build_s = time.perf_counter() - started
        assert all(f is not None for f in frozen), f"setting {setting}: no frozen graph"

        for rows in (int(r) for r in args.score_rows.split(",")):
            x = channels_last(torch.rand(rows, *shape, generator=gen))
            each = partial(score_each, models)
            results.append(
                compare("stacked scoring", setting, rows, args.repeats, each, partial(score_stacked, stacked_score,
                        params, buffers), x)
            )  # fmt: skip
            results.append(compare("frozen scoring", setting, rows, args.repeats, each, partial(score_each, frozen), x))
            results[-1]["build_s"] = build_s
    with tempfile.TemporaryDirectory(prefix="model-levers-") as tmp:
        results += whole_audits(Path(tmp), args.audit_forget, 200 if args.quick else 6000, args.audit_draws)
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()}, {usable_cores()} core(s), torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), allocator tuned: {tuned}",
        "quick": args.quick,
        "load_average": os.getloadavg(),
        "results": results,
    }
    if not args.quick:
        path = ROOT / "benchmarks" / "results" / "model_levers.json"
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
