"""The same swaps compared across two grids (repro/study/comparison.py): verdicts, ranks, the report's tables."""
import math

import pandas as pd
import pytest

from repro.study.comparison import (COMPARISONS, Comparison, compare, comparison_markdown, comparison_markers,
                                    verdict)
from repro.study.grids import GRIDS
from repro.study.report import write_reports
from helpers.grid_data import write_synthetic_grid

PAIR = Comparison("t", "a", "b", "protocol", "A", "B", "t.png")


@pytest.mark.parametrize("first, second, expected", [
    ((-0.5, 0.2), (-0.3, 0.1), "holds: helps"),
    ((0.5, 0.2), (0.3, 0.1), "holds: hurts"),
    ((-0.5, 0.2), (0.3, 0.1), "flips"),
    ((-0.5, 0.2), (0.05, 0.1), "helps under A only"),
    ((0.05, 0.2), (0.3, 0.1), "hurts under B only"),
    ((0.1, 0.2), (-0.05, 0.1), "unresolved in both"),
    ((-0.5, math.nan), (-0.3, 0.1), "one seed"),
])
def test_verdict_reads_each_interval_against_zero(first, second, expected):
    assert verdict(*first, *second, "A", "B") == expected


def _deltas(rows):
    return pd.DataFrame([{"variant": v, "delta": d, "half": h, "own_delta": math.nan, "own_half": math.nan,
                          "seeds": 5} for v, d, h in rows],
                        columns=["variant", "delta", "half", "own_delta", "own_half", "seeds"])


def test_compare_ranks_the_shared_swaps_and_correlates_the_rankings():
    first = _deltas([("x", -0.5, 0.1), ("y", 0.4, 0.1), ("z", 0.0, 0.1), ("only_first", 1.0, 0.1)])
    second = _deltas([("z", -0.2, 0.1), ("x", -0.6, 0.1), ("y", 0.9, 0.3), ("w", math.nan, math.nan)])
    table = compare(first, second, PAIR).set_index("variant")
    assert list(table.index) == ["x", "y", "z"]  # only swaps in both, in the first grid's order
    assert list(table["rank_first"]) == [1, 3, 2] and list(table["rank_second"]) == [1, 3, 2]
    assert list(table["verdict"]) == ["holds: helps", "holds: hurts", "helps under B only"]
    markdown = comparison_markdown(table.reset_index(), PAIR)
    assert "| `x` | -0.50 ± 0.10 (5) | 1 | -0.60 ± 0.10 (5) | 1 | holds: helps |" in markdown
    assert "rank correlation of the two rankings: 1.00" in markdown
    assert "No swap has runs in both" in comparison_markdown(compare(first, _deltas([]), PAIR), PAIR)


@pytest.mark.parametrize("comparison", COMPARISONS, ids=[c.name for c in COMPARISONS])
def test_every_comparison_pairs_two_grids_that_share_their_swaps(comparison):
    first, second = GRIDS[comparison.first], GRIDS[comparison.second]
    shared = {v.name for v in first.variants[1:] if not v.own_lr} & {v.name for v in second.variants[1:]}
    assert len(shared) >= 3 and comparison.kind in ("protocol", "dataset")
    datasets = [g.reference.config.train.dataset for g in (first, second)]
    if comparison.kind == "dataset":
        assert first.protocol == second.protocol and datasets[0] != datasets[1]
    else:
        assert first.protocol != second.protocol and datasets[0] == datasets[1]


def test_report_fills_each_comparison_in_the_readme(tmp_path):
    results = tmp_path / "results"
    write_synthetic_grid(results / "grids" / "one_at_a_time",
                         {"paper": [1.0, 1.1, 1.0], "c3=full": [0.5, 0.7, 0.4], "pooling=max": [2.0, 2.2, 2.1],
                          "head=linear": [1.0, 1.2, 1.1]})
    write_synthetic_grid(results / "grids" / "one_at_a_time_minibatch",
                         {"paper": [2.0, 2.1, 2.0], "c3=full": [2.5, 2.5, 2.6], "pooling=max": [3.0, 3.3, 3.1],
                          "head=linear": [1.0, 1.3, 0.9]})
    readme = tmp_path / "README.md"
    text = "".join(f"{b}\nold\n{e}\n" for b, e in map(comparison_markers, [c.name for c in COMPARISONS]))
    readme.write_text(text)
    write_reports(results, readme)
    out = readme.read_text()
    assert "| `c3=full` | -0.50 ± 0.25 (3) | 1 | +0.50 ± 0.25 (3) | 2 | flips |" in out
    assert "| `head=linear` |" in out and "\nold\n" not in out
    # the Fashion-MNIST grids have no runs here: their comparisons say so rather than keep old text
    assert "Not both grids have runs yet: `lenet5 grid one_at_a_time`, `lenet5 grid one_at_a_time_fashion_mnist`" in out
    assert "# The same swaps in two grids" in (results / "ablation.md").read_text()


def test_a_ladders_deltas_are_each_rung_against_the_rung_before(tmp_path):
    from repro.study.comparison import component_deltas
    from repro.study.grids import own_step_variant
    ladder = GRIDS["ladder"]
    errors = {v.name: [1.0 + i / 10, 1.0 + i / 5] for i, v in enumerate(ladder.variants)}
    write_synthetic_grid(tmp_path / "ladder", errors)
    deltas = component_deltas(tmp_path / "ladder", ladder).set_index("variant")
    for v in ladder.variants[1:]:
        if v.own_lr:
            continue
        pure = [a - b for a, b in zip(errors[v.name], errors[v.baseline])]
        assert deltas.loc[v.name, "delta"] == pytest.approx(sum(pure) / 2)
        own, own_base = own_step_variant(ladder, v.name), own_step_variant(ladder, v.baseline)
        own_diff = [a - b for a, b in zip(errors[own], errors[own_base])]
        assert deltas.loc[v.name, "own_delta"] == pytest.approx(sum(own_diff) / 2)
