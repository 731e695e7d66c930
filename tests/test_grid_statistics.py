"""The statistics the grid tables rest on (repro/study/stats.py), against hand computation: the paired t-interval
over seeds, McNemar's test over pooled seeds, Holm's correction and Spearman's rank correlation."""
import math

import pytest
from scipy import stats as scipy_stats

from repro.study.stats import detectable_difference, mcnemar, paired_delta


def test_paired_delta_matches_hand_computation():
    out = paired_delta({0: 1.0, 1: 1.2, 2: 1.1, 3: 9.9}, {0: 1.5, 1: 1.6, 2: 1.8})
    # diffs 0.5, 0.4, 0.7: mean 0.5333, sd 0.15275, t(0.975, 2) = 4.302653; t statistic = mean / (sd / sqrt 3)
    sd = math.sqrt(((0.5 - 0.53333) ** 2 + (0.4 - 0.53333) ** 2 + (0.7 - 0.53333) ** 2) / 2)
    assert out["seeds"] == [0, 1, 2]
    assert out["delta"] == pytest.approx(1.6 / 3) and out["half"] == pytest.approx(4.302653 * sd / math.sqrt(3),
                                                                                    rel=1e-4)
    t = (1.6 / 3) / (sd / math.sqrt(3))  # 6.047
    assert out["p"] == pytest.approx(2 * scipy_stats.t.sf(t, 2), rel=1e-4)  # two-sided p of that t, 2 dof
    assert out["p"] == pytest.approx(0.02627, rel=1e-2)
    assert math.isnan(paired_delta({0: 1.0}, {0: 2.0})["p"])


def test_paired_delta_without_a_common_seed_is_nan_throughout():
    out = paired_delta({0: 1.0, 1: 1.2}, {2: 1.5})
    assert out["seeds"] == [] and sorted(out) == ["delta", "detectable", "half", "p", "seeds"]
    assert all(math.isnan(out[key]) for key in ("delta", "detectable", "half", "p"))


def test_paired_delta_has_a_p_from_two_seeds_unless_every_difference_is_the_same():
    out = paired_delta({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.7})
    # diffs 0.5, 0.7: t = 0.6 / (0.1414 / sqrt 2) = 6 with 1 dof, whose two-sided p is 1 - 2 atan(6) / pi (Cauchy)
    assert out["p"] == pytest.approx(1 - 2 * math.atan(6) / math.pi)
    # the same difference on every seed: no spread to test against (scipy would say p = 0)
    same = paired_delta({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.5, 1: 2.5, 2: 3.5})
    assert same["delta"] == 0.5 and same["half"] == 0.0 and math.isnan(same["p"])


def test_mcnemar_counts_discordant_pairs_over_pooled_seeds():
    labels = [0, 1, 2, 3]
    reference = [[0, 1, 2, 0], [0, 1, 0, 3]]  # seed 0 misses image 3, seed 1 misses image 2
    variant = [[0, 0, 0, 3], [1, 1, 2, 3]]  # seed 0: wrong on 1, 2, right on 3; seed 1: wrong on 0, right on 2
    out = mcnemar(labels, reference, variant)
    assert (out["b"], out["c"]) == (3, 2)
    assert out["p"] == pytest.approx(1.0)  # 2 of 5 discordant pairs: two-sided exact binomial p = 1
    out = mcnemar([0] * 10, [[0] * 10], [[1] * 10])
    assert (out["b"], out["c"]) == (10, 0) and out["p"] == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar(labels, reference, reference)["p"] == 1.0


def test_holm_matches_hand_computation():
    from repro.study.stats import holm
    # sorted: 0.01 x 4, 0.02 x 3, 0.03 x 2 -> 0.06, made monotone, 0.5 x 1 -> 0.5; NaN is not in the family
    adjusted = holm([0.03, 0.5, 0.01, float("nan"), 0.02])
    assert adjusted[:3] == pytest.approx([0.06, 0.5, 0.04]) and math.isnan(adjusted[3])
    assert adjusted[4] == pytest.approx(0.06)
    assert holm([0.9, 0.8]) == [1.0, 1.0]


def test_rank_correlation_matches_hand_computation():
    from repro.study.stats import rank_correlation
    assert rank_correlation([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0])[0] == pytest.approx(1.0)
    # ranks (1, 2, 3, 4) vs (2, 1, 4, 3): d^2 = 4, rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert rank_correlation([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0])[0] == pytest.approx(0.6)
    assert math.isnan(rank_correlation([1.0, 2.0], [2.0, 1.0])[0])


def test_the_detectable_difference_is_the_power_formula():
    # diffs 0.1, 0.3, 0.2, 0.4: s = 0.1291, n = 4, 3 dof: t_0.975 = 3.1824, t_0.8 = 0.9785
    assert detectable_difference([0.1, 0.3, 0.2, 0.4]) == pytest.approx((3.18245 + 0.97847) * 0.129099 / 2, rel=1e-4)
    assert detectable_difference([0.1, 0.3, 0.2, 0.4], power=0.5) == pytest.approx(3.18245 * 0.129099 / 2, rel=1e-4)
    assert math.isnan(detectable_difference([0.2]))
    # more seeds of the same spread detect smaller effects
    assert detectable_difference([0.1, 0.3] * 10) < detectable_difference([0.1, 0.3] * 2)
    assert paired_delta({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.7})["detectable"] == pytest.approx(
        detectable_difference([0.5, 0.7]))
