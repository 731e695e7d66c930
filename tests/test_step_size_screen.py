"""The step-size screen (experiments/step_size_screen.py): its step-size sweeps, its choice, and the STEP_SIZES the
grids declare, checked against the committed screen rows."""
import math
from pathlib import Path

import pytest

from experiments import step_size_screen as screen
from repro.study.grid import append_row
from repro.study.grids import GRIDS, PROTOCOLS, STEP_SIZES


def test_the_series_and_the_base_sweep():
    assert [screen.series(1e-4, s) for s in (-3, -2, -1, 0, 1, 2)] == [3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3]
    reference = GRIDS["one_at_a_time"].reference
    assert screen.lr_sweep(reference, {}) == [1e-5, 3e-5, 1e-4, 3e-4]  # >= 4 values spanning 30x


def test_a_best_at_the_edge_grows_the_sweep_until_it_is_inside():
    reference = GRIDS["one_at_a_time"].reference
    done = {1e-5: [2.0], 3e-5: [1.5], 1e-4: [1.2], 3e-4: [1.1]}
    assert screen.lr_sweep(reference, done) == [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]
    assert screen.lr_sweep(reference, {**done, 1e-3: [math.inf]}) == [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]  # diverged
    assert screen.lr_sweep(reference, {1e-5: [1.0], 3e-5: [1.5], 1e-4: [1.2], 3e-4: [1.3]})[0] == 3e-6
    # capped at MAX_STEPS values: 300x
    low = {lr: [lr * 1e4] for lr in (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4)}
    assert len(screen.lr_sweep(reference, low)) == screen.MAX_STEPS


def test_choice_is_the_lowest_mean_and_ties_go_to_the_pure_step():
    assert screen.choose({1e-5: [1.0, 1.2], 3e-5: [1.0, 1.0], 1e-4: [math.inf]}, 1e-4) == 3e-5
    assert screen.choose({1e-5: [1.0], 1e-4: [1.0], 1e-3: [1.0]}, 1e-4) == 1e-4
    assert screen.choose({}, 1e-4) is None


def test_rows_are_read_per_pure_variant_with_divergence_as_worst(tmp_path):
    for variant, lr, status, err in (("paper@lr=1e-05", 1e-5, "finished", 1.5), ("paper@lr=0.0003", 3e-4,
                                                                                  "diverged", None),
                                     ("c3=full@lr=1e-05", 1e-5, "failed", None)):
        append_row(tmp_path / "runs.jsonl", {"variant": variant, "seed": 0, "lr": lr, "status": status,
                                             "final_test_error_pct": err})
    assert screen.finished_errors(tmp_path) == {"paper": {1e-5: [1.5], 3e-4: [math.inf]}}


@pytest.mark.parametrize("grid", sorted(STEP_SIZES))
def test_declared_step_sizes_are_the_committed_screens_choices(grid):
    passes = screen.cheap_passes(GRIDS[grid].protocol)
    committed = Path(__file__).resolve().parents[1] / screen.OUT
    assert STEP_SIZES[grid] == screen.chosen_step_sizes(GRIDS[grid], passes, committed)


def test_the_ladders_minibatch_rungs_are_screened_at_their_own_protocol(tmp_path):
    grid = GRIDS["ladder"]
    cells = screen.screen_grid(grid, screen.cheap_passes("paper"), None, tmp_path).variants
    epochs = {c.name.split("@lr=")[0]: c.config.train.epochs for c in cells}
    batch = {c.name.split("@lr=")[0]: c.config.train.batch_size for c in cells}
    assert epochs["+head=linear"] == screen.CHEAP_PASSES["paper"] and batch["+head=linear"] == 1
    assert epochs["+norm=batch"] == PROTOCOLS["minibatch"].fields["epochs"] and batch["+norm=batch"] == 64
    assert all(c.config.train.evaluate_on == "validation" for c in cells)


def test_a_screen_copies_from_the_other_screens_and_the_step_size_screens_beside_it(tmp_path):
    root = tmp_path / "screens" / "step_sizes"
    for folder in (root / "one_at_a_time_p4", root / "ladder_p4", tmp_path / "screens" / "sdlm_schedule"):
        folder.mkdir(parents=True)
    assert screen.reuse_sources(root) == [tmp_path / "screens" / "sdlm_schedule", root, root / "ladder_p4",
                                          root / "one_at_a_time_p4"]
