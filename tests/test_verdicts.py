"""Which effects a grid resolves (repro/study/verdicts.py), on grid folders written without training
(helpers/grid_data.py) and on hand-made rows with known answers."""
import math

import pytest

from helpers.grid_data import write_synthetic_grid
from repro.study.docs import markers
from repro.study.grids import GRIDS
from repro.study.report import write_reports
from repro.study.verdicts import (_direction, grid_verdicts, seeds_for_half_width, sign_test, verdict_summary,
                                  verdict_table)


def _row(test, status="finished", train=0.5, **made):
    return {"status": status, "final_test_error_pct": test, "final_train_error_pct": train, **made}


def test_the_sign_test_counts_a_failed_run_as_worse_and_leaves_out_ties_and_unpaired_seeds():
    other = {"commit": "abc", "cpu": "Intel", "cpu_capability": "AVX512"}
    baseline = {0: _row(1.0), 1: _row(1.0), 2: _row(1.0), 3: _row(1.0, train=88.8), 4: _row(1.0), 5: _row(1.0)}
    variant = {0: _row(1.5),  # worse
               1: _row(1.0),  # a tie: left out
               2: _row(None, status="diverged"),  # failed to train: worse
               3: _row(0.2),  # its baseline collapsed: left out
               4: _row(0.5, **other),  # made by other code: not paired
               5: _row(2.0, train=89.0)}  # collapsed: worse, whatever its test error
    assert sign_test(baseline, variant) == {"worse": 3, "better": 0, "p": pytest.approx(0.25)}
    assert sign_test(baseline, {0: _row(0.5), 1: _row(2.0)}) == {"worse": 1, "better": 1, "p": 1.0}
    assert sign_test({}, variant)["p"] == 1.0


def test_verdicts_of_a_grid_with_one_resolved_and_one_unresolved_swap(tmp_path):
    grid_dir = tmp_path / "grids" / "one_at_a_time"
    paper = [1.0, 1.2, 1.1, 1.3, 1.0, 1.2]
    write_synthetic_grid(grid_dir, {"paper": paper,
                                    "pooling=max": [e + d for e, d in zip(paper, [0.5, 0.6, 0.5, 0.7, 0.5, 0.6])],
                                    "c3=full": [e + d for e, d in zip(paper, [0.1, -0.1] * 3)]}, n_test=1000)
    entries = {e["variant"]: e for e in grid_verdicts(grid_dir, GRIDS["one_at_a_time"])}
    assert list(entries) == ["pooling=max", "c3=full"]  # grid order; swaps without runs are left out
    pool, c3 = entries["pooling=max"], entries["c3=full"]
    assert pool["delta"] == pytest.approx(0.5667, abs=1e-4) and pool["paired"] == 6
    # 6 of 6 seeds worse: p = 2/64, Holm over the two swaps doubles it, above 0.05
    assert pool["sign"] == {"worse": 6, "better": 0, "p": pytest.approx(1 / 32), "p_holm": pytest.approx(1 / 16)}
    assert pool["held"] == ["interval", "Holm", "McNemar"] and pool["resolved"]
    assert pool["verdict"] == "resolved: hurts (by interval, Holm, McNemar)"
    assert c3["delta"] == pytest.approx(0.0, abs=1e-12) and c3["held"] == [] and c3["verdict"] == "unresolved"
    assert c3["mcnemar"] == (3 * 1, 3 * 1)  # one image more wrong on three seeds, one fewer on the others
    table = verdict_table(list(entries.values()), "one_at_a_time")
    assert "| swap | paired seeds | Δ, pp (95% CI) | within ±0.08 |" in table  # a grid of the programme
    assert "| `pooling=max` | 6 | +0.57 ± 0.09 | no |" in table
    assert f"| unresolved | {c3['detectable']:.2f} |" in table and "| `c3=full` | 6 | +0.00 ± 0.11 | no |" in table
    summary = verdict_summary(list(entries.values()), "one_at_a_time")
    assert summary.startswith("With 6 paired seeds per swap (Δ in points, 95% interval): resolved (interval and "
                              "Holm): `pooling=max` hurts (+0.57 ± 0.09).")
    assert f"Unresolved: `c3=full` (+0.00 ± 0.11; could hide {c3['detectable']:.2f})." in summary
    assert summary.endswith("Intervals within the programme's ±0.08: 0 of 2. At today's spread of paired "
                            "differences, the others would reach it at `pooling=max` 7, `c3=full` 10 paired seeds.")
    assert "within ±" not in verdict_table(list(entries.values()), "leave_one_in")  # not a programme grid


