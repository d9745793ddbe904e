"""Pure numpy/scipy statistics over count arrays. This package never imports torch (a test asserts it)."""

from .intervals import Estimate, clopper_pearson, wilson

__all__ = ["Estimate", "clopper_pearson", "wilson"]
