"""One cell of a grid, a (variant, seed), and how it is run: the unit the local process pool and the Ray back end
(repro/study/ray_backend.py) both hand out, so that neither needs the other (repro/study/grid.py drives them).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..errors import Interrupted
from ..interrupt import stop_requested

INTERRUPTED = "interrupted"  # stopped by a signal, checkpointed: no row, a re-run resumes it


@dataclass(frozen=True)
class Cell:
    """One (variant, seed) of a grid."""

    grid: str
    variant: str
    component: str | None
    value: str | None
    seed: int
    config: RunConfig  # with train.seed = seed

    @property
    def key(self) -> tuple[str, int]:
        return self.variant, self.seed

    def run_dir(self, out: Path) -> Path:
        return out / variant_folder(self.variant) / f"seed{self.seed}"


def variant_folder(variant: str) -> str:
    """A variant's folder in its grid's output folder: `c3=full` -> `c3-full` (no = in paths)."""
    return variant.replace("=", "-")


_DATA_CACHE: dict = {}


def run_cell(cell: Cell, out: Path, data_root, threads: int) -> dict:
    """Train (or resume, or read back) one cell; never raises: a failure becomes a 'failed' summary."""
    import torch

    from ..data import load_mnist
    from ..train import train_seeds

    torch.set_num_threads(threads)
    if stop_requested():  # before loading data the run will never use
        return {"status": INTERRUPTED, "message": "not started"}
    try:
        train = cell.config.train
        key = (cell.config.model.input, str(data_root), train.train_size, train.evaluate_on, train.dataset)
        if key not in _DATA_CACHE:
            _DATA_CACHE[key] = load_mnist(cell.config.model.input, data_root, train_size=train.train_size or None,
                                          evaluate_on=train.evaluate_on, dataset=train.dataset)
        if stop_requested():  # the grid is stopping: do not start another run
            return {"status": INTERRUPTED, "message": "not started"}
        return train_seeds(cell.config, [cell.seed], [cell.run_dir(out)], data_root, resume=True,
                           data=_DATA_CACHE[key], progress=False)[0]
    except Interrupted as exc:
        return {"status": INTERRUPTED, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the grid records the failure and goes on
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {"status": "failed", "message": last}
