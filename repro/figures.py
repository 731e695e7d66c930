"""Figures that need no training: the RBF prototypes (cf. Fig. 3) and Table I as an image.

Every figure is written by `lenet5 figures`; nothing here trains."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_static_figures(out_dir: Path) -> list[Path]:
    return [plot_rbf_prototypes(out_dir / "rbf_prototypes.png"), plot_c3_table(out_dir / "c3_table.png")]
