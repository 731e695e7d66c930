"""Every figure of the project, built by `lenet5 figures` from the code and from committed results only.

Nothing here trains. Static figures: the RBF prototypes (cf. Fig. 3) and Table I. From results/: test and
training error per pass of the reproduction runs (cf. Fig. 5) and against the training-set size (cf. Fig. 6);
the paper preset's learned C1 kernels, confusion matrix and misclassified test digits, and the distortion-trained
network's misclassified test digits (cf. Fig. 8); for each ablation grid, the deltas against its reference and
the test error per pass of every variant; and the same swaps compared across two grids (two protocols, two
datasets; repro/study/comparison.py).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FormatStrFormatter, MaxNLocator, NullFormatter  # noqa: E402

from ..components import c3_connection_mask  # noqa: E402
from ..prototypes import HEIGHT, WIDTH, rbf_prototypes  # noqa: E402

from ..run_folder import (SEED_FOLDERS, RunPaths, read_log, read_outputs,  # noqa: E402
                          read_predictions, read_run_config, read_weights)

if TYPE_CHECKING:
    import pandas as pd


def plot_rbf_prototypes(path: Path) -> Path:
    """The ten 7x12 prototypes of the RBF output layer, ink black as on paper."""
    protos = rbf_prototypes().reshape(10, HEIGHT, WIDTH)
    fig, axes = plt.subplots(1, 10, figsize=(10, 2.2))
    for digit, ax in enumerate(axes):
        ax.imshow(-protos[digit].numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(str(digit))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("RBF output prototypes: our 7x12 drawing after Fig. 3 (+1 ink, -1 background)", fontsize=10)
    return _save(fig, path)


def plot_c3_table(path: Path) -> Path:
    """Table I: which S2 maps (rows) feed each C3 map (columns)."""
    mask = c3_connection_mask().T.numpy()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.imshow(~mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(mask.shape[1]))
    ax.set_yticks(range(mask.shape[0]))
    ax.set_xlabel("C3 feature map")
    ax.set_ylabel("S2 feature map")
    ax.set_title(f"Table I: S2 -> C3 connections ({int(mask.sum())} of {mask.size} used)")
    return _save(fig, path)


# Sec. III-C, Fig. 5: LeNet-5 without distortions.
PAPER_TEST_ERROR_PCT = 0.95
PAPER_TRAIN_ERROR_PCT = 0.35


def plot_error_vs_pass(groups: dict[str, list[Path]], path: Path,
                       paper: dict[str, tuple[float | None, float | None]] | None = None) -> Path:
    """Cf. Fig. 5: training and test error per pass, one panel per group of runs (one line per seed), with the
    paper's test and training error for the group (`paper[title]`; default 0.95% and 0.35%, Sec. III-C) as
    reference lines."""
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (title, run_dirs) in zip(axes[0], groups.items()):
        paper_test, paper_train = (paper or {}).get(title, (PAPER_TEST_ERROR_PCT, PAPER_TRAIN_ERROR_PCT))
        for i, run_dir in enumerate(run_dirs):
            log = read_log(run_dir)
            passes = [e["pass"] for e in log]
            label = run_dir.name
            ax.plot(passes, [e["test_error_pct"] for e in log], "-o", ms=3, color="C0", alpha=0.8,
                    label="test" if i == 0 else None)
            ax.plot(passes, [e["train_error_pct"] for e in log], "--o", ms=3, color="C1", alpha=0.8,
                    label="training" if i == 0 else None)
            ax.annotate(label, (passes[-1], log[-1]["test_error_pct"]), fontsize=7, xytext=(3, 0),
                        textcoords="offset points")
        if paper_test is not None:
            ax.axhline(paper_test, color="C0", lw=0.8, ls=":", label=f"paper test {paper_test:g}%")
        if paper_train is not None:
            ax.axhline(paper_train, color="C1", lw=0.8, ls=":", label=f"paper training {paper_train:g}%")
        _error_per_pass_axes(ax, [0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20, 50], "error (%)")
        ax.set_title(title)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _error_per_pass_axes(ax, ticks: list[float], ylabel: str) -> None:
    """Log error axis labelled at `ticks`, integer passes, grid: shared by the per-pass plots."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("pass through the training set")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_static_figures(out_dir: Path) -> list[Path]:
    return [plot_rbf_prototypes(out_dir / "rbf_prototypes.png"), plot_c3_table(out_dir / "c3_table.png")]


