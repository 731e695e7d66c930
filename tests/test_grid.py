"""The ablation grids: declarations, the resumable runner, the statistics and the figures."""
import dataclasses
import json
import math
import os
import re
from pathlib import Path

import pytest
import torch
from scipy import stats as scipy_stats

from repro.cli import main
from repro.config import ConfigError, config_differences, run_config
from repro.errors import GRID_RUNS_FAILED
from repro.study import grid as grid_module
from repro.study.ablation import ablation_table, table_markdown
from repro.study.comparison import COMPARISONS
from repro.study.figures import (make_grid_figures, make_showcase_figures, plot_confusion_matrix,
                                 plot_misclassified)
from repro.study.grid import RUNS_FILE, append_row, grid_cells, read_rows, run_grid
from repro.study.grids import (COMPONENTS, FASHION_SUFFIX, GRIDS, LADDER, PROTOCOLS, SDLM_ETA_BY_LOSS, STEP_SIZES, Grid,
                               Variant)
from repro.study.report import ablation_markers, write_reports
from repro.study.stats import mcnemar, paired_delta

# ---------------------------------------------------------------- declarations


# the grids of swaps from one preset (not the ladders, whose rungs accumulate): declared from their variants
SWAP_GRIDS = sorted(name for name, grid in GRIDS.items() if not any(v.name.startswith("+") for v in grid.variants))


def allowed_differences(v, protocol) -> set:
    """The fields a swap may change: its component, plus the optimizer's own settings, under SDLM the loss's eta
    for the head, and for BatchNorm what the protocol makes it carry (repro/study/grids.py)."""
    allowed = {v.component}
    if v.component == "norm":
        allowed |= set(protocol.batchnorm_fields)
    if v.component == "optimizer":
        allowed |= set(protocol.optimizer_settings[v.value]) | {"lr"}
    if v.component == "head" and v.config.train.optimizer == "sdlm":
        allowed |= {"lr"}
    return allowed


@pytest.mark.parametrize("name", SWAP_GRIDS)
def test_each_variant_differs_from_the_reference_in_exactly_one_component(name):
    grid = GRIDS[name]
    reference = grid.reference.config.flat()
    assert grid.reference.component is None and grid.reference.baseline is None
    pure = [v for v in grid.variants[1:] if not v.own_lr]
    assert [v.component for v in pure] == list(COMPONENTS)
    for v in pure:
        diff = {k for k, value in v.config.flat().items() if reference[k] != value}
        assert v.component in diff and diff <= allowed_differences(v, PROTOCOLS[grid.protocol]), (v.name, diff)
        assert v.config.flat()[v.component] == v.value, (v.name, v.config.flat()[v.component])
        assert v.baseline == grid.reference.name


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_a_variant_at_its_own_step_size_differs_from_its_pure_swap_in_lr_only(name):
    grid = GRIDS[name]
    for v in grid.variants:
        if v.own_lr:
            pure = grid.variant(v.name.split("@lr=")[0])
            assert config_differences(pure.config, v.config).keys() == {"lr"}
            assert v.config.train.lr == STEP_SIZES[name][pure.name]


@pytest.mark.parametrize("name", SWAP_GRIDS)
def test_grids_start_from_their_presets_under_their_protocols(name):
    grid = GRIDS[name]
    era = {"paper": 1, "modern": 0}[grid.preset]  # the paper preset swaps to modern values, and the reverse
    protocol = PROTOCOLS[grid.protocol]
    assert grid.reference.config.model == run_config(grid.preset).model
    assert [v.value for v in grid.variants[1:] if not v.own_lr] == [vals[era] for vals in COMPONENTS.values()]
    for v in grid.variants:
        assert all(v.config.flat()[k] == value for k, value in protocol.fields.items())
        assert v.config.loss == ("map" if v.config.model.head == "rbf" else "cross_entropy")


def test_the_references_and_step_sizes_follow_their_protocols():
    # the paper protocol's reference is the paper preset itself, so that the reproduction runs are its runs
    assert GRIDS["one_at_a_time"].reference.config == run_config("paper")
    # under the mini-batch protocol SDLM's eta follows the loss; under the paper's a pure swap keeps it
    mini, paper = GRIDS["one_at_a_time_minibatch"], GRIDS["one_at_a_time"]
    for v in (mini.reference, mini.variant("head=linear"), GRIDS["leave_one_in"].variant("optimizer=sdlm")):
        assert v.config.train.lr == SDLM_ETA_BY_LOSS[v.config.loss]
    assert SDLM_ETA_BY_LOSS["map"] != SDLM_ETA_BY_LOSS["cross_entropy"]
    assert paper.variant("head=linear").config.train.lr == paper.reference.config.train.lr
    # within a grid the digests name the runs: all distinct
    for grid in GRIDS.values():
        digests = [v.config.digest() for v in grid.variants]
        assert len(set(digests)) == len(digests), grid.name


