"""`run_grid` (repro/study/grid.py) on tiny grids: resumable and interruptible, one row per run, failures recorded,
finished configs copied from other folders instead of trained again."""
import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from helpers.grid_data import tiny_grid
from helpers.step_hooks import KILLED, lenet5_command
from repro.cli import main
from repro.config import ConfigError
from repro.errors import GRID_RUNS_FAILED
from repro.study import grid as grid_module
from repro.study.grid import RUNS_FILE, append_row, grid_cells, read_rows, run_grid
from repro.study.grids import GRIDS, Grid


def turns(fail_after=None):
    """An `on_turn` for run_grid that records the key of each cell whose turn comes (the cells it trains: these
    tests copy nothing at that point), and that record. After `fail_after` turns it raises KeyboardInterrupt
    instead, standing in for a kill between two runs."""
    calls = []

    def on_turn(cell):
        if fail_after is not None and len(calls) == fail_after:
            raise KeyboardInterrupt
        calls.append(cell.key)
    return on_turn, calls


def test_an_interrupted_grid_does_only_the_rest(tmp_path, tiny_mnist):
    grid, out = tiny_grid(), tmp_path / "grid"
    on_turn, _ = turns(fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False, on_turn=on_turn)
    assert len(read_rows(out / RUNS_FILE)[0]) == 4
    on_turn, calls = turns()
    rows = run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False, on_turn=on_turn)
    assert calls == [c.key for c in grid_cells(grid, [0, 1])][4:]
    keys = [(r["variant"], r["seed"]) for r in read_rows(out / RUNS_FILE)[0]]
    assert sorted(keys) == sorted(c.key for c in grid_cells(grid, [0, 1])) and len(rows) == 6
    assert all(r["status"] == "finished" for r in rows)
    # a third start has nothing left to do
    on_turn, calls = turns()
    run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False, on_turn=on_turn)
    assert calls == []


def test_a_stop_between_two_runs_starts_no_further_run(tmp_path, tiny_mnist, monkeypatch):
    """SIGTERM to a one-worker grid just as a run ends: the driver starts nothing more (nor loads data for it),
    records no row for the cells it skips and raises Interrupted; it does not walk on through the queue."""
    import signal

    from repro import interrupt
    from repro.errors import Interrupted

    grid, out = tiny_grid(), tmp_path / "grid"
    calls, real = [], grid_module.run_cell

    def run_then_signal(cell, *args, **kwargs):
        calls.append(cell.key)
        row = real(cell, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by the grid's handler, not fatal
        return row
    monkeypatch.setattr(grid_module, "run_cell", run_then_signal)
    try:
        with pytest.raises(Interrupted, match="SIGTERM: grid tiny stopped with 1 of 6 runs recorded"):
            run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False)
    finally:
        interrupt._requested.clear()
    assert calls == [grid_cells(grid, [0, 1])[0].key]
    assert [(r["variant"], r["seed"]) for r in read_rows(out / RUNS_FILE)[0]] == [("paper", 0)]


