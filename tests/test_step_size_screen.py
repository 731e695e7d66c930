"""The step-size screen (repro/study/screens.py, run by experiments/step_size_screen.py): its step-size sweeps, its
choice, and the STEP_SIZES the grids declare, checked against the committed screen rows."""
import copy
import math
from pathlib import Path

from repro.study import screens as screen
from repro.study.grid import append_row
from repro.study.grids import GRIDS, PROTOCOLS, STEP_SIZES

COMMITTED = Path(__file__).resolve().parents[1] / screen.STEP_SIZES_ROOT


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


def test_declared_step_sizes_are_the_committed_screens_choices():
    assert screen.step_size_mismatches(COMMITTED) == []


def test_a_hand_edit_of_the_step_sizes_is_caught_both_ways():
    edited = copy.deepcopy(STEP_SIZES)
    edited["one_at_a_time"]["paper"] = 1e-4  # the screen chose 3e-5
    del edited["ladder"]["+c3=full"]
    edited["leave_one_in"]["c3=full"] = 1e-3  # not a variant of leave_one_in: nothing screened
    assert sorted(screen.step_size_mismatches(COMMITTED, edited)) == [
        "ladder: +c3=full not declared; the screen chose 0.0001",
        f"leave_one_in: c3=full declared 0.001, but {COMMITTED / 'leave_one_in_p5'} holds no complete sweep of it",
        "one_at_a_time: paper declared 0.0001, the screen chose 3e-05"]
    assert screen.step_size_mismatches(COMMITTED, {**STEP_SIZES, "no_such_grid": {}}) == [
        "STEP_SIZES names 'no_such_grid', which is not a grid"]


def test_without_committed_rows_every_declared_step_size_is_a_mismatch(tmp_path):
    lines = screen.step_size_mismatches(tmp_path)
    assert len(lines) == sum(len(chosen) for chosen in STEP_SIZES.values())
    assert all("holds no complete sweep" in line for line in lines)


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