# the reproduction groups Fig. 5's panels show: the paper preset now, with distortions, and before its schedule
FIG5_GROUPS = ("paper_final", "paper_distortions", "paper_compiled")


def reproduction_runs(results: Path) -> tuple[dict[str, list[Path]], dict[str, tuple]]:
    """results/<folder>/seed<N>/ folders that hold a log, grouped as the reproduction table groups them, and
    each group's (paper test error, paper training error)."""
    from .report import RESULT_GROUPS

    groups, paper = {}, {}
    for folder, label, _command, paper_values in RESULT_GROUPS:
        if folder not in FIG5_GROUPS:
            continue
        runs = sorted(d for d in (results / folder).glob(SEED_FOLDERS) if RunPaths(d).log.exists())
        if runs:
            groups[f"preset {label}"] = runs
            paper[f"preset {label}"] = paper_values or (None, None)
    return groups, paper


def _dot_whiskers(ax, series: list[tuple[str, list, list, str]], labels: list[str]) -> None:
    """Horizontal dot-and-whisker rows, one per label, with several series offset vertically."""
    y = list(range(len(labels)))
    for k, (name, deltas, halves, marker) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * 0.25
        halves = [0.0 if h != h else h for h in halves]  # NaN half-width (one seed): no whisker
        ax.errorbar(deltas, [v + offset for v in y], xerr=halves, fmt=marker, color=f"C{k}", capsize=3, label=name)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)


