import json
import math
from pathlib import Path

import pytest

from repro.cli import main
from repro.study.figures import make_all_figures, make_fig6, training_size_points
from repro.study.report import mean_ci, refresh_readme, reproduction_table, write_reports


def test_mean_ci_matches_hand_computation():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    # sd = 1, t_{0.975, 2} = 4.302653, half-width = t * sd / sqrt(3)
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(mean_ci([1.5])[1])


def write_run(results, preset, seed, test, train, passes=3):
    run = results / preset / f"seed{seed}"
    run.mkdir(parents=True)
    log = [{"pass": p + 1, "train_error_pct": train + (passes - p), "test_error_pct": test + (passes - p) / 2}
           for p in range(passes)]
    (run / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in log))
    (run / "summary.json").write_text(json.dumps({"status": "finished", "final_test_error_pct": test,
                                                  "final_train_error_pct": train, "passes": passes,
                                                  "config": {"train": {"seed": seed}}}))


def test_reproduction_table_and_readme_refresh(tmp_path):
    results = tmp_path / "results"
    write_run(results, "paper_final", 0, 1.0, 0.4)
    write_run(results, "paper_final", 1, 1.2, 0.2)
    write_run(results, "paper_distortions", 0, 0.9, 0.5)
    table = reproduction_table(results)
    assert "| paper | 0, 1 | 1.10 ± 1.27 | 1.00, 1.20 | 0.30 ± 1.27 | 0.95 / 0.35 | 3 |" in table
    assert "| paper_distortions | 0 | 0.90 | 0.90 | 0.50 | 0.8 / – | 3 |" in table
    assert "modern" not in table and "first 15,000" not in table
    write_run(results, "paper_n15000", 0, 1.5, 0.1)
    assert "| paper, first 15,000 patterns | 0 | 1.50 |" in reproduction_table(results)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- reproduction-table:begin (lenet5 report) -->\nold\n"
                      "<!-- reproduction-table:end -->\noutro\n")
    assert [p.name for p in write_reports(results, readme)] == ["reproduction.md", "README.md"]
    text = readme.read_text()
    assert "old" not in text and "1.10 ± 1.27" in text and text.endswith("outro\n")
    assert not refresh_readme(tmp_path / "results" / "reproduction.md", table)


def test_all_figures_build_from_synthetic_results(tmp_path, capsys):
    results = tmp_path / "results"
    for seed in range(2):
        write_run(results, "paper_compiled", seed, 1.0 + seed / 10, 0.3)
    write_run(results, "modern", 0, 1.3, 0.8)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "ablation_leave_one_in.png").write_bytes(b"a grid whose runs are gone")
    (tmp_path / "figures" / "mine.png").write_bytes(b"not ours")
    assert main(["figures", "--out", str(tmp_path / "figures"), "--results", str(results)]) == 0  # as a user runs it
    paths = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert not (tmp_path / "figures" / "ablation_leave_one_in.png").exists()
    assert (tmp_path / "figures" / "mine.png").exists()
    assert [p.name for p in paths] == ["rbf_prototypes.png", "c3_table.png", "fig5_error_vs_pass.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert len(make_all_figures(tmp_path / "static", tmp_path / "none")) == 2


def test_fig6_points_follow_the_training_size_folders(tmp_path):
    results = tmp_path / "results"
    write_run(results, "paper_final", 0, 1.0, 0.3)
    write_run(results, "paper_final", 1, 1.2, 0.5)
    write_run(results, "paper_n15000", 0, 2.0, 0.1)
    write_run(results, "paper_distortions_n30000", 0, 1.4, 0.9)
    points = training_size_points(results)
    assert points[("paper", "test")][0] == (15_000, 2.0, pytest.approx(float("nan"), nan_ok=True))
    size, mean, half = points[("paper", "test")][1]
    assert (size, mean) == (60_000, pytest.approx(1.1)) and half == pytest.approx(mean_ci([1.0, 1.2])[1])
    assert points[("paper", "training")][1][1] == pytest.approx(0.4)
    assert points[("paper_distortions", "training")] == [(30_000, 0.9, pytest.approx(float("nan"), nan_ok=True))]
    assert [p.name for p in make_fig6(tmp_path / "figures", results)] == ["fig6_error_vs_training_size.png"]
    assert make_fig6(tmp_path / "none", tmp_path / "empty") == []


def test_labels_of_close_points_do_not_overlap():
    """Two swaps whose deltas nearly coincide (tanh and the C3 table on the datasets figure) each get a readable
    label: no two label boxes overlap once drawn."""
    import matplotlib.pyplot as plt

    from repro.study.figures import label_points

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    points = [(0.10, 0.20), (0.11, 0.21), (0.12, 0.19), (0.105, 0.205), (-0.5, 0.4)]
    ax.plot(*zip(*points), "o")
    texts = label_points(ax, points, ["activation=tanh", "c3=table", "init=lecun", "pooling=trainable", "far"])
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in texts]
    plt.close(fig)
    assert [t.get_text() for t in texts].count("far") == 1
    assert not [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]