def test_the_seeds_a_half_width_needs_at_the_same_spread():
    # ±0.10 over 10 seeds: s = 0.10 √10 / t(9) = 0.1398; t(13) s / √14 = 0.0807 > 0.08 >= t(14) s / √15 = 0.0774
    assert seeds_for_half_width(0.10, 10, 0.08) == 15
    assert seeds_for_half_width(0.05, 10, 0.08) < 10  # already within: fewer seeds would do
    assert seeds_for_half_width(math.nan, 1, 0.08) is None
    assert seeds_for_half_width(0.1, 1, 0.08) is None and seeds_for_half_width(math.nan, 5, 0.08) is None
    assert seeds_for_half_width(0.5, 2, 0.08) > 2
    assert seeds_for_half_width(0.001, 10, 0.08) == 2  # the smallest number of seeds with an interval


def test_a_direction_comes_from_the_tests_that_hold():
    entry = {"delta": -0.05, "mcnemar": (30, 10), "sign": {"worse": 2, "better": 5}}
    assert _direction({**entry, "held": []}) == "helps"  # unresolved: the Δ's sign
    assert _direction({**entry, "held": ["interval", "McNemar"]}) == "helps"
    # only McNemar holds and disagrees with a Δ averaged over the seeds that trained: McNemar's b > c
    assert _direction({**entry, "held": ["McNemar"]}) == "hurts"
    assert _direction({**entry, "held": ["sign"]}) == "helps"
    assert _direction({**entry, "delta": math.nan, "held": []}) == "level"  # no seed trained, nothing holds
    assert _direction({**entry, "delta": 0.0, "held": []}) == "level"
    assert _direction({**entry, "delta": 1.0, "held": []}) == "hurts"
    # Holm alone holds: the Δ's sign, whatever McNemar's and the sign test's counts say
    assert _direction({**entry, "sign": {"worse": 5, "better": 2}, "held": ["Holm"]}) == "helps"
    assert _direction({**entry, "mcnemar": (10, 30), "held": ["McNemar"], "delta": 0.05}) == "helps"
    assert _direction({**entry, "mcnemar": (10, 10), "held": ["McNemar"]}) == "helps"  # no majority: not hurts
    assert _direction({**entry, "sign": {"worse": 5, "better": 2}, "held": ["sign"]}) == "hurts"
    assert _direction({**entry, "sign": {"worse": 3, "better": 3}, "held": ["sign"]}) == "helps"


def test_the_report_writes_the_verdicts_into_the_pages_that_show_them(tmp_path):
    results = tmp_path / "results"
    write_synthetic_grid(results / "grids" / "ladder", {"paper": [1.0, 2.0, 1.5], "+head=linear": [2.0, 3.0, 2.6]})
    page = tmp_path / "README.md"
    blocks = [markers("verdicts:ladder"), markers("verdict-summary:ladder"), markers("verdicts:leave_one_in")]
    page.write_text("".join(f"{begin}\nold\n{end}\n" for begin, end in blocks))
    write_reports(results, page)
    text = page.read_text()
    assert "old" not in text
    assert text.count("With 3 paired seeds per rung (Δ in points, 95% interval): resolved (interval and Holm): "
                      "`+head=linear` hurts") == 2
    assert "| `+head=linear` | 3 | +1.03 ± 0.14 | no |" in text
    assert "_No finished runs yet: `lenet5 grid leave_one_in`._" in text
    assert "Which effects are resolved" in (results / "ablation.md").read_text()


def _entry(variant, paired, delta, half, detectable, p_holm, p_mcnemar_holm, sign, held, direction, verdict,
           resolved=False):
    return {"variant": variant, "paired": paired, "delta": delta, "half": half, "detectable": detectable,
            "p_holm": p_holm, "p_mcnemar_holm": p_mcnemar_holm, "sign": sign, "held": held,
            "direction": direction, "verdict": verdict, "resolved": resolved}


ENTRIES = [
    _entry("pooling=max", 11, 0.23, 0.09, 0.12, 0.003, 1.1e-12, {"worse": 11, "better": 0, "p_holm": 0.007},
           ["interval", "Holm", "McNemar", "sign"], "hurts", "resolved: hurts (by interval, Holm, McNemar, sign)",
           resolved=True),
    _entry("init=default", 9, -0.09, 0.085, 0.11, 0.431, 0.0695, {"worse": 2, "better": 7, "p_holm": 0.898},
           ["interval"], "helps", "helps (by interval)"),
    _entry("norm=batch", 10, -0.04, 0.08, 0.11, 1.0, 1.0, {"worse": 5, "better": 5, "p_holm": 1.0}, [], "helps",
           "unresolved"),
    _entry("activation=relu", 1, 0.8, math.nan, math.nan, math.nan, 9e-132, {"worse": 3, "better": 0,
                                                                             "p_holm": 0.75},
           ["McNemar", "sign"], "hurts", "hurts (by McNemar, sign)"),
]