@pytest.mark.slow
def test_a_run_killed_mid_way_is_resumed_from_its_checkpoint(tmp_path, tiny_mnist):
    import subprocess

    from repro.train import read_run_config
    grid, out = tiny_grid(epochs=2), tmp_path / "grid"
    cell = grid_cells(grid, [0])[0]
    # a real process exit in pass 2 (2 steps per pass), after pass 1's checkpoint, of the cell's run as
    # `lenet5 train` starts it
    command = [*lenet5_command(exit_at=3), "train", "--set", "epochs=2", "batch_size=16", "hessian_samples=8",
               "--threads", "1", "--quiet", "--data-root", str(tiny_mnist), "--out", str(cell.run_dir(out))]
    killed = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert killed.returncode == KILLED and (cell.run_dir(out) / "checkpoint.pt").exists()
    assert read_run_config(cell.run_dir(out)) == cell.config
    first_pass = (cell.run_dir(out) / "log.jsonl").read_text().splitlines()
    assert len(first_pass) == 1
    rows = run_grid(grid, [0], out, data_root=tiny_mnist, progress=False)
    # pass 1 came from the checkpoint, not from a fresh start (its wall time is the killed process's)
    assert (cell.run_dir(out) / "log.jsonl").read_text().splitlines()[0] == first_pass[0]
    resumed = next(r for r in rows if r["variant"] == cell.variant)
    fresh = run_grid(grid, [0], tmp_path / "fresh", data_root=tiny_mnist, progress=False)
    fresh = next(r for r in fresh if r["variant"] == cell.variant)
    assert resumed["passes"] == 2 and resumed["final_test_error_pct"] == fresh["final_test_error_pct"]
    assert (out / resumed["run_dir"] / "log.jsonl").read_text().count("\n") == 2
    a = torch.load(out / resumed["run_dir"] / "model.pt")["model"]
    b = torch.load(tmp_path / "fresh" / fresh["run_dir"] / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_grid_limited_to_some_variants_runs_only_their_cells(tmp_path, tiny_mnist):
    grid, out = tiny_grid(), tmp_path / "grid"
    on_turn, calls = turns()
    chosen = grid.with_baselines(["c3=full"])
    rows = run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False, variants=chosen, on_turn=on_turn)
    assert sorted(calls) == [("c3=full", 0), ("c3=full", 1), ("paper", 0), ("paper", 1)]
    assert sorted((r["variant"], r["seed"]) for r in rows) == sorted(calls)
    # the whole grid afterwards trains only the variant left out
    on_turn, calls = turns()
    run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False, on_turn=on_turn)
    assert sorted(calls) == [("pooling=max", 0), ("pooling=max", 1)]


def test_a_row_cut_short_is_detected_and_the_run_recorded_again(tmp_path, tiny_mnist):
    grid, out = tiny_grid(), tmp_path / "grid"
    run_grid(grid, [0], out, data_root=tiny_mnist, progress=False)
    lines = (out / RUNS_FILE).read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    (out / RUNS_FILE).write_text("".join(lines[:-1]) + lines[-1][:40])  # killed mid-write
    rows, damaged = read_rows(out / RUNS_FILE)
    assert damaged == 1 and len(rows) == 2
    on_turn, calls = turns()
    run_grid(grid, [0], out, data_root=tiny_mnist, progress=False, on_turn=on_turn)
    assert calls == [(last["variant"], last["seed"])]
    rows, damaged = read_rows(out / RUNS_FILE)
    assert damaged == 0 and sorted((r["variant"], r["seed"]) for r in rows) == sorted(c.key for c in
                                                                                       grid_cells(grid, [0]))
    again = next(r for r in rows if r["variant"] == last["variant"])
    # its run had finished, so the row is rebuilt from the run folder with the same numbers
    assert again["final_test_error_pct"] == last["final_test_error_pct"] and again["wall_s"] == last["wall_s"]


def test_rows_hold_every_config_field_and_the_results(tmp_path, tiny_mnist):
    grid, out = tiny_grid(), tmp_path / "grid"
    rows = run_grid(grid, [3], out, data_root=tiny_mnist, progress=False)
    row = next(r for r in rows if r["variant"] == "c3=full")
    config = grid.variant("c3=full").config
    assert {k: row[k] for k in config.flat() if k != "seed"} == {k: v for k, v in config.flat().items()
                                                                  if k != "seed"}
    assert row["seed"] == 3 and row["component"] == "c3" and row["value"] == "full"
    for key in ("final_train_error_pct", "final_test_error_pct", "best_train_error_pct", "best_test_error_pct",
                "wall_s"):
        assert 0 <= row[key] <= (100 if key != "wall_s" else 600)
    assert row["passes"] == 1 and row["trainable_params"] == 60_900 and row["status"] == "finished"
    run_dir = out / row["run_dir"]
    assert (run_dir / "log.jsonl").exists() and (run_dir / "test_predictions.json").exists()
    assert (run_dir / "test_outputs.npz").exists()
    # what made the row: the code's commit and the kind of machine (repro/provenance.py)
    from repro.provenance import code_commit, machine
    assert (row["commit"], row["code_dirty"]) == (code_commit()["commit"], code_commit()["code_dirty"])
    assert (row["cpu"], row["cpu_capability"]) == (machine()["cpu"], machine()["cpu_capability"])


