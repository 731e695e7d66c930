"""Give runs made before runs kept their outputs the files a run now keeps: test_outputs.npz (the network's 10
outputs per test pattern, float16) and nondigit_outputs.npz (its outputs on the non-digit sets,
repro/nondigits.py), both from the run's model.pt, so that the rejection tables (repro/study/rejection.py) can
use them.

    python -m experiments.keep_outputs results/paper_final results/modern --data-root ../shared/data

Each argument is a run folder or a folder of them (seed<N>/, or a grid's variant folders). A run without model.pt
(a grid run in a fresh clone) is skipped; a run that already keeps both files is left as it is. The test outputs
are recomputed on the split the run reported (test, or validation for evaluate_on=validation runs), and their
predictions must equal the run's committed test_predictions.json, or the script stops.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from repro import atomic
from repro.errors import RunError, run_script
from repro.inference import evaluate_model, load_model
from repro.run_folder import RunPaths, outputs_npz, read_predictions, run_folders
from repro.train import write_nondigit_outputs


def keep(run_dir: Path, data_root) -> str:
    paths = RunPaths(run_dir)
    if not paths.model.exists():
        return "no model.pt: skipped"
    if paths.outputs.exists() and paths.nondigit_outputs.exists():
        return "keeps both already"
    model, config = load_model(run_dir)
    if not paths.outputs.exists():
        result = evaluate_model(model, config, data_root=data_root)
        committed = read_predictions(run_dir)["predictions"]
        if result["predictions"] != committed:
            raise RunError(f"{run_dir}: its model.pt does not give its committed test predictions; retrain it")
        atomic.write_bytes(paths.outputs, outputs_npz(torch.from_numpy(result["outputs"])))
    if config.train.dataset == "mnist" and not paths.nondigit_outputs.exists():
        write_nondigit_outputs(run_dir, model, config, data_root)
    return "outputs kept"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    for folder in args.folders:
        for run_dir in run_folders(folder):
            print(f"{run_dir}: {keep(run_dir, args.data_root)}", flush=True)


if __name__ == "__main__":
    sys.exit(run_script(main))