def plot_ablation_deltas(deltas, title: str, path: Path) -> Path:
    """Dot-and-whisker: each swap's test-error difference from the reference (paired by seed, 95% t-interval),
    sorted by effect, as a pure swap and, where chosen, at the swap's own step size; left of zero is better."""
    rows = deltas.dropna(subset=["delta"]).sort_values("delta")
    fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(rows) + 1.8))
    series = [("pure swap (the protocol's step size)", list(rows["delta"]), list(rows["half"]), "o")]
    if rows["own_delta"].notna().any():
        series.append(("at its own step size (vs the reference at its own)", list(rows["own_delta"]),
                       list(rows["own_half"]), "s"))
    _dot_whiskers(ax, series, list(rows["variant"]))
    ax.set_xlabel("test error minus the reference's, percentage points (mean over seeds ± 95% CI)")
    ax.set_title(title, fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_protocol_comparison(deltas: dict[str, "pd.DataFrame"], title: str, path: Path) -> Path:
    """protocol_comparison_figure, saved to `path`."""
    return _save(protocol_comparison_figure(deltas, title), path)


def protocol_comparison_figure(deltas: dict[str, "pd.DataFrame"], title: str):
    """The same swaps' deltas under several protocols (one series per protocol): every swap that has a delta under
    any of them, in the first protocol's order, then the swaps that only the others have so far."""
    labels: list[str] = []
    for frame in deltas.values():
        ordered = frame.dropna(subset=["delta"]).sort_values("delta")["variant"]
        labels += [v for v in ordered if v not in labels]
    series = []
    for k, (name, frame) in enumerate(deltas.items()):
        by = frame.set_index("variant")
        series.append((name, [by["delta"].get(v, math.nan) for v in labels],
                       [by["half"].get(v, math.nan) for v in labels], "os^"[k % 3]))
    fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(labels) + 1.8))
    _dot_whiskers(ax, series, labels)
    ax.set_xlabel("test error minus the reference's, percentage points (pure swaps, mean over seeds ± 95% CI)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def plot_ladder(table, grid, title: str, path: Path) -> Path:
    """ladder_figure, saved to `path`."""
    return _save(ladder_figure(table, grid, title), path)


def ladder_figure(table, grid, title: str):
    """Waterfall: each rung's mean test error with its 95% interval, a bar from the rung before showing the
    step; the pure rungs, and where chosen each rung at its own step size."""
    rungs = [v.name for v in grid.variants if not v.own_lr]
    by = table.set_index("variant")
    means = [by["test_mean"].get(r, math.nan) for r in rungs]
    half = by["test_half"].fillna(0.0)  # one seed: no interval
    halves = [half.get(r, 0.0) for r in rungs]
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(rungs)), 4.5))
    x = list(range(len(rungs)))
    for k in range(1, len(rungs)):
        if means[k] == means[k] and means[k - 1] == means[k - 1]:
            low, high = sorted((means[k - 1], means[k]))
            ax.bar(k, high - low, bottom=low, width=0.6, color="C3" if means[k] > means[k - 1] else "C2",
                   alpha=0.5)
    ax.errorbar(x, means, yerr=halves, fmt="o", color="k", capsize=3, label="pure rung")
    own = [v for v in grid.variants if v.own_lr]
    own_means = [by["test_mean"].get(v.name, math.nan) for v in own]
    own_halves = [half.get(v.name, 0.0) for v in own]
    if own:
        xs = [rungs.index(v.name.split("@lr=")[0]) + 0.2 for v in own]
        ax.errorbar(xs, own_means, yerr=own_halves, fmt="s", color="C0", capsize=3, label="at its own step size")
    # the bars' bottoms are sticky for autoscaling, which would put the lowest rung on the axis: set the range
    ends = [(m - h, m + h) for m, h in zip(means + own_means, halves + own_halves) if m == m]
    if ends:
        low, high = min(e[0] for e in ends), max(e[1] for e in ends)
        pad = 0.08 * max(high - low, 0.1)
        ax.set_ylim(low - pad, high + pad)
    protocols = [grid.protocol_of(v).name for v in grid.variants if not v.own_lr]
    for k in range(1, len(rungs)):
        if protocols[k] != protocols[k - 1]:  # where the rungs leave the paper's protocol
            ax.axvline(k - 0.5, color="0.5", ls="--", lw=1)
            ax.text(k - 0.45, 1.0, f" {protocols[k]} protocol ->", transform=ax.get_xaxis_transform(), va="top",
                    fontsize=7, color="0.4")
            ax.text(k - 0.55, 1.0, f"<- {protocols[k - 1]} protocol ", transform=ax.get_xaxis_transform(),
                    va="top", ha="right", fontsize=7, color="0.4")
    ax.set_xticks(x)
    ax.set_xticklabels(rungs, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test error %, mean over seeds ± 95% CI")
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def plot_grid_curves(rows: list[dict], grid_dir: Path, order: list[str], title: str, path: Path) -> Path:
    """Test error per pass for each variant of a grid (`order`, the reference first): the mean over the seeds
    that trained, as in the tables (repro/study/ablation.py, `outcome`); the label counts those left out."""
    from .ablation import outcome

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, name in enumerate(order):
        runs = [r for r in rows if r["variant"] == name and r["status"] == "finished"]
        logs = [read_log(grid_dir / r["run_dir"]) for r in runs if outcome(r) == "trained"]
        if not logs:
            continue
        passes = min(len(log) for log in logs)
        mean = [sum(log[p]["test_error_pct"] for log in logs) / len(logs) for p in range(passes)]
        label = f"{name} (reference)" if i == 0 else name
        if len(logs) < len(runs):
            label += f" ({len(runs) - len(logs)} collapsed, left out)"
        ax.plot(range(1, passes + 1), mean, "-o", ms=3, lw=2.2 if i == 0 else 1.2,
                color="k" if i == 0 else f"C{(i - 1) % 10}", label=label)
    _error_per_pass_axes(ax, [0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20, 50, 90], "test error (%), mean over seeds")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_c1_kernels(kernels, title: str, path: Path) -> Path:
    """The learned 5x5 C1 kernels (6 x 1 x 5 x 5), each on its own symmetric colour scale."""
    fig, axes = plt.subplots(1, len(kernels), figsize=(1.6 * len(kernels), 2.0))
    for k, ax in enumerate(axes):
        w = kernels[k, 0]
        lim = float(abs(w).max()) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"map {k}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_confusion_matrix(labels: list[int], predictions: list[int], title: str, path: Path) -> Path:
    """Counts of (true, predicted) test digits; the diagonal is left blank so the errors stand out."""
    import numpy as np

    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (np.asarray(labels), np.asarray(predictions)), 1)
    errors = counts.copy()
    np.fill_diagonal(errors, 0)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.imshow(errors, cmap="Reds")
    for t in range(10):
        for p in range(10):
            if counts[t, p]:
                dark = errors[t, p] > 0.6 * errors.max()
                ax.text(p, t, str(counts[t, p]), ha="center", va="center", fontsize=7,
                        color="0.5" if t == p else ("w" if dark else "k"))
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: {int(errors.sum())} errors of {len(labels)}", fontsize=9)
    return _save(fig, path)