def test_a_failed_run_is_recorded_the_grid_goes_on_and_a_rerun_retries_it(tmp_path, tiny_mnist, monkeypatch):
    grid, out = tiny_grid(), tmp_path / "grid"
    import repro.train as train_module  # run_cell imports train_seeds when it runs: patch it where it lives
    original = train_module.train_seeds

    def broken(config, *args, **kwargs):
        if config.model.c3 == "full":
            raise RuntimeError("out of memory")
        return original(config, *args, **kwargs)
    monkeypatch.setattr(train_module, "train_seeds", broken)
    monkeypatch.setitem(GRIDS, grid.name, grid)
    # through the command, which says so in its exit code
    assert main(["grid", grid.name, "--seeds", "0", "--out", str(out), "--data-root", str(tiny_mnist),
                 "--workers", "1", "--quiet"]) == GRID_RUNS_FAILED
    rows = read_rows(out / RUNS_FILE)[0]
    assert [r["status"] for r in rows] == ["finished", "failed", "finished"]
    assert "out of memory" in rows[1]["message"]
    monkeypatch.setattr(train_module, "train_seeds", original)
    rows = run_grid(grid, [0], out, data_root=tiny_mnist, progress=False)
    assert sorted(r["status"] for r in rows) == ["finished"] * 3 and len(read_rows(out / RUNS_FILE)[0]) == 3


def test_a_changed_declaration_is_refused(tmp_path, tiny_mnist):
    grid, out = tiny_grid(), tmp_path / "grid"
    run_grid(grid, [0], out, data_root=tiny_mnist, progress=False)
    changed = dataclasses.replace(grid, variants=tuple(
        dataclasses.replace(v, config=dataclasses.replace(v.config, train=dataclasses.replace(v.config.train,
                                                                                              epochs=2)))
        for v in grid.variants))
    with pytest.raises(ConfigError, match="another config"):
        run_grid(changed, [0], out, data_root=tiny_mnist, progress=False)


def test_workers_times_threads_may_not_exceed_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(grid_module.os, "cpu_count", lambda: 2)
    with pytest.raises(ConfigError, match="exceeds this machine's 2 cores"):
        run_grid(tiny_grid(), [0], tmp_path, workers=2, threads=2)


@pytest.mark.slow
def test_a_process_pool_gives_the_same_rows_as_one_process(tmp_path, tiny_mnist, monkeypatch):
    monkeypatch.setattr(grid_module.os, "cpu_count", lambda: 2)
    grid = tiny_grid()
    serial = run_grid(grid, [0], tmp_path / "serial", workers=1, data_root=tiny_mnist, progress=False)
    pooled = run_grid(grid, [0], tmp_path / "pooled", workers=2, data_root=tiny_mnist, progress=False)
    def key(r):
        return r["variant"]
    assert sorted(map(key, serial)) == sorted(map(key, pooled)) == sorted(v.name for v in grid.variants)
    for a, b in zip(sorted(serial, key=key), sorted(pooled, key=key)):
        assert a["status"] == b["status"] == "finished", (a, b)
        assert a["final_test_error_pct"] == b["final_test_error_pct"] and a["digest"] == b["digest"]


def test_missing_data_stops_the_grid_before_any_run(tmp_path):
    from repro.data import DataError
    with pytest.raises(DataError, match="MNIST"):
        run_grid(tiny_grid(), [0], tmp_path / "grid", data_root=tmp_path / "nowhere", progress=False)
    assert read_rows(tmp_path / "grid" / RUNS_FILE) == ([], 0)


