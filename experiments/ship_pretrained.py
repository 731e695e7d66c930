"""Copy the networks that `repro.pretrained` ships into the package: for each result folder of
repro.pretrained.PRETRAINED, the model.pt of its median seed by final test error (the lower of the two middle
ones for an even count), to repro/weights/<name>.pt, and write repro/weights/MANIFEST.json.

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
from repro.pretrained import PRETRAINED, WEIGHTS_DIR
from repro.run_folder import RunPaths, finished_runs


def median_seed(folder: Path) -> tuple[Path, dict]:
    runs = [(data["final_test_error_pct"], run_dir, data) for run_dir, data in finished_runs(folder, with_model=True)]
    if not runs:
        raise RunError(f"{folder} has no finished run with model.pt")
    runs.sort(key=lambda r: (r[0], r[1].name))
    _, run_dir, data = runs[(len(runs) - 1) // 2]
    return run_dir, {"seeds": len(runs), "test_errors_pct": [round(r[0], 4) for r in runs], **data}


def main(argv=None) -> None:
    WEIGHTS_DIR.mkdir(exist_ok=True)
    entries = {}
    for name, folder in PRETRAINED.items():
        run_dir, data = median_seed(Path(folder))
        target = WEIGHTS_DIR / f"{name}.pt"
        shutil.copyfile(RunPaths(run_dir).model, target)
        entries[name] = {"source": str(RunPaths(run_dir).model), "seed": data["config"]["train"]["seed"],
                         "final_test_error_pct": data["final_test_error_pct"],
                         "final_train_error_pct": data["final_train_error_pct"],
                         "seeds_in_folder": data["seeds"], "their_test_errors_pct": data["test_errors_pct"],
                         "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
        print(f"{name}: {run_dir} ({data['final_test_error_pct']:.2f}%, the median of {data['seeds']} seeds)")
    atomic.write_text(WEIGHTS_DIR / "MANIFEST.json", json.dumps(entries, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(run_script(main))