@pytest.mark.parametrize("name", sorted(n for n in GRIDS if n.endswith(FASHION_SUFFIX)))
def test_each_fashion_mnist_grid_is_its_mnist_twin_on_the_other_dataset(name):
    twin = GRIDS[name.removesuffix(FASHION_SUFFIX)]
    pure = [v for v in GRIDS[name].variants if not v.own_lr]
    assert [v.name for v in pure] == [v.name for v in twin.variants if not v.own_lr]
    for v, w in zip(pure, twin.variants):
        assert config_differences(w.config, v.config) == {"dataset": ("mnist", "fashion_mnist")}
        assert v.baseline == w.baseline


def test_the_ladder_climbs_one_rung_at_a_time_from_the_paper_preset_to_the_modern_one():
    ladder = GRIDS["ladder"]
    rungs = [v for v in ladder.variants if not v.own_lr]
    assert rungs[0].config == run_config("paper") and [(v.component, v.value) for v in rungs[1:]] == list(LADDER)
    # every component the presets differ in is a rung, and the last rung is the modern preset at its protocol
    assert {c for c, _ in LADDER} == set(COMPONENTS) | {"protocol"}
    assert rungs[-1].config == GRIDS["leave_one_in"].reference.config
    for before, after in zip(rungs, rungs[1:]):
        assert after.baseline == before.name
        diff = set(config_differences(before.config, after.config))
        if after.component == "protocol":
            assert diff <= set(PROTOCOLS["minibatch"].fields) | {"lr"} and "batch_size" in diff
        else:
            assert after.component in diff and diff <= allowed_differences(after, PROTOCOLS["minibatch"]), diff


def test_dry_run_lists_every_variant(capsys):
    assert main(["grid", "one_at_a_time", "--dry-run", "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    n = len(GRIDS["one_at_a_time"].variants)
    assert "optimizer=adam" in out and f"{2 * n} runs: {n} variants x seeds [0, 1]" in out
    assert "to copy from other folders" in out
    if (Path(__file__).parents[1] / "results" / "paper_final" / "seed0" / "summary.json").exists():
        # the reference is the paper preset's run: copied already, or to be copied
        assert re.search(r"^  paper +seed 0: (finished|to copy from)", out, re.M), out


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_a_chosen_variant_runs_with_the_baseline_it_is_compared_with(name):
    grid = GRIDS[name]
    for v in grid.variants:
        assert grid.with_baselines([v.name]) == {v.name} | ({v.baseline} if v.baseline else set())
    with pytest.raises(ConfigError, match=f"grid {name} has no variant 'nosuch'; its variants: "):
        grid.with_baselines([grid.reference.name, "nosuch"])


def test_dry_run_of_chosen_variants_lists_only_them_and_their_baselines(capsys):
    assert main(["grid", "ladder", "--dry-run", "--variants", "+norm=batch", "--seeds", "5", "6"]) == 0
    out = capsys.readouterr().out
    assert "4 runs: 2 variants x seeds [5, 6]" in out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert listed == {"+norm=batch", "+optimizer=adam"}


# ---------------------------------------------------------------- runner


def tiny_grid(epochs: int = 1) -> Grid:
    """Three variants of the paper preset, `epochs` passes of 32 synthetic patterns."""
    def config(**swap):
        return run_config("paper", dict(epochs=epochs, batch_size=16, hessian_samples=8, **swap))
    return Grid("tiny", "paper", "a test grid", (Variant("paper", None, None, config()),
                                                Variant("c3=full", "c3", "full", config(c3="full"), baseline="paper"),
                                                Variant("pooling=max", "pooling", "max", config(pooling="max"),
                                                        baseline="paper")))


REAL_RUN_CELL = grid_module.run_cell


def count_calls(monkeypatch, fail_after=None):
    calls = []
    real = REAL_RUN_CELL

    def wrapped(cell, *args, **kwargs):
        if fail_after is not None and len(calls) == fail_after:
            raise KeyboardInterrupt  # stands in for a kill between runs
        calls.append(cell.key)
        return real(cell, *args, **kwargs)
    monkeypatch.setattr(grid_module, "run_cell", wrapped)
    return calls


def test_an_interrupted_grid_does_only_the_rest(tmp_path, tiny_mnist, monkeypatch):
    grid, out = tiny_grid(), tmp_path / "grid"
    count_calls(monkeypatch, fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False)
    assert len(read_rows(out / RUNS_FILE)[0]) == 4
    calls = count_calls(monkeypatch)
    rows = run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False)
    assert calls == [c.key for c in grid_cells(grid, [0, 1])][4:]
    keys = [(r["variant"], r["seed"]) for r in read_rows(out / RUNS_FILE)[0]]
    assert sorted(keys) == sorted(c.key for c in grid_cells(grid, [0, 1])) and len(rows) == 6
    assert all(r["status"] == "finished" for r in rows)
    # a third start has nothing left to do
    calls = count_calls(monkeypatch)
    run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False)
    assert calls == []