def test_a_config_finished_in_another_folder_is_copied_not_trained(tmp_path, tiny_mnist):
    grid = tiny_grid()
    run_grid(grid, [0], tmp_path / "first", data_root=tiny_mnist, progress=False)
    renamed = Grid("other", "paper", "the same configs under other names",
                   tuple(dataclasses.replace(v, name=f"{v.name}-again") for v in grid.variants[:2]))
    states = dict(((c.variant, c.seed), state) for c, state in
                  grid_module.cell_states(renamed, [0, 1], tmp_path / "second", reuse=[tmp_path / "first"]))
    assert states[("paper-again", 0)] == f"to copy from {tmp_path / 'first' / 'paper' / 'seed0'}"
    assert states[("paper-again", 1)] == "to do"
    on_turn, calls = turns()
    rows = run_grid(renamed, [0, 1], tmp_path / "second", data_root=tiny_mnist, progress=False,
                    reuse=[tmp_path / "first"], on_turn=on_turn)
    assert sorted(calls) == sorted(c.key for c in grid_cells(renamed, [1]))  # seed 1 was nowhere: trained
    copied = [r for r in rows if r["seed"] == 0]
    assert len(copied) == 2 and all(r["reused_from"].startswith(str(tmp_path / "first")) for r in copied)
    first = {r["digest"]: r for r in read_rows(tmp_path / "first" / RUNS_FILE)[0]}
    for row in copied:
        assert row["final_test_error_pct"] == first[row["digest"]]["final_test_error_pct"]
        run_dir = tmp_path / "second" / row["run_dir"]
        assert (run_dir / "model.pt").exists() and not (run_dir / "checkpoint.pt").exists()
    # a copy is not offered for copying again: only the two runs trained there are
    assert sorted(seed for _, seed in grid_module.finished_runs([tmp_path / "second"])) == [1, 1]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_config_another_grid_finishes_meanwhile_is_copied_when_its_turn_comes(tmp_path, tiny_mnist, workers):
    """Two grids running side by side: a shared config the other grid finishes after this one started is
    copied, not trained again (looked up before each run, not only at the start)."""
    grid = tiny_grid()
    renamed = Grid("other", "paper", "the same configs under other names",
                   tuple(dataclasses.replace(v, name=f"{v.name}-again") for v in grid.variants[:2]))
    first_only = dataclasses.replace(grid, variants=(grid.variant("c3=full"),))
    trained = []

    def the_other_grid_runs_meanwhile(cell):
        if not trained:  # as this grid's first run's turn comes, the other finishes c3=full
            trained.append(cell.key)
            run_grid(first_only, [0], tmp_path / "first", data_root=tiny_mnist, progress=False)
    rows = run_grid(renamed, [0], tmp_path / "second", workers=workers, data_root=tiny_mnist, progress=False,
                    reuse=[tmp_path / "first"], on_turn=the_other_grid_runs_meanwhile)
    by_variant = {r["variant"]: r for r in rows}
    assert "reused_from" not in by_variant["paper-again"]
    assert by_variant["c3=full-again"]["reused_from"].startswith(str(tmp_path / "first"))
    assert (tmp_path / "second" / by_variant["c3=full-again"]["run_dir"] / "model.pt").exists()


def test_runs_are_looked_for_only_in_a_results_tree_and_foreign_files_are_skipped(tmp_path):
    grids = tmp_path / "results" / "grids"
    (grids / "other").mkdir(parents=True)
    (tmp_path / "results" / "paper_final" / "seed0").mkdir(parents=True)
    assert grid_module.reuse_sources(grids / "mine") == [grids / "other", tmp_path / "results" / "grids",
                                                          tmp_path / "results" / "paper_final"]
    assert grid_module.reuse_sources(tmp_path / "scratch" / "mine") == []
    assert grid_module.reuse_sources(tmp_path / "fresh" / "results" / "grids" / "mine") == []  # no grids/ yet
    # a runs file and a summary that are not ours (no digest, no config) are passed over, not a KeyError
    append_row(grids / "other" / RUNS_FILE, {"variant": "x", "seed": 0, "status": "finished", "run_dir": "x"})
    (tmp_path / "results" / "paper_final" / "seed0" / "summary.json").write_text('{"status": "finished"}')
    assert grid_module.finished_runs(grid_module.reuse_sources(grids / "mine")) == {}