def plot_misclassified(images, labels: list[int], predictions: list[int], title: str, path: Path,
                       columns: int = 14) -> Path:
    """Cf. Fig. 8: every misclassified test digit (up to 8 rows), captioned true->predicted."""
    wrong = [i for i, (y, p) in enumerate(zip(labels, predictions)) if y != p][:columns * 8]
    rows = max(1, -(-len(wrong) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.95 + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i], cmap="gray_r", interpolation="nearest")
        ax.set_title(f"{labels[i]}->{predictions[i]}", fontsize=7)
    fig.suptitle(f"{title}: {len(wrong)} shown, true->predicted", fontsize=9)
    return _save(fig, path)


# The run whose weights and predictions the C1, confusion and misclassified-digit figures show.
SHOWCASE_RUN = Path("paper_final") / "seed0"


def make_showcase_figures(out_dir: Path, results: Path, data_root=None) -> list[Path]:
    """C1 kernels, confusion matrix and misclassified digits of the paper preset's showcase run. The digits'
    pixels come from MNIST itself (never committed), so that figure needs the data root."""

    from ..data import DataError, load_raw

    run = results / SHOWCASE_RUN
    paths = []
    label = f"paper preset, results/{SHOWCASE_RUN}"
    if RunPaths(run).model.exists():
        state = read_weights(RunPaths(run).model)
        paths.append(plot_c1_kernels(state["c1.0.weight"].numpy(), f"learned C1 kernels, {label}",
                                     out_dir / "c1_kernels.png"))
    if RunPaths(run).predictions.exists():
        pred = read_predictions(run)
        paths.append(plot_confusion_matrix(pred["labels"], pred["predictions"], f"confusion, {label}",
                                           out_dir / "confusion_paper.png"))
        try:
            images, _ = load_raw(data_root, "test", download=False)
        except DataError as exc:
            print(f"skipped misclassified_paper.png: {exc}", file=sys.stderr)
        else:
            paths.append(plot_misclassified(images.numpy(), pred["labels"], pred["predictions"],
                                            f"misclassified test digits, {label}",
                                            out_dir / "misclassified_paper.png"))
    return paths


# the paper's values at 60,000 patterns (Sec. III-C), the only size it states in numbers: (preset, curve) -> %
FIG6_PAPER_POINTS = {("paper", "test"): PAPER_TEST_ERROR_PCT, ("paper", "training"): PAPER_TRAIN_ERROR_PCT,
                     ("paper_distortions", "test"): 0.8}


def training_size_points(results: Path) -> dict[tuple[str, str], list[tuple[int, float, float]]]:
    """{(preset, "test" | "training"): [(training patterns, mean error %, 95% half-width), ...]} over the finished
    seeds of each Fig. 6 folder (repro/study/report.py), sizes with no finished run left out."""
    from .report import FIG6_PRESETS, FIG6_SIZES, fig6_folder, finished_summaries
    from .stats import mean_ci

    points = {}
    for preset in FIG6_PRESETS:
        for size in FIG6_SIZES:
            runs = finished_summaries(results, fig6_folder(preset, size))
            if not runs:
                continue
            for curve, key in (("test", "final_test_error_pct"), ("training", "final_train_error_pct")):
                points.setdefault((preset, curve), []).append((size, *mean_ci([r[key] for r in runs])))
    return points


