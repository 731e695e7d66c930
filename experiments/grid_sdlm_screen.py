"""SDLM's eta for the grids' mini-batch protocol (repro/study/grids.py), chosen on a validation split.

The grids train with mini-batches of 64 for 5 passes, where SDLM's step is batch_size * eta / (mu + h) times
the batch mean gradient. Whether the online eta (0.00002, results/screens/sdlm_step_scale*.jsonl) still suits that is
measured here: the `paper` preset under the grid protocol, run for 10 passes instead of 5 (its first 5 passes
are the 5-pass run: the schedule depends on the pass index only), trained on the first 50,000 training patterns
and scored on the last 10,000 after every pass (the project's validation split, `evaluate_on=validation`; the test
set is never read), for a few etas.

    # MAP (the paper preset): the rows without "head" in results/screens/grid_sdlm_screen.jsonl
    python -m experiments.grid_sdlm_screen --data-root ../shared/data
    # cross-entropy (head=linear): the rows with "head": "linear"
    python -m experiments.grid_sdlm_screen --data-root ../shared/data --head linear --epochs 5 \
        --lr 0.00001 0.00003 0.0001 0.0003

The grids take, per loss, the best eta at least 2x below the smallest eta that collapses the network
(repro/study/grids.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from repro.data import load_mnist
from repro.errors import run_script
from repro.run_folder import read_log
from repro.study.grids import GRID_PROTOCOL, grid_config
from repro.train import train_seeds

CANDIDATES = (0.000001, 0.000002, 0.000003, 0.000005, 0.000007, 0.00001)  # MAP


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--lr", type=float, nargs="+", default=list(CANDIDATES), help="etas to compare")
    parser.add_argument("--head", default="rbf", choices=["rbf", "linear"],
                        help="the paper preset's head; linear brings the cross-entropy loss and its gradient scale")
    parser.add_argument("--epochs", type=int, default=10, help="passes (default: 10)")
    parser.add_argument("--out", default="results/screens/grid_sdlm_screen.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_mnist(grid_config("paper").model.input, args.data_root, evaluate_on="validation")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for lr in args.lr:
        config = grid_config("paper", {"lr": lr, "epochs": args.epochs, "head": args.head, "evaluate_on": "validation"})
        with tempfile.TemporaryDirectory() as tmp:
            summary = train_seeds(config, [config.train.seed], [tmp], data=data, progress=False)[0]
            curve = [round(e["test_error_pct"], 3) for e in read_log(Path(tmp))]
        line = {"lr": lr, "head": args.head, "loss": config.loss, **GRID_PROTOCOL, "epochs": config.train.epochs,
                "train_patterns": len(data.train_y), "status": summary["status"],
                "validation_error_pct": summary["final_test_error_pct"],
                "final_train_error_pct": summary["final_train_error_pct"], "validation_error_per_pass": curve}
        print(json.dumps(line), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    sys.exit(run_script(main))
