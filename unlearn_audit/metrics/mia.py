"""Membership inference on the forget set, three ways, each reported as the paper does (share of forget samples
classified *unseen*) and as AUC / TPR at 1 % FPR (forget samples against held-out test samples of the same
classes).

* ``svc``: the paper's attack. An RBF SVC (``C=3, gamma='auto'``) on the softmax probability of the true class,
  trained retain (label *seen*) against test (label *unseen*) on a balanced subset.
* ``art``: ART's black-box membership inference (:class:`art.attacks.inference.membership_inference.
  MembershipInferenceBlackBox`) on the same split, with the full probability vector and the label as features
  and a seeded random forest as the attack model.
* ``reference``: ours. Offline LiRA against the retrained references (:mod:`unlearn_audit.stats.membership`),
  per sample, with Benjamini–Hochberg flags. Needs no retain or test set; test samples only add the ROC numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..stats import Estimate, wilson
from ..stats.membership import (
    MembershipTest,
    logit_confidence,
    reference_calibrated_test,
    score_against,
    true_class_probability,
)
from ..stats.roc import auc, tpr_at_fpr

FPR = 0.01
SVC_C = 3.0
SVC_GAMMA = "auto"
ROC_RESAMPLES = 1000
#: At most this many rows per side train the attacks (an RBF SVC costs O(n²) memory and time).
MAX_TRAIN_PER_SIDE = 5000


@dataclass(frozen=True)
class MiaSplit:
    """Which retain / test rows train the attacks and which test rows are the ROC negatives.

    The test set is split in two halves, stratified by class (seeded): the first half trains the attack
    (as *unseen*), the second half, restricted to the forget set's classes, serves as the negatives of the
    ROC curve, so that no attack is evaluated on the rows it was trained on. The retain rows are subsampled to
    the size of the first half (balanced training, as the paper), and both sides to at most
    ``MAX_TRAIN_PER_SIDE`` rows."""

    seen: np.ndarray
    unseen: np.ndarray
    negatives: np.ndarray

    def to_dict(self) -> dict[str, int]:
        return {
            "train_seen": int(self.seen.size),
            "train_unseen": int(self.unseen.size),
            "roc_negatives": int(self.negatives.size),
        }


def make_split(retain_y: np.ndarray, test_y: np.ndarray, forget_y: np.ndarray, seed: int) -> MiaSplit:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x4D1A,)))
    train_unseen, held = [], []
    for cls in np.unique(test_y):
        rows = rng.permutation(np.flatnonzero(test_y == cls))
        half = rows.size // 2
        train_unseen.append(rows[:half])
        held.append(rows[half:])
    unseen = np.sort(np.concatenate(train_unseen)) if train_unseen else np.empty(0, np.int64)
    held_rows = np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)
    negatives = held_rows[np.isin(test_y[held_rows], np.unique(forget_y))]
    n = min(unseen.size, retain_y.size, MAX_TRAIN_PER_SIDE)
    seen = np.sort(rng.choice(retain_y.size, size=n, replace=False))
    unseen = np.sort(rng.choice(unseen, size=n, replace=False)) if n < unseen.size else unseen
    return MiaSplit(seen.astype(np.int64), unseen.astype(np.int64), negatives.astype(np.int64))


def _roc(pos: np.ndarray, neg: np.ndarray, seed: int, level: float) -> dict[str, Estimate | None]:
    if neg.size == 0 or pos.size == 0:
        return {"auc": None, "tpr_at_1fpr": None}
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x20C,)))
    return {
        "auc": auc(pos, neg, level),
        "tpr_at_1fpr": tpr_at_fpr(pos, neg, FPR, rng=rng, resamples=ROC_RESAMPLES, level=level),
    }


def svc_attack(
    retain: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    forget: tuple[np.ndarray, np.ndarray],
    split: MiaSplit,
    *,
    seed: int,
    level: float = 0.95,
) -> dict[str, Estimate | None]:
    """The paper's SVC. Each argument is ``(logits, labels)``. Returns ``unseen`` (share of forget samples
    classified unseen, Wilson), ``auc`` and ``tpr_at_1fpr`` (score: the SVC's decision value toward *seen*)."""
    from sklearn.svm import SVC

    def feature(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return true_class_probability(logits, labels).reshape(-1, 1)

    x_train = np.concatenate([feature(*retain)[split.seen], feature(*test)[split.unseen]])
    y_train = np.concatenate([np.ones(split.seen.size), np.zeros(split.unseen.size)])
    clf = SVC(C=SVC_C, kernel="rbf", gamma=SVC_GAMMA, random_state=seed)
    clf.fit(x_train, y_train)
    f_forget = feature(*forget)
    predicted_seen = clf.predict(f_forget)
    n = f_forget.shape[0]
    out: dict[str, Estimate | None] = {"unseen": wilson(int((predicted_seen == 0).sum()), n, level)}
    neg = feature(*test)[split.negatives]
    out |= _roc(clf.decision_function(f_forget), clf.decision_function(neg) if neg.size else np.empty(0), seed, level)
    return out


def art_attack(
    retain: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    forget: tuple[np.ndarray, np.ndarray],
    split: MiaSplit,
    *,
    num_classes: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, Estimate | None]:
    """ART's ``MembershipInferenceBlackBox`` (input: softmax vector + one-hot label; attack: random forest,
    ``random_state=seed``) trained on the same split as the SVC."""
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier
    from scipy.special import softmax

    def never_called(x: np.ndarray) -> np.ndarray:  # predictions are always passed in
        raise RuntimeError("the ART adapter passes predictions; the classifier is never queried")

    estimator = BlackBoxClassifier(never_called, input_shape=(1,), nb_classes=num_classes)
    attack = MembershipInferenceBlackBox(estimator, input_type="prediction", attack_model_type="rf")
    attack.attack_model.set_params(random_state=seed, n_estimators=100, n_jobs=1)  # type: ignore[union-attr]
    r_logits, r_y = retain
    t_logits, t_y = test
    f_logits, f_y = forget
    attack.fit(
        y=r_y[split.seen],
        test_y=t_y[split.unseen],
        pred=softmax(r_logits[split.seen].astype(np.float64), axis=1),
        test_pred=softmax(t_logits[split.unseen].astype(np.float64), axis=1),
    )

    def member_probability(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        probs = softmax(logits.astype(np.float64), axis=1)
        return np.asarray(attack.infer(None, labels, pred=probs, probabilities=True), dtype=float).ravel()

    p_forget = member_probability(f_logits, f_y)
    n = p_forget.size
    out: dict[str, Estimate | None] = {"unseen": wilson(int((np.round(p_forget) == 0).sum()), n, level)}
    if split.negatives.size:
        p_neg = member_probability(t_logits[split.negatives], t_y[split.negatives])
    else:
        p_neg = np.empty(0)
    out |= _roc(p_forget, p_neg, seed, level)
    return out


@dataclass(frozen=True)
class ReferenceMia:
    """Outcome of the reference-calibrated test for one model."""

    test: MembershipTest
    flagged: np.ndarray
    share_flagged: Estimate
    roc: dict[str, Estimate | None]
    fdr: float

    def to_dict(self, *, p_values: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "flagged": int(self.flagged.sum()),
            "share_flagged": self.share_flagged.to_dict(),
            "fdr": self.fdr,
            "raw_p_below_0_05": int((self.test.p_value < 0.05).sum()),
            "references_used": self.test.references,
            "prior_df": None if not np.isfinite(self.test.prior_df) else round(float(self.test.prior_df), 3),
            "auc": _as_dict(self.roc.get("auc")),
            "tpr_at_1fpr": _as_dict(self.roc.get("tpr_at_1fpr")),
        }
        if p_values:
            out["p_values"] = [float(f"{p:.6g}") for p in self.test.p_value]
        return out


def _as_dict(e: Estimate | None) -> dict[str, Any] | None:
    return e.to_dict() if e is not None else None


def reference_attack(
    subject_forget: np.ndarray,
    references_forget: list[np.ndarray],
    forget_y: np.ndarray,
    *,
    subject_negatives: np.ndarray | None = None,
    references_negatives: list[np.ndarray] | None = None,
    negatives_y: np.ndarray | None = None,
    fdr: float = 0.05,
    seed: int = 0,
    level: float = 0.95,
) -> ReferenceMia:
    """Offline LiRA of the subject's logits against K ≥ 2 references' logits on the forget set; with
    negatives (held-out test rows of the forget classes), also the ROC numbers of its score."""
    phi_m = logit_confidence(subject_forget, forget_y)
    phi_refs = np.stack([logit_confidence(r, forget_y) for r in references_forget])
    test = reference_calibrated_test(phi_m, phi_refs)
    flagged = test.flagged(fdr)
    roc: dict[str, Estimate | None] = {"auc": None, "tpr_at_1fpr": None}
    if subject_negatives is not None and references_negatives is not None and negatives_y is not None:
        if negatives_y.size:
            neg_scores = score_against(
                logit_confidence(subject_negatives, negatives_y),
                np.stack([logit_confidence(r, negatives_y) for r in references_negatives]),
                test,
            )
            roc = _roc(test.score, neg_scores, seed, level)
    return ReferenceMia(test, flagged, wilson(int(flagged.sum()), flagged.size, level), roc, fdr)


def agreement(ids: tuple[str, ...], reference_flags: np.ndarray, r_tau_ids: set[str]) -> dict[str, Any]:
    """Cross-tabulation of the reference-calibrated flags with the r_τ (probe) flags, with Cohen's κ."""
    ours = np.asarray(reference_flags, dtype=bool)
    theirs = np.array([i in r_tau_ids for i in ids], dtype=bool)
    both = int((ours & theirs).sum())
    only_r = int((theirs & ~ours).sum())
    only_ref = int((ours & ~theirs).sum())
    neither = int((~ours & ~theirs).sum())
    n = len(ids)
    observed = (both + neither) / n if n else float("nan")
    expected = ((ours.mean() * theirs.mean()) + ((1 - ours.mean()) * (1 - theirs.mean()))) if n else float("nan")
    kappa = (observed - expected) / (1 - expected) if n and expected < 1 else None
    return {
        "both": both,
        "only_r_tau": only_r,
        "only_reference_mia": only_ref,
        "neither": neither,
        "cohen_kappa": None if kappa is None else round(float(kappa), 4),
        "ids_only_r_tau": [ids[i] for i in np.flatnonzero(theirs & ~ours)[:20]],
        "ids_only_reference_mia": [ids[i] for i in np.flatnonzero(ours & ~theirs)[:20]],
        "ids_both": [ids[i] for i in np.flatnonzero(ours & theirs)[:20]],
    }
