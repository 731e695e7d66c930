"""Copy the networks that `repro.pretrained` ships into the package: for each result folder of
repro.pretrained.PRETRAINED, the model.pt of its median seed by final test error (the lower of the two middle
ones for an even count) among the seeds that kept one, to repro/weights/<name>.pt, and write
repro/weights/MANIFEST.json. A grid folder keeps model.pt only locally (.gitignore), so for `ladder_best` only
the runs made on this machine count, and the shipped source is committed by name (a .gitignore exception).

    python -m experiments.ship_pretrained
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from repro import atomic
from repro.errors import RunError, run_script
from repro.pretrained import LADDER_BEST, PRETRAINED, WEIGHTS_DIR
from repro.run_folder import RunPaths, finished_runs


def median_seed(folder: Path) -> tuple[Path, dict]:
    runs = [(data["final_test_error_pct"], run_dir, data) for run_dir, data in finished_runs(folder, with_model=True)]
    if not runs:
        raise RunError(f"{folder} has no finished run with model.pt")
    runs.sort(key=lambda r: (r[0], r[1].name))
    _, run_dir, data = runs[(len(runs) - 1) // 2]
    return run_dir, {"seeds": len(runs), "test_errors_pct": [round(r[0], 4) for r in runs], **data}


def ladder_best_rung(results: Path = Path("results")) -> dict:
    """The ladder's best rung (repro.study.report.best_rung), which PRETRAINED's ladder_best folder must be."""
    from repro.study.cells import variant_folder
    from repro.study.report import HEADLINE_GRID, best_rung

    best = best_rung(results)
    if best is None:
        raise RunError(f"results/grids/{HEADLINE_GRID} has no rung with enough finished seeds to call best")
    expected = Path("results") / "grids" / HEADLINE_GRID / variant_folder(best["variant"])  # as PRETRAINED says it
    if Path(PRETRAINED[LADDER_BEST]) != expected:
        raise RunError(f"the ladder's best rung is now {best['variant']}: point PRETRAINED[{LADDER_BEST!r}] in "
                       f"repro/pretrained.py at {expected}, train a seed of it, and ship again")
    return best


def main(argv=None) -> None:
    WEIGHTS_DIR.mkdir(exist_ok=True)
    entries = {}
    for name, folder in PRETRAINED.items():
        rung = ladder_best_rung() if name == LADDER_BEST else None
        run_dir, data = median_seed(Path(folder))
        target = WEIGHTS_DIR / f"{name}.pt"
        shutil.copyfile(RunPaths(run_dir).model, target)
        entries[name] = {"source": str(RunPaths(run_dir).model), "seed": data["config"]["train"]["seed"],
                         "final_test_error_pct": data["final_test_error_pct"],
                         "final_train_error_pct": data["final_train_error_pct"],
                         "seeds_in_folder": data["seeds"], "their_test_errors_pct": data["test_errors_pct"],
                         "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
        if rung is not None:  # the rung's own numbers, over all its seeds (most without a model.pt here)
            entries[name].update(rung=rung["variant"], rung_seeds=len(rung["seeds"]),
                                 rung_test_error_pct=round(float(rung["test_mean"]), 4),
                                 rung_test_error_half_pct=round(float(rung["test_half"]), 4))
        print(f"{name}: {run_dir} ({data['final_test_error_pct']:.2f}%, the median of {data['seeds']} seeds)")
    atomic.write_text(WEIGHTS_DIR / "MANIFEST.json", json.dumps(entries, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(run_script(main))
