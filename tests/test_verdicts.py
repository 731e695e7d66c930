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


def test_a_direction_comes_from_the_tests_that_hold():
    entry = {"delta": -0.05, "mcnemar": (30, 10), "sign": {"worse": 2, "better": 5}}
    assert _direction({**entry, "held": []}) == "helps"  # unresolved: the Δ's sign
    assert _direction({**entry, "held": ["interval", "McNemar"]}) == "helps"
    # only McNemar holds and disagrees with a Δ averaged over the seeds that trained: McNemar's b > c
    assert _direction({**entry, "held": ["McNemar"]}) == "hurts"
    assert _direction({**entry, "held": ["sign"]}) == "helps"
    assert _direction({**entry, "delta": math.nan, "held": []}) == "level"  # no seed trained, nothing holds


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
