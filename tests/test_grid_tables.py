"""A grid's results as tables (repro/study/ablation.py, comparison.py, report.py), from grid folders written
without training (helpers/grid_data.py): hand-computed values, runs left out of the averages, the variants at
their own step sizes, and `lenet5 report`."""
import math
from pathlib import Path

import pytest

from helpers.grid_data import write_synthetic_grid
from repro.cli import main
from repro.study.ablation import ablation_table, table_markdown
from repro.study.grids import GRIDS
from repro.study.report import ablation_markers, write_reports


def test_ablation_table_matches_hand_computed_values(tmp_path):
    grid_dir = tmp_path / "grid"
    write_synthetic_grid(grid_dir, {"paper": [10.0, 20.0, 15.0], "c3=full": [15.0, 20.0, 25.0],
                                    "head=linear": [5.0, 5.0, 50.0]}, diverged={("head=linear", 2)})
    table = ablation_table(grid_dir, "paper").set_index("variant")
    assert table.loc["paper", "test_mean"] == pytest.approx(15.0)
    assert table.loc["paper", "test_half"] == pytest.approx(4.302653 * 5.0 / math.sqrt(3), rel=1e-6)
    # c3=full - paper per seed: +5, 0, +10 -> mean 5, sd 5
    assert table.loc["c3=full", "delta"] == pytest.approx(5.0)
    assert table.loc["c3=full", "delta_half"] == pytest.approx(4.302653 * 5.0 / math.sqrt(3), rel=1e-6)
    # first 2/4/3 (paper) and 3/4/5 (c3=full) images wrong out of 20: b = 1 + 0 + 2, c = 0
    assert (table.loc["c3=full", "mcnemar_b"], table.loc["c3=full", "mcnemar_c"]) == (3, 0)
    assert table.loc["c3=full", "p_mcnemar"] == pytest.approx(0.25)
    # the diverged seed is counted, not averaged: seeds 0, 1 only
    assert table.loc["head=linear", "seeds"] == [0, 1]
    assert table.loc["head=linear", "not_trained"] == ["seed 2 diverged"]
    assert table.loc["head=linear", "delta"] == pytest.approx(-10.0)
    markdown = table_markdown(ablation_table(grid_dir, "paper"), "paper")
    assert "| **paper** (reference) | 0, 1, 2 | 15.00 ± 12.42 | – |" in markdown
    assert "| `c3=full` | 0, 1, 2 | 20.00 ± 12.42 | +5.00 ± 12.42 |" in markdown


def test_a_delta_pairs_only_seeds_made_by_the_same_code_on_the_same_kind_of_machine(tmp_path):
    """Issue 30: seed 2 of the swap was made on another kind of machine than the reference's seed 2 (and seed 3 by
    other code): both count in the swap's mean, neither in its Δ, and the table names them."""
    from repro.study.comparison import component_deltas
    here = {"commit": "abc", "cpu": "AMD EPYC", "cpu_capability": "AVX2"}
    made = {(v, s): here for v in ("paper", "c3=full") for s in range(4)}
    made[("c3=full", 2)] = {**here, "cpu": "Intel(R) Xeon(R) Processor", "cpu_capability": "AVX512"}
    made[("c3=full", 3)] = {**here, "commit": "def"}
    grid_dir = tmp_path / "grid"
    write_synthetic_grid(grid_dir, {"paper": [10.0, 20.0, 15.0, 15.0], "c3=full": [15.0, 20.0, 50.0, 0.0]},
                         made=made)
    table = ablation_table(grid_dir, "paper").set_index("variant")
    assert table.loc["c3=full", "seeds"] == [0, 1, 2, 3]
    assert table.loc["c3=full", "test_mean"] == pytest.approx(21.25)
    assert table.loc["c3=full", "delta"] == pytest.approx(2.5)  # seeds 0 and 1 only: +5, 0
    assert table.loc["c3=full", "unpaired"] == [2, 3]
    assert (table.loc["c3=full", "mcnemar_b"], table.loc["c3=full", "mcnemar_c"]) == (1, 0)
    assert "(unpaired: seed 2, 3, baseline made by other code or machine)" in table_markdown(table.reset_index(),
                                                                                              "paper")
    deltas = component_deltas(grid_dir, GRIDS["one_at_a_time"]).set_index("variant")
    assert (deltas.loc["c3=full", "delta"], deltas.loc["c3=full", "seeds"]) == (pytest.approx(2.5), 2)


