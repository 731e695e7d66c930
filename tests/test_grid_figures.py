"""The grid and showcase figures (repro/study/figures.py), built from results written without training
(helpers/grid_data.py) or from a synthetic run: every figure builds, and what the comparison and the ladder's
waterfall draw."""
import json

import matplotlib.pyplot as plt
import pytest
import torch

from helpers.grid_data import write_synthetic_grid
from repro.config import run_config
from repro.study.ablation import grid_table
from repro.study.comparison import COMPARISONS, component_deltas
from repro.study.figures import (ladder_figure, make_grid_figures, make_showcase_figures, plot_confusion_matrix,
                                 plot_misclassified, protocol_comparison_figure)
from repro.study.grids import GRIDS


def test_every_ablation_figure_builds_from_synthetic_results(tmp_path):
    results = tmp_path / "results"
    for name, grid in GRIDS.items():
        write_synthetic_grid(results / "grids" / name,
                             {v.name: [1.0 + i / 10, 1.2 + i / 10, 0.9 + i / 5] for i, v in enumerate(grid.variants)})
    paths = make_grid_figures(tmp_path / "figures", results)
    assert [p.name for p in paths] == [f"ablation_{name}{kind}.png" for name in GRIDS for kind in ("", "_curves")] \
        + [c.figure for c in COMPARISONS]
    assert all(p.stat().st_size > 5000 for p in paths)


def test_a_grid_with_only_its_reference_draws_no_deltas_and_the_comparison_keeps_the_other_grids_swaps(tmp_path):
    results = tmp_path / "results"
    write_synthetic_grid(results / "grids" / "one_at_a_time", {"paper": [1.0, 1.1]})
    write_synthetic_grid(results / "grids" / "one_at_a_time_minibatch",
                         {"paper": [2.0, 2.1], "c3=full": [1.5, 1.7], "norm=batch": [1.0, 1.2]})
    paths = make_grid_figures(tmp_path / "figures", results)
    names = [p.name for p in paths]
    # the reference alone has no delta to draw; its curves are drawn
    assert "ablation_one_at_a_time.png" not in names and "ablation_one_at_a_time_curves.png" in names
    assert names[-1] == "ablation_protocols.png"
    # the comparison (drawn last, from both grids' deltas) shows the swaps either grid has, not none
    deltas = {name: component_deltas(results / "grids" / name, GRIDS[name])
              for name in ("one_at_a_time", "one_at_a_time_minibatch")}
    ax = protocol_comparison_figure(deltas, "t").axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["norm=batch", "c3=full"]
    drawn = [list(series.lines[0].get_xdata()) for series in ax.containers]  # one errorbar series per grid
    assert len(drawn) == 2 and drawn[1] == pytest.approx([-0.95, -0.45])
    plt.close(ax.figure)


def test_ladder_waterfall_shows_every_rung_inside_its_range_and_where_the_protocol_changes(tmp_path):
    ladder = GRIDS["ladder"]
    rungs = [v for v in ladder.variants if not v.own_lr]
    # one seed, no interval: the lowest rung is a bar's bottom, which autoscaling would put on the axis
    write_synthetic_grid(tmp_path / "ladder", {v.name: [1.1 - i / 20] for i, v in enumerate(rungs)})
    ax = ladder_figure(grid_table(tmp_path / "ladder", ladder), ladder, "t").axes[0]
    lowest = 1.1 - (len(rungs) - 1) / 20
    assert ax.get_ylim()[0] < lowest - 0.005 and ax.get_ylim()[1] > 1.1 + 0.005
    lines = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert lines == [[v.name for v in rungs].index("+protocol=minibatch") - 0.5]
    plt.close(ax.figure)


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