def test_a_stop_between_two_runs_starts_no_further_run(tmp_path, tiny_mnist, monkeypatch):
    """SIGTERM to a one-worker grid just as a run ends: the driver starts nothing more (nor loads data for it),
    records no row for the cells it skips and raises Interrupted; it does not walk on through the queue."""
    import signal

    from repro import interrupt
    from repro.errors import Interrupted

    grid, out = tiny_grid(), tmp_path / "grid"
    calls, real = [], REAL_RUN_CELL

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
def test_a_run_killed_mid_way_is_resumed_from_its_checkpoint(tmp_path, tiny_mnist, monkeypatch):
    import subprocess
    import sys

    from repro.train import EXIT_AT_STEP_ENV
    grid, out = tiny_grid(epochs=2), tmp_path / "grid"
    cell = grid_cells(grid, [0])[0]
    # a real process exit in pass 2 (2 steps per pass), after pass 1's checkpoint
    script = (f"import torch; torch.set_num_threads(1); "
              f"from repro.config import RunConfig; from repro.train import train; "
              f"train(RunConfig.from_dict({cell.config.to_dict()!r}), {str(cell.run_dir(out))!r}, "
              f"{str(tiny_mnist)!r}, progress=False)")
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ, EXIT_AT_STEP_ENV: "3"})
    assert killed.returncode == 137 and (cell.run_dir(out) / "checkpoint.pt").exists()
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


def test_a_grid_limited_to_some_variants_runs_only_their_cells(tmp_path, tiny_mnist, monkeypatch):
    grid, out = tiny_grid(), tmp_path / "grid"
    calls = count_calls(monkeypatch)
    chosen = grid.with_baselines(["c3=full"])
    rows = run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False, variants=chosen)
    assert sorted(calls) == [("c3=full", 0), ("c3=full", 1), ("paper", 0), ("paper", 1)]
    assert sorted((r["variant"], r["seed"]) for r in rows) == sorted(calls)
    # the whole grid afterwards trains only the variant left out
    calls = count_calls(monkeypatch)
    run_grid(grid, [0, 1], out, data_root=tiny_mnist, progress=False)
    assert sorted(calls) == [("pooling=max", 0), ("pooling=max", 1)]


def test_a_row_cut_short_is_detected_and_the_run_recorded_again(tmp_path, tiny_mnist, monkeypatch):
    grid, out = tiny_grid(), tmp_path / "grid"
    run_grid(grid, [0], out, data_root=tiny_mnist, progress=False)
    lines = (out / RUNS_FILE).read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    (out / RUNS_FILE).write_text("".join(lines[:-1]) + lines[-1][:40])  # killed mid-write
    rows, damaged = read_rows(out / RUNS_FILE)
    assert damaged == 1 and len(rows) == 2
    calls = count_calls(monkeypatch)
    run_grid(grid, [0], out, data_root=tiny_mnist, progress=False)
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


# ---------------------------------------------------------------- statistics


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


