"""Why the paper preset's SDLM uses a smaller eta than Sec. III-B's table, and how that scale was chosen.

With LeCun's init (App. A) the network starts nearly linear with small activations, so the diagonal
Gauss-Newton estimate of App. C is tiny almost everywhere and the steps eta/(mu + h) sit at their ceiling
eta/mu = 0.025. The diagonal misses the coherent effect of a unit's many inputs (C5 has 400), and within a few
hundred online updates the network saturates and stays there (loss ~ 366, chance error). See
paper_notes/sdlm.md.

This script measures, on a validation split carved out of the *training* set (never the test set), the error
after one online pass over a training subset for several (lr, mu) choices, and prints a JSON line each:

    python -m experiments.sdlm_step_scale [--data-root DIR] [--train 12000] [--out results/sdlm_step_scale.jsonl]

The paper preset takes the scale with the lowest validation error among those that keep mu = 0.02.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from repro.config import run_config
from repro.data import MNISTTensors, load_mnist
from repro.train import train

CANDIDATES = [dict(lr=0.0005), dict(lr=0.0002), dict(lr=0.0001), dict(lr=0.00005), dict(lr=0.00002), dict(lr=0.00001),
              dict(lr=0.0005, mu=0.1), dict(lr=0.0005, mu=0.2)]
VALIDATION = slice(50_000, 60_000)  # the last 10,000 training patterns; the test set is never used


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--train", type=int, default=12_000, help="training patterns for the one pass")
    parser.add_argument("--out", default="results/sdlm_step_scale.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    full = load_mnist("32", args.data_root)
    data = MNISTTensors(full.train_x[:args.train], full.train_y[:args.train],
                        full.train_x[VALIDATION], full.train_y[VALIDATION])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        for overrides in CANDIDATES:
            config = run_config("paper", {"epochs": 1, **overrides})
            with tempfile.TemporaryDirectory() as tmp:
                summary = train(config, tmp, data=data, progress=False)
            line = {**overrides, "mu": config.train.mu, "train_patterns": args.train,
                    "validation_error_pct": summary["final_test_error_pct"]}
            print(json.dumps(line), flush=True)
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