def plot_error_vs_training_size(points: dict, path: Path) -> Path:
    """Cf. Fig. 6: test and training error after the last pass against the number of training patterns, with and
    without distortions; mean over seeds with 95% intervals, the paper's stated values as stars."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = {"paper": "C0", "paper_distortions": "C2"}
    names = {"paper": "without distortions", "paper_distortions": "with distortions"}
    for (preset, curve), pts in sorted(points.items()):
        sizes, means, halves = zip(*pts)
        errs = [0 if h != h else h for h in halves]  # NaN (one seed): no bar
        ax.errorbar(sizes, means, yerr=errs, fmt="-o" if curve == "test" else "--s", ms=4, capsize=3,
                    color=colors[preset], label=f"{curve} error, {names[preset]}")
        paper = FIG6_PAPER_POINTS.get((preset, curve))
        if paper is not None:
            ax.plot([60_000], [paper], "*", ms=12, color=colors[preset], mec="k",
                    label=f"the paper: {curve} {paper}%, {names[preset]}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([15_000, 30_000, 60_000]))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training patterns (the first N of the 60,000)")
    ax.set_ylabel("error after the last pass (%)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("cf. Fig. 6: error against training-set size")
    return _save(fig, path)


def make_fig6(out_dir: Path, results: Path) -> list[Path]:
    points = training_size_points(results)
    return [plot_error_vs_training_size(points, out_dir / "fig6_error_vs_training_size.png")] if points else []


# Cf. the paper's Fig. 8: the misclassified test digits of the network trained with distortions.
FIG8_RUN = Path("paper_distortions") / "seed0"


def make_fig8(out_dir: Path, results: Path, data_root=None) -> list[Path]:
    """Every misclassified test digit of FIG8_RUN, true and predicted label under each (the paper shows 82)."""
    from ..data import DataError, load_raw

    run = results / FIG8_RUN
    if not RunPaths(run).predictions.exists():
        return []
    pred = read_predictions(run)
    try:
        images, _ = load_raw(data_root, "test", download=False)
    except DataError as exc:
        print(f"skipped fig8_misclassified.png: {exc}", file=sys.stderr)
        return []
    return [plot_misclassified(images.numpy(), pred["labels"], pred["predictions"],
                               f"cf. Fig. 8: misclassified test digits, distortions, results/{FIG8_RUN}",
                               out_dir / "fig8_misclassified.png")]


def _has_deltas(deltas) -> bool:
    return bool(deltas["delta"].notna().any())


# where a point's label may sit, in points from the point, tried in this order: beside it (right, then left),
# then further out; (dx, dy, horizontal alignment); a label above its point has its bottom there, one below its top
LABEL_OFFSETS = ((5, 3, "left"), (5, -3, "left"), (-5, 3, "right"), (-5, -3, "right"), (12, 16, "left"),
                 (12, -16, "left"), (-12, 16, "right"), (-12, -16, "right"), (20, 30, "left"), (20, -30, "left"),
                 (-20, 30, "right"), (-20, -30, "right"))
NEAR = 4  # the first NEAR offsets touch their point; a label further out gets a leader line to it
LEADER = dict(arrowstyle="-", color="0.5", lw=0.6, shrinkA=0, shrinkB=4)
MARKER_HALF = 4  # points: the square around each marker that no label may cover


def label_points(ax, points: list[tuple[float, float]], labels: list[str], fontsize: int = 7) -> list:
    """Label each point at the first of LABEL_OFFSETS where its text covers no other label and no marker (the
    first offset where nothing is free), so that two swaps with close deltas stay readable. Returns the texts."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    half = MARKER_HALF * fig.dpi / 72
    markers = [Bbox.from_bounds(px - half, py - half, 2 * half, 2 * half)
               for px, py in ax.transData.transform(points)]
    placed, texts = [], []

    def annotate(label, xy, k):
        dx, dy, ha = LABEL_OFFSETS[k]
        return ax.annotate(label, xy, xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha=ha,
                           va="bottom" if dy > 0 else "top", arrowprops=LEADER if k >= NEAR else None)

    for xy, label in sorted(zip(points, labels), key=lambda pl: (-pl[0][1], pl[0][0])):
        for k in range(len(LABEL_OFFSETS)):
            text = annotate(label, xy, k)
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed + markers):
                break
            text.remove()
        else:
            text = annotate(label, xy, 0)
            box = text.get_window_extent(renderer)
        placed.append(box)
        texts.append(text)
    return texts


