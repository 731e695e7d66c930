"""Why the paper preset's SDLM uses a smaller eta than Sec. III-B's table, and how that scale was chosen.

With LeCun's init (App. A) the network starts nearly linear with small activations, so the diagonal
Gauss-Newton estimate of App. C is tiny almost everywhere and the steps eta/(mu + h) sit at their ceiling
eta/mu = 0.025. The diagonal misses the coherent effect of a unit's many inputs (C5 has 400), and within a few
hundred online updates the network saturates and stays there (loss ~ 366, chance error). See
paper_notes/sdlm.md.

Every measurement here uses the project's validation split (`evaluate_on=validation`, repro/data.py: the last
10,000 training patterns); the test set is never read.

    # screen: one online pass over 12,000 patterns per candidate -> results/screens/sdlm_step_scale.jsonl
    python -m experiments.sdlm_step_scale --data-root ../shared/data
    # confirm: the full 20-pass protocol on the other 50,000 -> results/screens/sdlm_step_scale_full.jsonl
    python -m experiments.sdlm_step_scale --data-root ../shared/data --full --lr 0.00002 0.00005

The paper preset took the scale with the lowest validation error (2e-5, h once per pass); it has since been chosen
again by experiments/sdlm_schedule_screen.py (paper_notes/sdlm.md). The candidates keep h once per pass
(hessian_every=0), as the preset had when these rows were made, so that the command still measures what they say.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from repro.config import run_config
from repro.data import load_mnist
from repro.errors import run_script
from repro.run_folder import read_log
from repro.train import train

SCREEN = [dict(lr=0.0005), dict(lr=0.0002), dict(lr=0.0001), dict(lr=0.00005), dict(lr=0.00002), dict(lr=0.00001),
          dict(lr=0.0005, mu=0.1), dict(lr=0.0005, mu=0.2)]
# h once per pass: the paper preset's estimate when these rows were made (today's preset re-estimates it every 500)
ROWS_PROTOCOL = dict(hessian_every=0, evaluate_on="validation")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--full", action="store_true", help="the paper's 20 passes on the first 50,000 patterns")
    parser.add_argument("--lr", type=float, nargs="+", default=None, help="--full: the etas to compare")
    parser.add_argument("--engine", default="compiled", help="--full: training engine (default: compiled)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n_train = None if args.full else 12_000  # --full: all 50,000 patterns outside the validation split
    if args.full:
        candidates = [dict(lr=lr, engine=args.engine) for lr in args.lr or [0.00002]]
        out = Path(args.out or "results/screens/sdlm_step_scale_full.jsonl")
    else:
        candidates = [{**c, "epochs": 1} for c in SCREEN]
        out = Path(args.out or "results/screens/sdlm_step_scale.jsonl")
    # the paper preset's 32x32 input, loaded once for every candidate
    data = load_mnist(run_config("paper").model.input, args.data_root, train_size=n_train, evaluate_on="validation")
    n_train = len(data.train_y)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a" if args.full else "w") as f:
        for overrides in candidates:
            config = run_config("paper", {**ROWS_PROTOCOL, "train_size": n_train, **overrides})
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
