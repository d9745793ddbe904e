"""The loop a user writes without unlearn-audit: torchattacks or ART, run as its own process by benchmarks/check.py.

    python benchmarks/baseline_loops.py --library torchattacks --arch vgg.py:factory \
        --model m.safetensors --reference r1.safetensors --reference r2.safetensors --forget forget.npz \
        --taus 0,0.0105,0.0209,0.0314 --draws 5 --num-classes 10

What a competent user writes, no more and no less: the models in eval mode, the forget set in batches, Gaussian
noise, targeted FGSM and targeted PGD-10 (ℓ∞, step 2/255, random start) crafted on the audited model at each τ
and draw with a fresh random wrong label per draw, the same x' fed to every reference, predictions under
``torch.no_grad``, and the per-sample counts u (audited model) and v (references) that R_τ = Σu / Σv̄ needs. τ = 0
is the clean input, evaluated once. No null band: that would mean crafting on every reference too, which is
what ``unlearn-audit check`` does besides.

Models load either from a factory file and a plain state dict (``--arch file.py:factory``: a stranger's model) or,
for the bundled models, through ``unlearn_audit.load_model`` (``--arch bundled``). Prints one JSON line with
the seconds spent after the imports and R per probe and τ (a sanity check against check's numbers).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time

import numpy as np
import torch

BATCH = 256


def load(arch: str, path: str, num_classes: int, device: str = "cpu") -> torch.nn.Module:
    if arch == "bundled":
        from unlearn_audit import load_model

        return load_model(path, device=device).eval()
    from safetensors.torch import load_file

    file, factory = arch.rsplit(":", 1)
    spec = importlib.util.spec_from_file_location("user_arch", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = getattr(module, factory)(num_classes=num_classes)
    net.load_state_dict(load_file(path))
    return net.to(device).eval()


def random_targets(y: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    offset = torch.randint(0, num_classes - 1, y.shape, generator=gen).to(y.device)
    return torch.where(offset >= y, offset + 1, offset)


def predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + BATCH]).argmax(1) for i in range(0, len(x), BATCH)])


def craft_torchattacks(kind: str, model, x, targets, tau: float) -> torch.Tensor:
    import torchattacks

    if kind == "gaussian":
        return torchattacks.GN(model, std=tau)(x, targets)
    attack = (
        torchattacks.FGSM(model, eps=tau)
        if kind == "fgsm"
        else torchattacks.PGD(model, eps=tau, alpha=2 / 255, steps=10, random_start=True)
    )
    attack.set_mode_targeted_by_label(quiet=True)
    return torch.cat([attack(x[i : i + BATCH], targets[i : i + BATCH]) for i in range(0, len(x), BATCH)])


class ArtCrafter:
    def __init__(self, model, input_shape, num_classes: int, device: str = "cpu") -> None:
        from art.estimators.classification import PyTorchClassifier

        self.num_classes = num_classes
        self.classifier = PyTorchClassifier(
            model=model,
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=input_shape,
            nb_classes=num_classes,
            clip_values=(0.0, 1.0),
            device_type="gpu" if device == "cuda" else "cpu",
        )

    def __call__(self, kind: str, model, x, targets, tau: float, gen: np.random.Generator) -> torch.Tensor:
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

        x_np = x.cpu().numpy()  # ART works on numpy arrays and moves batches to its device itself
        if kind == "gaussian":
            noisy = np.clip(x_np + tau * gen.standard_normal(x_np.shape), 0, 1).astype(np.float32)
            return torch.from_numpy(noisy).to(x.device)
        onehot = np.eye(self.num_classes, dtype=np.float32)[targets.cpu().numpy()]
        if kind == "fgsm":
            attack = FastGradientMethod(self.classifier, eps=tau, targeted=True, batch_size=BATCH)
        else:
            attack = ProjectedGradientDescent(
                self.classifier, eps=tau, eps_step=2 / 255, max_iter=10, targeted=True, num_random_init=1,
                batch_size=BATCH, verbose=False,
            )  # fmt: skip
        return torch.from_numpy(attack.generate(x_np, y=onehot).astype(np.float32)).to(x.device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", choices=["torchattacks", "art"], required=True)
    parser.add_argument("--arch", required=True, help="file.py:factory, or 'bundled' (unlearn_audit.load_model)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", action="append", required=True)
    parser.add_argument("--forget", required=True)
    parser.add_argument("--taus", required=True)
    parser.add_argument("--draws", type=int, required=True)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--probes", default="gaussian,fgsm,pgd")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the models and the forget set live")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    data = np.load(args.forget)
    x_np = data["x"]  # uint8 images hold 0…255: scale them to [0, 1], as unlearn-audit's reader does
    x = torch.from_numpy(x_np.astype(np.float32) / 255.0 if x_np.dtype == np.uint8 else x_np.astype(np.float32))
    x = x.to(args.device)
    y = torch.from_numpy(data["y"]).long().to(args.device)
    models = [load(args.arch, p, args.num_classes, args.device) for p in [args.model, *args.reference]]
    for model in models:
        for p in model.parameters():
            p.requires_grad_(False)
    taus = [float(t) for t in args.taus.split(",")]
    probes = args.probes.split(",")
    gen = torch.Generator().manual_seed(args.seed)
    np_gen = np.random.default_rng(args.seed)
    art = ArtCrafter(models[0], tuple(x.shape[1:]), args.num_classes, args.device) if args.library == "art" else None
    counts = {p: np.zeros((len(models), len(x), len(taus)), dtype=np.int64) for p in probes}
    for t, tau in enumerate(taus):
        if tau == 0:
            hits = [(predict(m, x) == y).cpu().numpy() * args.draws for m in models]
            for p in probes:
                counts[p][:, :, t] = hits
            continue
        for _ in range(args.draws):
            for p in probes:
                targets = random_targets(y, args.num_classes, gen)
                if art is not None:
                    x_adv = art(p, models[0], x, targets, tau, np_gen)
                else:
                    x_adv = craft_torchattacks(p, models[0], x, targets, tau)
                for k, m in enumerate(models):
                    counts[p][k, :, t] += (predict(m, x_adv) == y).cpu().numpy()
    seconds = time.perf_counter() - started
    ratios = {
        p: [float(c[0, :, t].sum() / max(c[1:, :, t].mean(axis=0).sum(), 1e-12)) for t in range(len(taus))]
        for p, c in counts.items()
    }
    print(json.dumps({"library": args.library, "seconds_after_imports": seconds, "R": ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