def plot_dataset_comparison(first, second, comparison, title: str, path: Path) -> Path:
    """Each swap's delta in the first grid (x, e.g. MNIST) against its delta in the second (y, e.g.
    Fashion-MNIST), both with their 95% intervals, and the Spearman rank correlation of the two rankings in the
    title (repro/study/comparison.py tabulates the same)."""
    from .comparison import swaps_in_both
    from .stats import rank_correlation

    both = swaps_in_both(first, second)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.errorbar(both["delta_first"], both["delta_second"], xerr=both["half_first"].fillna(0.0),
                yerr=both["half_second"].fillna(0.0), fmt="o", capsize=3)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.axvline(0.0, color="k", lw=0.8)
    # after the lines at zero, which can widen the limits the labels are measured against
    label_points(ax, list(zip(both["delta_first"], both["delta_second"])), list(both["variant"]))
    rho, p = rank_correlation(list(both["delta_first"]), list(both["delta_second"]))
    ax.set_xlabel(f"Δ test error on {comparison.first_label}, pp (vs its baseline, 95% CI)")
    ax.set_ylabel(f"Δ test error on {comparison.second_label}, pp")
    ax.set_title(f"{title}\nSpearman's rank correlation {rho:.2f} (p = {p:.2g}, {len(both)} swaps)", fontsize=9)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def make_grid_figures(out_dir: Path, results: Path) -> list[Path]:
    """For each grid with results: the ablation deltas (the ladder: a waterfall) and the test error per pass
    of every variant; the comparisons (repro/study/comparison.py) where both grids have results."""
    from .comparison import COMPARISONS, component_deltas, swaps_in_both
    from .grids import GRIDS

    from .ablation import grid_rows, grid_table

    paths, deltas = [], {}
    for name, grid in GRIDS.items():
        grid_dir = results / "grids" / name
        rows = grid_rows(grid_dir)
        if not rows:
            continue
        order = [v.name for v in grid.variants]
        deltas[name] = component_deltas(grid_dir, grid)
        if name.startswith("ladder"):
            paths.append(plot_ladder(grid_table(grid_dir, grid), grid, f"{name}: {grid.description}",
                                     out_dir / f"ablation_{name}.png"))
        else:
            if _has_deltas(deltas[name]):  # none while only the reference has run
                paths.append(plot_ablation_deltas(deltas[name], f"{name}, protocol {grid.protocol}: Δ vs the "
                                                                f"reference, the {grid.reference.name} preset",
                                                  out_dir / f"ablation_{name}.png"))
        paths.append(plot_grid_curves(rows, grid_dir, order, f"{name}: test error per pass",
                                      out_dir / f"ablation_{name}_curves.png"))
    for c in COMPARISONS:
        if c.first not in deltas or c.second not in deltas:
            continue
        first, second = deltas[c.first], deltas[c.second]
        if c.kind == "protocol" and (_has_deltas(first) or _has_deltas(second)):
            paths.append(plot_protocol_comparison(
                {f"{n} (protocol {GRIDS[n].protocol})": deltas[n] for n in (c.first, c.second)},
                "the same swaps of the paper preset under two protocols", out_dir / c.figure))
        elif c.kind == "dataset" and len(swaps_in_both(first, second)) >= 3:
            paths.append(plot_dataset_comparison(first, second, c, f"{c.first}: {c.first_label} against "
                                                 f"{c.second_label}", out_dir / c.figure))
    return paths


def error_reject_curves(run_dirs: list[Path]) -> list[tuple[list, list]]:
    """Each run's error-reject curve from its kept test outputs (head's default confidence)."""
    import numpy as np

    from ..components import HEADS
    from ..rejection import DEFAULT_CONFIDENCE, confidence, error_reject_curve
    curves = []
    for run_dir in run_dirs:
        config = read_run_config(run_dir)
        lower = HEADS[config.model.head].lower_is_better
        outputs = read_outputs(run_dir).astype(np.float64)
        labels = np.array(read_predictions(run_dir)["labels"])
        predicted = outputs.argmin(1) if lower else outputs.argmax(1)
        conf = confidence(outputs, lower, DEFAULT_CONFIDENCE[config.model.head], config.train.map_j)
        curves.append(error_reject_curve(conf, predicted == labels))
    return curves