def test_the_verdict_table_and_summary_of_known_entries():
    table = verdict_table(ENTRIES, "one_at_a_time").splitlines()
    assert table[:2] == [
        "| swap | paired seeds | Δ, pp (95% CI) | within ±0.08 | seeds for ±0.08 at this spread | paired t p (Holm) | "
        "McNemar p (Holm) | sign test: worse / better, p (Holm) | verdict | could still miss, pp |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    assert table[2:] == [
        "| `pooling=max` | 11 | +0.23 ± 0.09 | no | 14 | 0.003 | 1.1e-12 | 11 / 0, 0.007 | resolved: hurts (by "
        "interval, Holm, McNemar, sign) | – |",
        "| `init=default` | 9 | -0.09 ± 0.09 | no | 10 | 0.431 | 0.070 | 2 / 7, 0.898 | helps (by interval) | 0.11 |",
        "| `norm=batch` | 10 | -0.04 ± 0.08 | yes | 10 | 1.000 | 1.000 | 5 / 5, 1.000 | unresolved | 0.11 |",
        "| `activation=relu` | 1 | +0.80 | – | – | – | 9.0e-132 | 3 / 0, 0.750 | hurts (by McNemar, sign) | – |"]
    assert verdict_table(ENTRIES, "leave_one_in").splitlines()[0] == (
        "| swap | paired seeds | Δ, pp (95% CI) | paired t p (Holm) | McNemar p (Holm) | sign test: worse / better, "
        "p (Holm) | verdict | could still miss, pp |")
    assert verdict_table(ENTRIES, "leave_one_in").splitlines()[2] == (
        "| `pooling=max` | 11 | +0.23 ± 0.09 | 0.003 | 1.1e-12 | 11 / 0, 0.007 | resolved: hurts (by interval, Holm, "
        "McNemar, sign) | – |")
    assert verdict_summary(ENTRIES, "one_at_a_time") == (
        "With 1 to 11 paired seeds per swap (Δ in points, 95% interval): resolved (interval and Holm): `pooling=max` "
        "hurts (+0.23 ± 0.09). Resolved by some tests only: `init=default` helps (-0.09 ± 0.09; by interval); "
        "`activation=relu` hurts (+0.80; by McNemar, sign). Unresolved: `norm=batch` (-0.04 ± 0.08; could hide 0.11). "
        "Intervals within the programme's ±0.08: 1 of 4. At today's spread of paired differences, the others would "
        "reach it at `pooling=max` 14, `init=default` 10 paired seeds.")
    assert verdict_summary(ENTRIES[2:3], "ladder") == (
        "With 10 paired seeds per rung (Δ in points, 95% interval): resolved (interval and Holm): none. Unresolved: "
        "`norm=batch` (-0.04 ± 0.08; could hide 0.11). Intervals within the programme's ±0.08: 1 of 1.")
    assert verdict_summary(ENTRIES[:1], "leave_one_in") == (
        "With 11 paired seeds per swap (Δ in points, 95% interval): resolved (interval and Holm): `pooling=max` hurts "
        "(+0.23 ± 0.09). Unresolved: none.")
    assert verdict_summary([], "ladder") == "_No paired seeds yet: `lenet5 grid ladder`._"
    twice = ENTRIES + [{**e, "variant": e["variant"] + "'"} for e in ENTRIES]  # two of each kind, joined
    summary = verdict_summary(twice, "leave_one_in")
    assert "`pooling=max` hurts (+0.23 ± 0.09); `pooling=max'` hurts (+0.23 ± 0.09)." in summary
    assert "`activation=relu'` hurts (+0.80; by McNemar, sign)." in summary
    assert "`norm=batch` (-0.04 ± 0.08; could hide 0.11); `norm=batch'` (-0.04 ± 0.08; could hide 0.11)." in summary