def test_the_programme_status_counts_each_pure_swaps_seeds(tmp_path):
    from helpers.grid_data import write_synthetic_grid
    from repro.study.grid import RUNS_FILE, append_row
    from repro.study.report import programme_status

    grid_dir = tmp_path / "grids" / "one_at_a_time"
    write_synthetic_grid(grid_dir, {"paper": [1.0, 1.1], "c3=full": [1.2]}, diverged={("c3=full", 0)})
    append_row(grid_dir / RUNS_FILE, {"variant": "paper", "seed": 10, "run_dir": "paper/seed10", "status": "finished"})
    append_row(grid_dir / RUNS_FILE, {"variant": "c3=full", "seed": 11, "run_dir": "c3-full/seed11",
                                      "status": "failed"})  # a failed run is retried, not counted
    amd = {"commit": "b10f157aaaa", "cpu": "AMD EPYC", "cpu_capability": "AVX2"}
    append_row(grid_dir / RUNS_FILE, {"variant": "paper", "seed": 12, "run_dir": "paper/seed12", "status": "finished",
                                      **amd})
    append_row(grid_dir / RUNS_FILE, {"variant": "c3=full", "seed": 12, "run_dir": "c3-full/seed12",
                                      "status": "finished", **amd, "cpu": "Intel Xeon", "cpu_capability": "AVX512"})
    status = programme_status(tmp_path)
    assert "| `one_at_a_time` | `paper` | 4 | 2 | – |" in status
    # its diverged seed ran; its seed 12 is not paired: the reference's was made on another kind of machine
    assert "| `one_at_a_time` | `c3=full` | 2 | 1 | 1 |" in status
    assert "| `one_at_a_time` | `pooling=max` | 0 | 0 | 0 |" in status
    assert "| `ladder` | `+norm=batch` | 0 | 0 | 0 |" in status  # no rows yet
    assert "@lr=" not in status  # the variants at their own step sizes stay at 5 seeds
    assert "under results/ take 0.0 MB in 0 files" in status  # no run here kept outputs
    assert "lenet5 grid ladder --seeds 10 11 12" in status
    assert "lenet5 grid one_at_a_time --seeds 11 13 14" in status  # seeds 10 and 12 are begun
    assert ("`one_at_a_time` seed 10 (unknown on None (None)), `one_at_a_time` seed 12 (b10f157 on AMD EPYC (AVX2); "
            "b10f157 on Intel Xeon (AVX512))") in status


def test_the_programme_size_counts_the_committed_files_of_its_finished_runs(tmp_path):
    from repro.study.report import programme_size

    assert programme_size(tmp_path) == "The 20-seed programme has no finished run yet."
    for run, files in {"one_at_a_time/paper/seed10": {"summary.json": 400, "test_outputs.npz": 1600,
                                                       "checkpoint.pt": 10**6, "model.pt": 10**6, "x.tmp": 10**6},
                       "ladder/+c3-full/seed24": {"summary.json": 1000},
                       "ladder/+c3-full/seed3": {"summary.json": 10**6},  # not one of the programme's seeds
                       "ladder/+c3-full/seed11": {"log.jsonl": 10**6},  # not finished: no summary.json
                       "one_at_a_time_minibatch/paper/seed12": {"summary.json": 10**6}}.items():  # not its grid
        (tmp_path / "grids" / run).mkdir(parents=True)
        for name, size in files.items():
            (tmp_path / "grids" / run / name).write_bytes(b"x" * size)
    assert programme_size(tmp_path).startswith("The 20-seed programme's 2 finished runs so far (seeds 10-24 of "
                                               "`one_at_a_time` and `ladder`) have added 0.0 MB of files to the "
                                               "repository, 2 kB a run")