def write_synthetic_grid(grid_dir, errors: dict[str, list[float]], n_test=20, passes=3, diverged=(), collapsed=()):
    """A runs file, per-run logs and predictions: variant v's seed s gets errors[v][s] % test error (a `collapsed`
    (variant, seed) ends at chance on the training set, 88.76%, whatever its test error)."""
    grid_dir.mkdir(parents=True)
    for variant, per_seed in errors.items():
        for seed, err in enumerate(per_seed):
            run_dir = f"{variant.replace('=', '-')}/seed{seed}"
            (grid_dir / run_dir).mkdir(parents=True)
            wrong = round(err / 100 * n_test)
            labels = [i % 10 for i in range(n_test)]
            preds = [(y + 1) % 10 if i < wrong else y for i, y in enumerate(labels)]
            (grid_dir / run_dir / "test_predictions.json").write_text(json.dumps({"labels": labels,
                                                                                  "predictions": preds}))
            log = [{"pass": p + 1, "train_error_pct": err / 2 + passes - p, "test_error_pct": err + passes - p - 1}
                   for p in range(passes)]
            (grid_dir / run_dir / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
            status = "diverged" if (variant, seed) in diverged else "finished"
            append_row(grid_dir / RUNS_FILE, {"variant": variant, "seed": seed, "run_dir": run_dir, "status": status,
                                              "final_test_error_pct": err,
                                              "final_train_error_pct": 88.76 if (variant, seed) in collapsed
                                              else err / 2,
                                              "passes": passes})


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


# ---------------------------------------------------------------- figures


def test_every_ablation_figure_builds_from_synthetic_results(tmp_path):
    results = tmp_path / "results"
    for name, grid in GRIDS.items():
        write_synthetic_grid(results / "grids" / name,
                             {v.name: [1.0 + i / 10, 1.2 + i / 10, 0.9 + i / 5] for i, v in enumerate(grid.variants)})
    paths = make_grid_figures(tmp_path / "figures", results)
    assert [p.name for p in paths] == [f"ablation_{name}{kind}.png" for name in GRIDS for kind in ("", "_curves")] \
        + [c.figure for c in COMPARISONS]
    assert all(p.stat().st_size > 5000 for p in paths)


def test_a_grid_with_only_its_reference_draws_no_deltas_and_the_comparison_keeps_the_other_grids_swaps(
        tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from repro.study import figures
    results = tmp_path / "results"
    write_synthetic_grid(results / "grids" / "one_at_a_time", {"paper": [1.0, 1.1]})
    write_synthetic_grid(results / "grids" / "one_at_a_time_minibatch",
                         {"paper": [2.0, 2.1], "c3=full": [1.5, 1.7], "norm=batch": [1.0, 1.2]})
    drawn = {}
    real = figures._dot_whiskers

    def spy(ax, series, labels):
        drawn["labels"], drawn["series"] = labels, series
        real(ax, series, labels)

    monkeypatch.setattr(figures, "_dot_whiskers", spy)
    paths = make_grid_figures(tmp_path / "figures", results)
    plt.close("all")
    names = [p.name for p in paths]
    # the reference alone has no delta to draw; its curves are drawn
    assert "ablation_one_at_a_time.png" not in names and "ablation_one_at_a_time_curves.png" in names
    assert names[-1] == "ablation_protocols.png"
    # the comparison (drawn last) shows the swaps either grid has, not none
    assert drawn["labels"] == ["norm=batch", "c3=full"]
    assert [s[1] for s in drawn["series"]][1] == pytest.approx([-0.95, -0.45])


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


def test_showcase_figures_build_from_a_synthetic_run(tmp_path, tiny_mnist):
    from repro.model import LeNet5
    from repro.study.figures import SHOWCASE_RUN
    run = tmp_path / "results" / SHOWCASE_RUN
    run.mkdir(parents=True)
    torch.save({"model": LeNet5(run_config("paper").model).state_dict()}, run / "model.pt")
    labels = [i % 10 for i in range(16)]
    preds = [(y + 3) % 10 if y in (2, 5) else y for y in labels]
    (run / "test_predictions.json").write_text(json.dumps({"labels": labels, "predictions": preds}))
    paths = make_showcase_figures(tmp_path / "figures", tmp_path / "results", tiny_mnist)
    assert [p.name for p in paths] == ["c1_kernels.png", "confusion_paper.png", "misclassified_paper.png"]
    # without MNIST the digit images are skipped, not the others
    assert len(make_showcase_figures(tmp_path / "f2", tmp_path / "results", tmp_path / "nowhere")) == 2
    images = torch.rand(16, 28, 28).numpy()
    assert plot_misclassified(images, labels, labels, "none wrong", tmp_path / "m.png").exists()
    assert plot_confusion_matrix(labels, preds, "t", tmp_path / "c.png").stat().st_size > 1000


def test_missing_data_stops_the_grid_before_any_run(tmp_path):
    from repro.data import DataError
    with pytest.raises(DataError, match="MNIST"):
        run_grid(tiny_grid(), [0], tmp_path / "grid", data_root=tmp_path / "nowhere", progress=False)
    assert read_rows(tmp_path / "grid" / RUNS_FILE) == ([], 0)


COMMITTED_GRIDS = Path(__file__).parent.parent / "results" / "grids"


@pytest.mark.parametrize("name", sorted(n for n in GRIDS if (COMMITTED_GRIDS / n / RUNS_FILE).exists()))
def test_committed_rows_keep_their_names(name):
    """Config fields added since the grids ran leave their digests unchanged (RunConfig.digest)."""
    rows, _ = read_rows(COMMITTED_GRIDS / name / RUNS_FILE)
    declared = {c.key: c.config.digest() for c in grid_cells(GRIDS[name], sorted({r["seed"] for r in rows}))}
    assert rows and all(declared[(r["variant"], r["seed"])] == r["digest"] for r in rows)


def test_every_committed_grid_folder_is_a_declared_grid():
    folders = {p.parent.name for p in COMMITTED_GRIDS.glob(f"*/{RUNS_FILE}")}
    assert {"leave_one_in"} <= folders <= set(GRIDS)


def test_a_config_finished_in_another_folder_is_copied_not_trained(tmp_path, tiny_mnist, monkeypatch):
    grid = tiny_grid()
    run_grid(grid, [0], tmp_path / "first", data_root=tiny_mnist, progress=False)
    renamed = Grid("other", "paper", "the same configs under other names",
                   tuple(dataclasses.replace(v, name=f"{v.name}-again") for v in grid.variants[:2]))
    states = dict(((c.variant, c.seed), state) for c, state in
                  grid_module.cell_states(renamed, [0, 1], tmp_path / "second", reuse=[tmp_path / "first"]))
    assert states[("paper-again", 0)] == f"to copy from {tmp_path / 'first' / 'paper' / 'seed0'}"
    assert states[("paper-again", 1)] == "to do"
    calls = count_calls(monkeypatch)
    rows = run_grid(renamed, [0, 1], tmp_path / "second", data_root=tiny_mnist, progress=False,
                    reuse=[tmp_path / "first"])
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
def test_a_config_another_grid_finishes_meanwhile_is_copied_when_its_turn_comes(tmp_path, tiny_mnist, monkeypatch,
                                                                                 workers):
    """Two grids running side by side: a shared config the other grid finishes after this one started is
    copied, not trained again (looked up before each run, not only at the start)."""
    grid = tiny_grid()
    renamed = Grid("other", "paper", "the same configs under other names",
                   tuple(dataclasses.replace(v, name=f"{v.name}-again") for v in grid.variants[:2]))
    first_only = dataclasses.replace(grid, variants=(grid.variant("c3=full"),))
    trained = []
    real = grid_module._copy_if_finished_elsewhere

    def the_other_grid_runs_meanwhile(cell, out, reuse):
        if not trained:  # while this grid starts its first run, the other finishes c3=full
            trained.append(cell.key)
            run_grid(first_only, [0], tmp_path / "first", data_root=tiny_mnist, progress=False)
        return real(cell, out, reuse)
    monkeypatch.setattr(grid_module, "_copy_if_finished_elsewhere", the_other_grid_runs_meanwhile)
    rows = run_grid(renamed, [0], tmp_path / "second", workers=workers, data_root=tiny_mnist, progress=False,
                    reuse=[tmp_path / "first"])
    by_variant = {r["variant"]: r for r in rows}
    assert "reused_from" not in by_variant["paper-again"]
    assert by_variant["c3=full-again"]["reused_from"].startswith(str(tmp_path / "first"))
    assert (tmp_path / "second" / by_variant["c3=full-again"]["run_dir"] / "model.pt").exists()


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


def test_a_copied_runs_source_is_recorded_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert grid_module._portable(tmp_path / "results" / "modern" / "seed0") == "results/modern/seed0"
    assert grid_module._portable(Path("/elsewhere/x")) == "/elsewhere/x"


def test_ladder_waterfall_shows_every_rung_inside_its_range_and_where_the_protocol_changes(tmp_path, monkeypatch):
    from repro.study import figures
    from repro.study.ablation import grid_table
    saved = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.setdefault("fig", fig) and path)
    ladder = GRIDS["ladder"]
    rungs = [v for v in ladder.variants if not v.own_lr]
    # one seed, no interval: the lowest rung is a bar's bottom, which autoscaling would put on the axis
    write_synthetic_grid(tmp_path / "ladder", {v.name: [1.1 - i / 20] for i, v in enumerate(rungs)})
    figures.plot_ladder(grid_table(tmp_path / "ladder", ladder), ladder, "t", tmp_path / "l.png")
    ax = saved["fig"].axes[0]
    lowest = 1.1 - (len(rungs) - 1) / 20
    assert ax.get_ylim()[0] < lowest - 0.005 and ax.get_ylim()[1] > 1.1 + 0.005
    lines = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert lines == [[v.name for v in rungs].index("+protocol=minibatch") - 0.5]
