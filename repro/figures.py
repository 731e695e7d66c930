"""Every figure of the project, built by `lenet5 figures` from the code and from committed results only.

Nothing here trains. Static figures: the RBF prototypes (cf. Fig. 3) and Table I. From results/: test and
training error per pass of the reproduction runs (cf. Fig. 5).
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FormatStrFormatter, MaxNLocator, NullFormatter  # noqa: E402

from .components import c3_connection_mask  # noqa: E402
from .prototypes import HEIGHT, WIDTH, rbf_prototypes  # noqa: E402


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


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]


def plot_error_vs_pass(groups: dict[str, list[Path]], path: Path) -> Path:
    """Cf. Fig. 5: training and test error per pass, one panel per group of runs (one line per seed), with the
    paper's 0.95% test and 0.35% training error as reference lines."""
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (title, run_dirs) in zip(axes[0], groups.items()):
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
        ax.axhline(PAPER_TEST_ERROR_PCT, color="C0", lw=0.8, ls=":", label="paper test 0.95%")
        ax.axhline(PAPER_TRAIN_ERROR_PCT, color="C1", lw=0.8, ls=":", label="paper training 0.35%")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(FixedLocator([0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20, 50]))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("pass through the training set")
        ax.set_ylabel("error (%)")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_static_figures(out_dir: Path) -> list[Path]:
    return [plot_rbf_prototypes(out_dir / "rbf_prototypes.png"), plot_c3_table(out_dir / "c3_table.png")]


def reproduction_runs(results: Path) -> dict[str, list[Path]]:
    """results/<folder>/seed<N>/ folders that hold a log, grouped as the reproduction table groups them."""
    from .report import RESULT_GROUPS

    groups = {}
    for folder, label, _command, _paper in RESULT_GROUPS:
        runs = sorted(d for d in (results / folder).glob("seed*") if (d / "log.jsonl").exists())
        if runs:
            groups[f"preset {label}"] = runs
    return groups


def make_all_figures(out_dir: Path, results: Path) -> list[Path]:
    """Every figure; those that need results are skipped (with a note) when results/ lacks them."""
    paths = make_static_figures(out_dir)
    groups = reproduction_runs(results)
    if groups:
        paths.append(plot_error_vs_pass(groups, out_dir / "fig5_error_vs_pass.png"))
    return paths
