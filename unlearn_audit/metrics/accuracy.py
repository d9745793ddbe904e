"""Retain / Test / Unlearn accuracy with Wilson 95 % intervals (paper's Table 1; Unlearn Acc = 1 − forget acc)."""

from __future__ import annotations

import numpy as np

from ..stats import Estimate, wilson


def correct(logits: np.ndarray, labels: np.ndarray) -> int:
    return int((np.asarray(logits).argmax(axis=1) == np.asarray(labels)).sum())


def accuracy(logits: np.ndarray, labels: np.ndarray, level: float = 0.95) -> Estimate:
    """Top-1 accuracy with a Wilson score interval."""
    return wilson(correct(logits, labels), int(np.asarray(labels).shape[0]), level)


def unlearn_accuracy(forget_logits: np.ndarray, forget_labels: np.ndarray, level: float = 0.95) -> Estimate:
    """Unlearn Acc = 1 − accuracy on the forget set (the paper's convention: higher = more forgotten)."""
    n = int(np.asarray(forget_labels).shape[0])
    return wilson(n - correct(forget_logits, forget_labels), n, level)
