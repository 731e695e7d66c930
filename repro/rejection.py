"""What the RBF output was for besides its error rate (Sec. II-C): rejection, measured from a network's outputs.

The paper argues for Euclidean RBF units with fixed distributed codes partly because a recogniser must also
reject: an RBF unit responds only within a bounded region around its prototype, so atypical patterns and
non-characters are more likely to fall outside every unit than outside a sigmoid's half-space. Its comparison of
classifiers measures exactly this: the share of test patterns that must be rejected to reach 0.5% error on the
rest. Here, from any network's (N, 10) outputs:

- a confidence per pattern (`confidence`): `margin`, the gap between the best and second-best output (RBF: the
  second-smallest minus the smallest penalty; linear: the largest minus the second-largest logit), and
  `probability`, the best class's posterior (RBF: under MAP's competition, Eq. 9, e^-y_D / (e^-j + sum_i e^-y_i);
  linear: the largest softmax probability). Each head's default (`DEFAULT_CONFIDENCE`) is the one the paper's
  reasoning points at: the RBF's margin, the softmax's probability.
- the error-reject curve (`error_reject_curve`): reject the least confident patterns first; patterns of equal
  confidence are rejected together (a threshold cannot split them);
- its summaries: the share rejected to reach 0.5% error, and the error at 1% and at 5% rejected;
- telling digits from non-digits (`auroc`, `accepted_share`): the AUROC of the confidence, and the share of
  a non-digit set accepted at the threshold that keeps 99% of the test digits.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCES = ("margin", "probability")
DEFAULT_CONFIDENCE = {"rbf": "margin", "linear": "probability"}
TARGET_ERROR_PCT = 0.5  # the paper's comparison: rejection needed for 0.5% error on the rest
REJECT_POINTS_PCT = (1.0, 5.0)
KEEP_DIGITS_PCT = 99.0


def confidence(outputs, lower_is_better: bool, kind: str = "margin", j: float = 0.1) -> np.ndarray:
    """One confidence per pattern from (N, classes) outputs (penalties if lower_is_better, else logits); higher
    is more confident."""
    if kind not in CONFIDENCES:
        raise ValueError(f"unknown confidence {kind!r}; valid: {', '.join(CONFIDENCES)}")
    scores = -np.asarray(outputs, dtype=np.float64) if lower_is_better else np.asarray(outputs, dtype=np.float64)
    if kind == "margin":
        top2 = np.sort(scores, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]
    # log posterior of the best class; the RBF's competition has MAP's extra "junk" term e^-j (Eq. 9)
    columns = [scores] + ([np.full((len(scores), 1), -j)] if lower_is_better else [])
    log_norm = np.logaddexp.reduce(np.concatenate(columns, axis=1), axis=1)
    return np.exp(scores.max(axis=1) - log_norm)


def error_reject_curve(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reject %, error % on the accepted) at every threshold: rejecting nothing, then every pattern of the lowest
    remaining confidence at a time, down to rejecting all (error 0 by convention)."""
    conf, correct = np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=bool)
    n = len(conf)
    order = np.argsort(conf, kind="stable")
    sorted_conf, wrong = conf[order], ~correct[order]
    # ends of tie groups: a threshold rejects whole groups
    ends = np.flatnonzero(np.r_[sorted_conf[1:] != sorted_conf[:-1], True]) + 1
    rejected = np.r_[0, ends]
    errors_rejected = np.r_[0, np.cumsum(wrong)][rejected]
    accepted = n - rejected
    errors = wrong.sum() - errors_rejected
    with np.errstate(invalid="ignore", divide="ignore"):
        error_pct = np.where(accepted > 0, 100.0 * errors / np.maximum(accepted, 1), 0.0)
    return 100.0 * rejected / n, error_pct


def reject_for_error(curve, target_pct: float = TARGET_ERROR_PCT) -> float:
    """The smallest share rejected (%) that brings the error on the rest to target_pct or below."""
    reject, error = curve
    return float(reject[np.flatnonzero(error <= target_pct + 1e-12)[0]])


def error_at_reject(curve, reject_pct: float) -> float:
    """The error (%) on the rest once at least reject_pct of the patterns are rejected (whole tie groups)."""
    reject, error = curve
    return float(error[np.flatnonzero(reject >= reject_pct - 1e-12)[0]])


def auroc(positive, negative) -> float:
    """P(a random positive is more confident than a random negative), ties counting one half (Mann-Whitney)."""
    positive, negative = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if not len(positive) or not len(negative):
        return math.nan
    ranks = stats.rankdata(np.r_[positive, negative])
    n1, n2 = len(positive), len(negative)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n2))


def keep_threshold(digit_conf, keep_pct: float = KEEP_DIGITS_PCT) -> float:
    """The highest confidence threshold that still accepts (confidence >= threshold) keep_pct% of the digits."""
    ordered = np.sort(np.asarray(digit_conf, dtype=np.float64))
    return float(ordered[int(math.floor(len(ordered) * (100.0 - keep_pct) / 100.0 + 1e-9))])


def accepted_share(conf, threshold: float) -> float:
    """The share (%) of patterns accepted at a threshold (confidence >= threshold)."""
    return 100.0 * float(np.mean(np.asarray(conf, dtype=np.float64) >= threshold))


def nondigit_summary(digit_conf, others: dict) -> dict[str, dict[str, float]]:
    """Per non-digit set ({name: its confidences}): the AUROC of telling the digits from it, and the share of it
    accepted at the threshold that keeps KEEP_DIGITS_PCT of the digits."""
    threshold = keep_threshold(digit_conf)
    return {name: {"auroc": auroc(digit_conf, conf), "accepted_pct": accepted_share(conf, threshold)}
            for name, conf in others.items()}


def rejection_summary(outputs, labels, lower_is_better: bool, kind: str, j: float = 0.1) -> dict:
    """The error-reject numbers of one network on one labelled set."""
    outputs = np.asarray(outputs, dtype=np.float64)
    predicted = outputs.argmin(axis=1) if lower_is_better else outputs.argmax(axis=1)
    curve = error_reject_curve(confidence(outputs, lower_is_better, kind, j), predicted == np.asarray(labels))
    return {"confidence": kind, "error_pct": float(curve[1][0]),
            "reject_pct_for_0_5pct_error": reject_for_error(curve),
            **{f"error_pct_at_{p:g}pct_reject": error_at_reject(curve, p) for p in REJECT_POINTS_PCT}}
