"""Grids for tests: tiny ones that train in seconds on conftest.py's synthetic MNIST, and grid folders written
without training, with chosen errors (`write_synthetic_grid`), for the statistics, tables and figures."""
from __future__ import annotations

import json
from pathlib import Path

from repro.config import run_config
from repro.study.grid import RUNS_FILE, append_row
from repro.study.grids import GRIDS, Grid, Variant

TINY_VARIANTS = {"paper": {}, "c3=full": {"c3": "full"}, "pooling=max": {"pooling": "max"}}


def tiny_grid(epochs: int = 1, name: str = "tiny", variants=tuple(TINY_VARIANTS)) -> Grid:
    """The paper preset and swaps of it (`variants`, from TINY_VARIANTS; the first is the reference), `epochs`
    passes at batch 16: 2 updates a pass on 32 patterns, 40 on 640."""
    def config(swap):
        return run_config("paper", dict(epochs=epochs, batch_size=16, hessian_samples=8, **swap))
    reference, *swaps = variants
    return Grid(name, "paper", "a test grid", (Variant(reference, None, None, config(TINY_VARIANTS[reference])),
                                               *(Variant(v, *v.split("="), config(TINY_VARIANTS[v]),
                                                         baseline=reference) for v in swaps)))


def declare_test_grids() -> None:
    """Declare the grids that `lenet5 grid` runs in the command-line tests (tests/test_cli.py, tests/test_ray.py)
    in this process, beside the real ones."""
    GRIDS["tiny"] = tiny_grid(epochs=2)
    GRIDS["tiny_ray"] = tiny_grid(epochs=2, name="tiny_ray", variants=("paper", "c3=full"))


def write_synthetic_grid(grid_dir: Path, errors: dict[str, list[float]], n_test=20, passes=3, diverged=(),
                         collapsed=(), made: dict | None = None) -> None:
    """A runs file, per-run logs and predictions: variant v's seed s gets errors[v][s] % test error (a `collapsed`
    (variant, seed) ends at chance on the training set, 88.76%, whatever its test error; `made[(variant, seed)]`:
    the row's commit/cpu/cpu_capability fields, else none, as in rows made before runs recorded them)."""
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
                                              "passes": passes, **(made or {}).get((variant, seed), {})})
