"""Statistics for the reproduction and ablation tables: t-intervals over seeds, the paired-by-seed comparison of a
variant with its grid's reference, and McNemar's exact test on pooled test predictions (scipy)."""
from __future__ import annotations

import math

from scipy import stats

ALPHA = 0.05  # the level at which the tables call a difference resolved (after Holm's adjustment where it applies)


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t-interval over seeds (nan half-width for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)


def paired_delta(reference: dict[int, float], variant: dict[int, float]) -> dict:
    """variant - reference over the seeds both have: mean, t-interval half-width, the paired t-test's two-sided
    p-value (nan with fewer than 2 seeds or when every difference is the same), and the smallest true difference
    the paired t-test would detect with 80% power (`detectable_difference`)."""
    seeds = sorted(set(reference) & set(variant))
    diffs = [variant[s] - reference[s] for s in seeds]
    if not diffs:
        return {"seeds": [], "delta": math.nan, "half": math.nan, "p": math.nan, "detectable": math.nan}
    delta, half = mean_ci(diffs)
    p = math.nan
    if len(diffs) >= 2 and len(set(diffs)) > 1:
        p = float(stats.ttest_rel([variant[s] for s in seeds], [reference[s] for s in seeds]).pvalue)
    return {"seeds": seeds, "delta": delta, "half": half, "p": p, "detectable": detectable_difference(diffs)}


def detectable_difference(diffs: list[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """How large a true mean difference the two-sided paired t-test at level `alpha` would detect with probability
    `power`, given the seeds' spread of differences: (t_{1-alpha/2} + t_{power}) s / sqrt(n), n - 1 degrees of
    freedom (the usual approximation; Cohen 1988). What a design with these seeds could still miss. nan with
    fewer than 2 seeds."""
    n = len(diffs)
    if n < 2:
        return math.nan
    mean = sum(diffs) / n
    spread = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * spread / math.sqrt(n))


def mcnemar(labels: list, reference_predictions: list[list], variant_predictions: list[list]) -> dict:
    """McNemar's exact test on (test image, seed) pairs pooled over seeds: b = reference right and variant
    wrong, c = reference wrong and variant right; p is the two-sided binomial test of b against b + c."""
    b = c = 0
    for ref, var in zip(reference_predictions, variant_predictions):
        for y, r, v in zip(labels, ref, var):
            b += r == y and v != y
            c += r != y and v == y
    p = 1.0 if b + c == 0 else float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)
    return {"b": b, "c": c, "p": p}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (Holm 1979): the i-th smallest of m is multiplied by
    m - i + 1, made monotone and capped at 1; it controls the family-wise error rate under any dependence. NaNs
    stay NaN and do not count in m."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m, adjusted, running = len(order), [math.nan] * len(pvalues), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def rank_correlation(a: list[float], b: list[float]) -> tuple[float, float]:
    """Spearman's rank correlation of two rankings of the same items, with its two-sided p-value (nan for fewer
    than 3 items)."""
    if len(a) < 3:
        return math.nan, math.nan
    result = stats.spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)