def test_only_runs_made_by_this_code_on_this_kind_of_machine_are_copied(tmp_path):
    """A grid copies a finished run only if it was made as its own runs will be (issue 30: a ladder run from a new
    commit once copied the reference an older commit had made beside it, leaving the ladder's seed unpaired)."""
    from repro.config import run_config
    from repro.provenance import this_making

    here = this_making()
    other = {"commit": "0" * 40, "cpu": here["cpu"], "cpu_capability": here["cpu_capability"]}
    grids = tmp_path / "results" / "grids"
    (grids / "other").mkdir(parents=True)
    for seed, made in enumerate([here, other, {**here, "cpu_capability": "NONE"}, {}]):
        append_row(grids / "other" / RUNS_FILE, {"variant": "paper", "seed": seed, "status": "finished",
                                                 "run_dir": f"paper/seed{seed}", "digest": "d", **made})
    for seed, made in enumerate([here, other], start=4):  # a result folder: the machine nested, as in summary.json
        run_dir = tmp_path / "results" / "paper_final" / f"seed{seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "model.pt").write_bytes(b"")
        summary = {"status": "finished", "config": run_config("paper", {"seed": seed}).to_dict(),
                   "commit": made["commit"], "machine": {"cpu": made["cpu"], "cpu_capability": made["cpu_capability"]}}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    found = grid_module.finished_runs(grid_module.reuse_sources(grids / "mine"))
    digest = run_config("paper", {"seed": 4}).digest()
    assert found == {("d", 0): grids / "other" / "paper" / "seed0",
                     (digest, 4): tmp_path / "results" / "paper_final" / "seed4"}


def test_a_copied_runs_source_is_recorded_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert grid_module._portable(tmp_path / "results" / "modern" / "seed0") == "results/modern/seed0"
    assert grid_module._portable(Path("/elsewhere/x")) == "/elsewhere/x"


def test_set_shrinks_every_run_of_a_grid_into_its_own_folder(tmp_path, capsys):
    cells = grid_cells(GRIDS["one_at_a_time"], [0], overrides={"train_size": "2000", "epochs": "1"})
    assert {(c.config.train.train_size, c.config.train.epochs) for c in cells} == {(2000, 1)}
    # what each variant swaps is untouched
    assert {c.variant: c.config.model.activation for c in cells}["activation=relu"] == "relu"
    out = tmp_path / "smoke"
    assert main(["grid", "one_at_a_time", "--set", "train_size=2000", "epochs=1", "--out", str(out), "--seeds", "0",
                 "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "0 to copy from other folders, 15 to run or resume" in printed and "'train_size': 2000" in printed


@pytest.mark.parametrize("argv, fragment", [
    (["grid", "ladder", "--set", "epochs=1"], "give its runs their own --out"),
    (["grid", "ladder", "--set", "activation=relu", "--out", "x"], "lenet5 grid --set activation"),
])
def test_set_on_a_grid_refuses_what_would_mix_or_falsify_its_runs(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--dry-run"]) == ConfigError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_the_bar_shows_each_running_runs_passes(tmp_path):
    cell = grid_cells(GRIDS["one_at_a_time"], [3])[0]
    running = grid_module.RunningCells(tmp_path, local=True)
    assert running.describe() == ""
    running.started(cell)
    log = cell.run_dir(tmp_path) / "log.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('{"pass": 1}\n{"pass": 2}\n')
    assert running.describe() == "paper seed 3: pass 2/20"
    assert grid_module.RunningCells(tmp_path, local=False).describe() == ""
    on_ray = grid_module.RunningCells(tmp_path, local=False)
    on_ray.started(cell)
    assert on_ray.describe() == "1 run(s) on the cluster"
    running.ended(cell)
    assert running.describe() == ""
