"""Option texts to values: τ grids, draws, hyper-parameters, name lists. Pure functions; a bad value is a
:class:`~unlearn_audit.errors.ConfigError` that names the option and shows a valid example."""

from __future__ import annotations

import json
from typing import Any, Literal

from ..errors import ConfigError


def parse_names(text: str) -> tuple[str, ...]:
    """``"gaussian, fgsm,"`` -> ``("gaussian", "fgsm")``."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def parse_taus(text: str | None, flag: str = "--taus") -> tuple[float, ...] | None:
    """``0,0.01,0.02`` or ``start:stop:n`` (inclusive linspace); numbers may be fractions like ``8/255``."""
    if text is None:
        return None

    def number(item: str) -> float:
        item = item.strip()
        try:
            if "/" in item:
                num, den = item.split("/", 1)
                return float(num) / float(den)
            return float(item)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"{flag} {text!r}: {item!r} is not a number (use 0.01 or 8/255)") from None

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ConfigError(f"{flag} {text!r}: write start:stop:n, e.g. 0:8/255:11")
        start, stop = number(parts[0]), number(parts[1])
        try:
            count = int(parts[2])
        except ValueError:
            raise ConfigError(f"{flag} {text!r}: n must be an integer") from None
        if count < 1:
            raise ConfigError(f"{flag} {text!r}: n must be at least 1")
        import numpy as np

        return tuple(float(t) for t in np.linspace(start, stop, count))
    return tuple(number(item) for item in text.split(",") if item.strip())


def parse_seed(text: str) -> int | None:
    """``--seed``: a non-negative integer, or ``secret`` (None: draw one from the OS at audit time)."""
    if text.strip().lower() == "secret":
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"--seed {text!r}: give a non-negative integer, or secret (with --seed-file PATH)") from None
    if value < 0:
        raise ConfigError(f"--seed {text!r}: give a non-negative integer, or secret (with --seed-file PATH)")
    return value


def parse_draws(values: list[str] | None) -> tuple[int | Literal["auto"] | None, tuple[tuple[str, int], ...]]:
    """``--draws 100 --draws pgd=10`` -> (100, (("pgd", 10),)); ``--draws auto`` -> ("auto", ())."""
    default: int | Literal["auto"] | None = None
    per_probe = []
    for value in values or []:
        name, sep, number = value.partition("=")
        given: int | Literal["auto"]
        try:
            if sep:
                per_probe.append((name.strip(), int(number)))
                continue
            given = "auto" if value.strip().lower() == "auto" else int(value)
        except ValueError:
            raise ConfigError(f"--draws {value!r}: give an integer, auto, or probe=integer (e.g. pgd=10)") from None
        if default is not None and default != given:
            raise ConfigError(
                f"--draws {default} and --draws {given}: give one default (an integer, or auto); "
                "probe=N overrides one probe"
            )
        default = given
    return default, tuple(per_probe)


def parse_hparams(values: list[str] | None) -> dict[str, Any]:
    """``--param lr=0.01 --param k=3`` -> {"lr": 0.01, "k": 3}; values parse as JSON where they can."""
    out: dict[str, Any] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {value!r}: write name=value, e.g. --param lr=0.01")
        try:
            out[key.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = raw
    return out
