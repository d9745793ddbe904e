"""The standard unlearning panel beside r_τ (SPEC §5–6): accuracies, membership inference (paper SVC, ART,
reference-calibrated), Avg Gap, re-learn time and the Reminiscence probe. :mod:`.panel` runs them all."""

from .panel import PANEL_CHOICES, PanelInputs, compute_panels

__all__ = ["PANEL_CHOICES", "PanelInputs", "compute_panels"]
