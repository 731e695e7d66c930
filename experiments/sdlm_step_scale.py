"""Why the paper preset's SDLM uses a smaller eta than Sec. III-B's table, and how that scale was chosen.

With LeCun's init (App. A) the network starts nearly linear with small activations, so the diagonal
Gauss-Newton estimate of App. C is tiny almost everywhere and the steps eta/(mu + h) sit at their ceiling
eta/mu = 0.025. The diagonal misses the coherent effect of a unit's many inputs (C5 has 400), and within a few
hundred online updates the network saturates and stays there (loss ~ 366, chance error). See
paper_notes/sdlm.md.

Every measurement here uses a validation split carved out of the *training* set (the last 10,000 training
patterns); the test set is never used.

    # screen: one online pass over 12,000 patterns per candidate -> results/sdlm_step_scale.jsonl
    python -m experiments.sdlm_step_scale --data-root ../shared/data
    # confirm: the full 20-pass protocol on the other 50,000 -> results/sdlm_step_scale_full.jsonl
    python -m experiments.sdlm_step_scale --data-root ../shared/data --full --lr 0.00002 0.00005

The paper preset takes the scale with the lowest validation error.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from repro.config import run_config
from repro.data import MNISTTensors, load_mnist
from repro.errors import run_script
from repro.train import read_log, train

SCREEN = [dict(lr=0.0005), dict(lr=0.0002), dict(lr=0.0001), dict(lr=0.00005), dict(lr=0.00002), dict(lr=0.00001),
          dict(lr=0.0005, mu=0.1), dict(lr=0.0005, mu=0.2)]
VALIDATION = slice(50_000, 60_000)  # the last 10,000 training patterns; the test set is never used


def validation_split(data_root, n_train: int) -> MNISTTensors:
    """The first n_train training patterns to train on and VALIDATION in place of the test set (32x32 input)."""
    full = load_mnist("32", data_root)
    return MNISTTensors(full.train_x[:n_train], full.train_y[:n_train],
                        full.train_x[VALIDATION], full.train_y[VALIDATION])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--full", action="store_true", help="the paper's 20 passes on the first 50,000 patterns")
    parser.add_argument("--lr", type=float, nargs="+", default=None, help="--full: the etas to compare")
    parser.add_argument("--engine", default="compiled", help="--full: training engine (default: compiled)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n_train = 50_000 if args.full else 12_000
    data = validation_split(args.data_root, n_train)
    if args.full:
        candidates = [dict(lr=lr, engine=args.engine) for lr in args.lr or [0.00002]]
        out = Path(args.out or "results/sdlm_step_scale_full.jsonl")
    else:
        candidates = [{**c, "epochs": 1} for c in SCREEN]
        out = Path(args.out or "results/sdlm_step_scale.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a" if args.full else "w") as f:
        for overrides in candidates:
            config = run_config("paper", overrides)
            with tempfile.TemporaryDirectory() as tmp:
                summary = train(config, tmp, data=data, progress=False)
                curve = [round(e["test_error_pct"], 3) for e in read_log(Path(tmp))]
            line = {"lr": config.train.lr, "mu": config.train.mu, "passes": config.train.epochs,
                    "train_patterns": n_train, "validation_error_pct": summary["final_test_error_pct"],
                    "final_train_error_pct": summary["final_train_error_pct"], "engine": config.train.engine}
            if args.full:
                line["validation_error_per_pass"] = curve
            print(json.dumps(line), flush=True)
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    sys.exit(run_script(main))