def plot_error_reject(groups: dict[str, list[Path]], path: Path, max_reject_pct: float = 10.0) -> Path:
    """Error on the accepted patterns against the share rejected (least confident first), one line per run,
    one colour per group; the paper's yardstick, 0.5% error, dashed."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, (name, run_dirs) in enumerate(groups.items()):
        for i, (reject, error) in enumerate(error_reject_curves(run_dirs)):
            keep = reject <= max_reject_pct
            ax.plot(reject[keep], error[keep], color=f"C{k}", lw=1, alpha=0.8,
                    label=f"{name} ({len(run_dirs)} seeds)" if i == 0 else None)
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xlabel("test patterns rejected, % (least confident first)")
    ax.set_ylabel("error on the accepted patterns, %")
    ax.set_title("Error-reject curves (confidence: RBF margin, softmax probability)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_rejection_deltas(frame, reference: str, title: str, path: Path) -> Path:
    """Per swap, its paired Δ (95% CI) in test error's partner metrics: reject share for 0.5% error and each
    non-digit AUROC (higher AUROC is better, so it is drawn as its negative: left of zero is better for all)."""
    from ..nondigits import NONDIGIT_SETS

    rows = frame[frame["variant"] != reference]
    key = "delta_reject_pct_for_0_5pct_error"
    rows = rows[rows[key].notna()] if key in rows else rows[:0]
    series = [("rejected for 0.5% error, points", "reject_pct_for_0_5pct_error", 1.0)]
    series += [(f"-100 x AUROC vs {name}", f"auroc_{name}", -100.0) for name in NONDIGIT_SETS
               if f"delta_auroc_{name}" in rows and rows[f"delta_auroc_{name}"].notna().any()]
    fig, ax = plt.subplots(figsize=(8.5, 0.6 * max(1, len(rows)) + 1.8))
    markers = "osv^D"
    _dot_whiskers(ax, [(label, [sign * v for v in rows[f"delta_{key}"]],
                        [abs(sign) * v for v in rows[f"dhalf_{key}"]], markers[k % len(markers)])
                       for k, (label, key, sign) in enumerate(series)], list(rows["variant"]))
    ax.set_xlabel("difference from the baseline (paired by seed, 95% CI); left of zero is better")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def make_rejection_figures(out_dir: Path, results: Path) -> list[Path]:
    """The error-reject curves of the paper preset, its head=linear swap and the modern preset; per grid whose
    runs kept outputs, each swap's Δ in rejection and AUROC."""
    from .ablation import grid_rows, outcome
    from .grids import GRIDS
    from .rejection import rejection_table

    def kept(run_dirs):
        return [d for d in run_dirs if RunPaths(d).outputs.exists()]

    groups = {"paper preset (results/paper_final)": kept(sorted((results / "paper_final").glob("seed*"))),
              "modern preset (results/modern)": kept(sorted((results / "modern").glob("seed*")))}
    grid_dir = results / "grids" / "one_at_a_time"
    if (grid_dir / "runs.jsonl").exists():
        linear = [grid_dir / r["run_dir"] for r in grid_rows(grid_dir)
                  if r["variant"] == "head=linear" and outcome(r) == "trained"]
        groups["paper preset, head=linear (one_at_a_time)"] = kept(linear)
    groups = {name: dirs for name, dirs in groups.items() if dirs}
    paths = [plot_error_reject(groups, out_dir / "rejection_curves.png")] if groups else []
    for name in ("one_at_a_time", "ladder"):
        grid_dir = results / "grids" / name
        if not (grid_dir / "runs.jsonl").exists():
            continue
        frame = rejection_table(grid_dir, GRIDS[name])
        if not frame.empty and frame.get("delta_reject_pct_for_0_5pct_error") is not None \
                and frame["delta_reject_pct_for_0_5pct_error"].notna().any():
            paths.append(plot_rejection_deltas(frame, GRIDS[name].reference.name,
                                               f"{name}: rejection and non-digit AUROC, each swap against its "
                                               f"baseline", out_dir / f"rejection_{name}.png"))
    return paths


def make_all_figures(out_dir: Path, results: Path, data_root=None) -> list[Path]:
    """Every figure; those that need results are skipped when results/ lacks them."""
    paths = make_static_figures(out_dir)
    groups, paper = reproduction_runs(results)
    if groups:
        paths.append(plot_error_vs_pass(groups, out_dir / "fig5_error_vs_pass.png", paper))
    paths += make_fig6(out_dir, results)
    paths += make_showcase_figures(out_dir, results, data_root)
    paths += make_fig8(out_dir, results, data_root)
    paths += make_rejection_figures(out_dir, results)
    grid_paths = make_grid_figures(out_dir, results)
    # an ablation figure of a grid that no longer has the runs it drew would show numbers no committed row gives
    for stale in sorted(set(Path(out_dir).glob("ablation_*.png")) - set(grid_paths)):
        stale.unlink()
        print(f"removed {stale}: its grid has no runs to draw it from under {results / 'grids'}", file=sys.stderr)
    return paths + grid_paths