def test_each_test_holds_only_strictly_and_a_failed_seed_counts_in_the_sign_test(tmp_path):
    """grid_verdicts on a table given to it (as `lenet5 report` gives the one it made) and the grid's rows: an
    interval that only touches zero, a p-value of exactly ALPHA, the interval without Holm, and the sign test over
    12 seeds, one of which diverged."""
    import pandas as pd

    grid_dir = tmp_path / "grid"
    write_synthetic_grid(grid_dir, {"paper": [1.0] * 12, "pooling=max": [1.5] * 11 + [1.0],
                                    "c3=full": [1.0] * 12, "head=linear": [2.0] * 3}, diverged={("pooling=max", 11)})
    base = {"baseline": "paper", "unpaired": [], "mcnemar_b": 5, "mcnemar_c": 1, "detectable": 0.3}
    table = pd.DataFrame([
        {"variant": "paper", "seeds": list(range(12)), "delta": math.nan},
        {**base, "variant": "pooling=max", "seeds": list(range(11)), "paired": 11, "delta": 0.5, "delta_half": 0.5,
         "p_paired_holm": 0.05, "p_mcnemar_holm": 0.049},  # touches zero; Holm at exactly ALPHA
        {**base, "variant": "c3=full", "seeds": list(range(12)), "unpaired": [3], "paired": 11, "delta": 0.2,
         "delta_half": 0.1,
         "p_paired_holm": 0.2, "p_mcnemar_holm": 0.5},  # the interval alone
        {**base, "variant": "head=linear", "seeds": [], "unpaired": math.nan, "delta": math.nan,
         "delta_half": math.nan, "detectable": math.nan, "p_paired_holm": math.nan, "p_mcnemar_holm": math.nan},
    ])
    entries = {e["variant"]: e for e in grid_verdicts(grid_dir, GRIDS["one_at_a_time"], table)}
    pool, c3, head = entries["pooling=max"], entries["c3=full"], entries["head=linear"]
    # 12 seeds worse, one of them diverged (its Δ is the table's, over 11): p = 2/4096, Holm over 3 swaps
    assert pool["sign"] == {"worse": 12, "better": 0, "p": pytest.approx(2 / 4096), "p_holm": pytest.approx(6 / 4096)}
    assert pool["held"] == ["McNemar", "sign"] and pool["verdict"] == "hurts (by McNemar, sign)"
    assert c3["held"] == ["interval"] and not c3["resolved"] and c3["verdict"] == "hurts (by interval)"
    assert c3["paired"] == 11  # the table's count (seed 3's baseline was made otherwise)
    assert c3["sign"]["worse"] == 0 and c3["sign"]["better"] == 0  # the rows are level, the table is not
    # no seed trained in the table (no Δ); 3 of 3 worse in the rows is p = 0.25
    assert head["paired"] == 0 and head["sign"]["p"] == pytest.approx(0.25) and head["verdict"] == "unresolved"


def test_the_report_judges_the_table_it_made(tmp_path):
    """verdict_blocks judges the frames it is given, over the rows of results/grids/NAME."""
    import pandas as pd

    from repro.study import verdicts

    results = tmp_path / "results"
    write_synthetic_grid(results / "grids" / "ladder", {"paper": [1.0] * 3, "+head=linear": [2.0] * 3})
    frame = pd.DataFrame([{"variant": "paper", "seeds": [0, 1, 2], "delta": math.nan},
                          {"variant": "+head=linear", "baseline": "paper", "seeds": [0, 1, 2], "unpaired": [], "paired": 3,
                           "delta": 7.0, "delta_half": 1.0, "detectable": 2.0, "p_paired_holm": 0.01,
                           "mcnemar_b": 9, "mcnemar_c": 0, "p_mcnemar_holm": 0.01}])
    table, summary = verdicts.verdict_blocks(results, {"ladder": frame})["ladder"]
    row = table.splitlines()[2]
    assert row.startswith("| `+head=linear` | 3 | +7.00 ± 1.00 | no | ")  # the frame's Δ, not the rows' (+1.00)
    assert row.endswith("| 0.010 | 0.010 | 3 / 0, 0.250 | resolved: hurts (by interval, Holm, McNemar) | – |")
    assert summary.startswith("With 3 paired seeds per rung")


def test_a_swap_is_judged_over_the_seeds_its_baseline_has_and_without_rows_of_its_own_or_its_baselines(tmp_path):
    """The ladder's `+pooling=max` has a seed its baseline lacks (one run for another variant); a rung whose
    baseline, or which itself, has no row yet is still judged, with an empty sign test."""
    import pandas as pd

    grid_dir = tmp_path / "grids" / "ladder"
    write_synthetic_grid(grid_dir, {"paper": [1.0, 1.2, 1.1], "+head=linear": [1.5, 1.6, 1.4, 9.0],
                                    "+pooling=max": [1.0, 1.1]})
    ladder = GRIDS["ladder"]
    entries = {e["variant"]: e for e in grid_verdicts(grid_dir, ladder)}
    assert entries["+head=linear"]["paired"] == 3  # its seed 3 has no baseline run
    assert entries["+head=linear"]["sign"]["worse"] == 3
    assert entries["+pooling=max"]["paired"] == 0  # its baseline, +input=28, has no rows
    frame = pd.DataFrame([{"variant": "paper", "seeds": [0], "delta": math.nan},
                          {"variant": "+c3=full", "seeds": [0], "unpaired": [], "paired": 1, "delta": 0.1,
                           "delta_half": math.nan, "detectable": math.nan, "p_paired_holm": math.nan,
                           "mcnemar_b": 1, "mcnemar_c": 0, "p_mcnemar_holm": 1.0}])
    (c3,) = grid_verdicts(grid_dir, ladder, frame)  # in the table, with no rows of its own or its baseline's
    assert c3["sign"] == {"worse": 0, "better": 0, "p": 1.0, "p_holm": 1.0} and c3["verdict"] == "unresolved"