def test_a_run_that_collapsed_to_chance_is_listed_not_averaged(tmp_path):
    """A finished run whose training error ends at chance (a dead network: finite loss, constant output) would set
    its variant's mean on its own; like a diverged run it is named in the table and left out of every average."""
    from repro.study.comparison import component_deltas
    grid_dir = tmp_path / "grid"
    write_synthetic_grid(grid_dir, {"paper": [1.0, 1.2, 1.1], "activation=relu": [0.8, 88.65, 1.0]},
                         collapsed={("activation=relu", 1)})
    table = ablation_table(grid_dir, "paper").set_index("variant")
    assert table.loc["activation=relu", "seeds"] == [0, 2]
    assert table.loc["activation=relu", "not_trained"] == ["seed 1 collapsed"]
    assert table.loc["activation=relu", "test_mean"] == pytest.approx(0.9)
    assert table.loc["activation=relu", "delta"] == pytest.approx(-0.15)
    assert "| seed 1 collapsed |" in table_markdown(table.reset_index(), "paper")
    deltas = component_deltas(grid_dir, GRIDS["one_at_a_time"]).set_index("variant")
    assert deltas.loc["activation=relu", "delta"] == pytest.approx(-0.15)
    assert deltas.loc["activation=relu", "seeds"] == 2


def test_own_step_size_variants_and_their_deltas(tmp_path, monkeypatch):
    from repro.study import grids
    from repro.study.comparison import component_deltas
    from repro.study.figures import plot_ablation_deltas, plot_ladder
    from repro.study.ablation import grid_table
    monkeypatch.setattr(grids, "STEP_SIZES", {"one_at_a_time": {"paper": 5e-5, "activation=relu": 1e-4,
                                                                 "c3=full": 3e-4},
                                              "ladder": {"paper": 5e-5, "+head=linear": 1e-3}})
    grid = grids._grid("one_at_a_time", "paper", "test", era=1, protocol="paper")
    own = [v for v in grid.variants if v.own_lr]
    # relu's own step size is the protocol's: no extra variant, and it is its own at-its-best variant
    assert [(v.name, v.baseline) for v in own] == [("paper@lr=5e-05", None), ("c3=full@lr=0.0003", "paper@lr=5e-05")]
    assert grids.own_step_variant(grid, "activation=relu") == "activation=relu"
    assert grids.own_step_variant(grid, "pooling=max") is None
    ladder = grids._ladder("ladder")
    assert ladder.variant("+head=linear@lr=0.001").baseline == "paper@lr=5e-05"
    errors = {"paper": [2.0, 2.2], "paper@lr=5e-05": [1.0, 1.4], "activation=relu": [1.5, 1.5],
              "c3=full": [3.0, 3.0], "c3=full@lr=0.0003": [0.5, 1.3]}
    write_synthetic_grid(tmp_path / "grid", errors)
    deltas = component_deltas(tmp_path / "grid", grid).set_index("variant")
    # pure: against the reference; own: against the reference at its own step size
    assert deltas.loc["activation=relu", "delta"] == pytest.approx(-0.6)
    assert deltas.loc["activation=relu", "own_delta"] == pytest.approx(0.3)
    assert deltas.loc["c3=full", "delta"] == pytest.approx(0.9)
    assert deltas.loc["c3=full", "own_delta"] == pytest.approx(-0.3)
    assert "pooling=max" not in deltas.index
    table = grid_table(tmp_path / "grid", grid).set_index("variant")
    assert table.loc["c3=full@lr=0.0003", "delta"] == pytest.approx(-0.3)  # the table agrees
    assert plot_ablation_deltas(deltas.reset_index(), "t", tmp_path / "d.png").stat().st_size > 5000
    write_synthetic_grid(tmp_path / "ladder", {v.name: [1.0 + i / 10, 1.1 + i / 10] for i, v in
                                              enumerate(ladder.variants)})
    assert plot_ladder(grid_table(tmp_path / "ladder", ladder), ladder, "t", tmp_path / "l.png").stat().st_size > 5000


def test_report_writes_the_ablation_tables_and_refreshes_the_readme(tmp_path, capsys):
    results = tmp_path / "results"
    write_synthetic_grid(results / "grids" / "one_at_a_time", {"paper": [1.0, 2.0], "c3=full": [2.0, 2.0]})
    readme = tmp_path / "README.md"
    begin, end = ablation_markers("one_at_a_time")
    readme.write_text(f"top\n{begin}\nold\n{end}\nbottom\n")
    assert main(["report", "--results", str(results), "--readme", str(readme)]) == 0  # as a user runs it
    written = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert [p.name for p in written] == ["reproduction.md", "ablation.md", "README.md"]
    assert "`c3=full` | 0, 1 | 2.00 ± 0.00 | +0.50 ± 6.35" in (results / "ablation.md").read_text()
    assert "old" not in readme.read_text() and "+0.50 ± 6.35" in readme.read_text()
    # a grid whose runs are gone: its README table says so instead of keeping old numbers
    gone_begin, gone_end = ablation_markers("leave_one_in")
    readme.write_text(f"{gone_begin}\n| stale | 1.31 |\n{gone_end}\n")
    write_reports(results, readme)
    assert "1.31" not in readme.read_text() and "No finished runs yet: `lenet5 grid leave_one_in`" in readme.read_text()
