"""Our probes against independent implementations, on a real trained model (SPEC §2, issue #3).

* FGSM and PGD robust accuracy per τ (untargeted, same settings) within 1 percentage point of torchattacks and
  of ART;
* the Gaussian probe is reproducible bit for bit (also across batch and chunk sizes), and its mean hit rate
  matches a plain-torch loop within Monte-Carlo error;
* τ = 0 is clean accuracy for every probe;
* uniform-ball samples lie inside the ball (and are uniform in it).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import stats

from tests.conftest import FMNIST
from unlearn_audit import load_samples
from unlearn_audit.io.models import load_model
from unlearn_audit.probes import EngineConfig, ProbeCounts, make_engine, make_probe
from unlearn_audit.probes.adversarial import PGDProbe
from unlearn_audit.probes.base import ChunkContext
from unlearn_audit.probes.keys import sample_keys, unit_seeds
from unlearn_audit.probes.random import UniformBallProbe

torchattacks = pytest.importorskip("torchattacks")

N = 300
TAUS = (0.0, 2 / 255, 8 / 255)
CFG = EngineConfig(taus=TAUS, draws=1, seed=11, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def model():
    return load_model(FMNIST / "original.safetensors").eval()


@pytest.fixture(scope="module")
def samples():
    forget = load_samples(FMNIST / "forget.npz")
    return forget.subset(range(N), source=forget.source)


@pytest.fixture(scope="module")
def engine(model, samples):
    return make_engine([model], samples, CFG)


def robust_accuracy(counts: ProbeCounts) -> np.ndarray:
    """Per-τ accuracy of the audited model on its own adversarial rows."""
    return counts.correct[0, 0].sum(0) / (counts.correct.shape[2] * counts.draws)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def art_classifier(model):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def baseline_fgsm(model, x, y, tau: float, library: str) -> float:
    if library == "torchattacks":
        adv = torchattacks.FGSM(model, eps=tau)(x, y)
    else:
        from art.attacks.evasion import FastGradientMethod

        attack = FastGradientMethod(art_classifier(model), norm=np.inf, eps=tau, batch_size=512)
        adv = torch.from_numpy(attack.generate(x.numpy(), y=y.numpy()))
    return accuracy(model, adv, y)


def baseline_pgd(model, x, y, tau: float, library: str, random_start: bool, seed: int) -> float:
    torch.manual_seed(seed)
    np.random.seed(seed)
    alpha = 2 / 255
    if library == "torchattacks":
        adv = torchattacks.PGD(model, eps=tau, alpha=alpha, steps=10, random_start=random_start)(x, y)
    else:
        from art.attacks.evasion import ProjectedGradientDescent

        attack = ProjectedGradientDescent(
            art_classifier(model),
            norm=np.inf,
            eps=tau,
            eps_step=alpha,
            max_iter=10,
            num_random_init=1 if random_start else 0,
            batch_size=512,
            verbose=False,
        )
        adv = torch.from_numpy(attack.generate(x.numpy(), y=y.numpy()))
    return accuracy(model, adv, y)


def test_torchattacks_imports_with_the_pinned_torch():
    assert torchattacks.__version__ >= "3.5"
    assert hasattr(torchattacks, "PGD") and torch.__version__


@pytest.mark.parametrize("library", ["torchattacks", "art"])
def test_fgsm_matches_the_libraries(engine, model, samples, library):
    ours = robust_accuracy(engine.run(make_probe("fgsm-untargeted")))
    for t, tau in enumerate(TAUS[1:], start=1):
        theirs = baseline_fgsm(model, samples.x, samples.y, tau, library)
        assert abs(ours[t] - theirs) <= 0.01, (library, tau, ours[t], theirs)
    assert ours[-1] < ours[0] - 0.2  # the attack does something on this model


@pytest.mark.slow
@pytest.mark.parametrize("library", ["torchattacks", "art"])
@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_matches_the_libraries(engine, model, samples, library, random_start):
    """PGD-10, ℓ∞, step 2/255, untargeted. With a random start the starts differ from ours, so the comparison
    averages two of our draws and two library runs per τ; without one it is the same deterministic attack."""
    probe = PGDProbe(targeted=False, random_start=random_start)
    draws = 2 if random_start else 1
    ours = robust_accuracy(engine.run(probe, draws=draws))
    for t, tau in enumerate(TAUS[1:], start=1):
        runs = [baseline_pgd(model, samples.x, samples.y, tau, library, random_start, seed) for seed in range(draws)]
        assert abs(ours[t] - float(np.mean(runs))) <= 0.01, (library, random_start, tau, ours[t], runs)
    assert ours[-1] < ours[0] - 0.3


def test_gaussian_is_bit_reproducible(model, samples):
    samples = samples.subset(range(100), source=samples.source)
    cfg = dataclasses.replace(CFG, taus=(0.0, 0.1, 0.3), draws=10)
    first = make_engine([model], samples, cfg).run(make_probe("gaussian"))
    again = make_engine([model], samples, cfg).run(make_probe("gaussian"))
    rebatched = make_engine([model], samples, dataclasses.replace(cfg, batch_size=77, chunk_size=50)).run(
        make_probe("gaussian")
    )
    np.testing.assert_array_equal(first.correct, again.correct)
    np.testing.assert_array_equal(first.correct, rebatched.correct)
    other_seed = make_engine([model], samples, dataclasses.replace(cfg, seed=12)).run(make_probe("gaussian"))
    assert not np.array_equal(first.correct, other_seed.correct)


def test_gaussian_matches_a_plain_torch_loop_within_monte_carlo_error(engine, model, samples):
    taus, draws = (0.1, 0.2, 0.3), 20
    cfg = dataclasses.replace(CFG, taus=taus, draws=draws)
    ours = make_engine([model], samples, cfg).run(make_probe("gaussian")).correct[0, 0] / draws  # [N, T]
    gen = torch.Generator().manual_seed(2024)
    for t, tau in enumerate(taus):
        hits = torch.zeros(N)
        with torch.no_grad():
            for _ in range(draws):
                noisy = (samples.x + tau * torch.randn(samples.x.shape, generator=gen)).clamp(0, 1)
                hits += (model(noisy).argmax(1) == samples.y).float()
        plain = (hits / draws).numpy()
        pooled = (ours[:, t] + plain) / 2
        se = math.sqrt(float(np.sum(2 * pooled * (1 - pooled) / draws)) / N**2)
        diff = float(ours[:, t].mean() - plain.mean())
        assert abs(diff) <= 4 * se + 1e-9, (tau, diff, se)
        assert 0.02 < plain.mean() < 0.98 or tau == taus[0]  # informative, not saturated


@pytest.mark.parametrize("probe", ["gaussian", "uniform-linf", "uniform-l2", "fgsm", "pgd", "fgsm-untargeted"])
def test_tau_zero_is_clean_accuracy(model, samples, probe):
    engine = make_engine([model], samples, dataclasses.replace(CFG, taus=(0.0, 0.2), draws=2))
    counts = engine.run(make_probe(probe))
    with torch.no_grad():
        clean = (model(samples.x).argmax(1) == samples.y).numpy()
    np.testing.assert_array_equal(counts.correct[0, 0, :, 0], clean * 2)  # every draw, sample by sample
    assert robust_accuracy(counts)[1] <= robust_accuracy(counts)[0]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_uniform_ball_samples_lie_inside_the_ball(samples, norm):
    probe = UniformBallProbe(norm)
    x = samples.x[:20]
    taus = torch.tensor([0.0, 0.05, 0.5, 3.0])
    ctx = ChunkContext(
        x=x,
        y=samples.y[:20],
        taus=taus,
        unit_seeds=unit_seeds(3, probe.name, sample_keys(samples.ids[:20]), range(4)),
        draws=50,
        num_classes=10,
        bounds=(0.0, 1.0),
        batch_size=333,
        device=torch.device("cpu"),
    )
    rows = 0
    for batch in probe.rows(ctx):
        delta = (batch.x - x[batch.sample]).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert bool((size <= taus[batch.tau] * (1 + 1e-5) + 1e-7).all())
        assert float(batch.x.min()) >= 0.0 and float(batch.x.max()) <= 1.0
        rows += int(batch.weight.sum())
    assert rows == 20 * 4 * 50
    # Unclipped unit draws are uniform in the ball: ℓ∞ coordinates uniform on [-1, 1]; ℓ2 radius**d uniform.
    z = probe.unit_noise(400, (1, 28, 28), torch.Generator().manual_seed(0))
    if norm == "linf":
        assert float(z.abs().max()) <= 1.0
        assert stats.kstest(z.flatten()[:20000].numpy(), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    else:
        radius = z.flatten(1).norm(dim=1)
        assert float(radius.max()) <= 1.0 + 1e-6
        assert stats.kstest((radius.double() ** 784).numpy(), "uniform").pvalue > 1e-3
        direction = z.flatten(1) / radius[:, None]
        assert float(direction.mean(0).abs().max()) < 0.2  # no preferred direction
