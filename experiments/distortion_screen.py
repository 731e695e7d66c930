"""How strong the affine distortions of Sec. III-C should be (the paper gives no ranges).

The paper preset at its final schedule (repro/config.py), trained with `distortions=affine`: translation,
scaling, squeezing and shearing drawn within repro.distortions.AFFINE_RANGES times `distortion_strength`. Each
candidate strength trains on the first 50,000 training patterns (and their distorted copies) and reports its
error on the last 10,000 (the validation split, `evaluate_on=validation`); the test set is never read. 20 passes,
the paper's protocol. The distortion preset takes the strength with the lowest validation error after pass 20.

    python -m experiments.distortion_screen --data-root ../shared/data [--seeds 0] [--workers 2]

Rows: results/screens/distortions/runs.jsonl (resumable like `lenet5 grid`); each run's per-pass log beside it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from repro.config import run_config
from repro.study.grid import run_grid
from repro.study.grids import Grid, Variant

from .sdlm_schedule_screen import screen_table

STRENGTHS = (0.5, 1.0, 1.5)


def screen_grid(strengths=STRENGTHS) -> Grid:
    # without distortions, the same config and seed is the winning row of experiments/sdlm_schedule_screen.py
    variants = [Variant(f"strength={s:g}", "distortion_strength", str(s),
                         run_config("paper", {"distortions": "affine", "distortion_strength": s,
                                              "evaluate_on": "validation"})) for s in strengths]
    return Grid("distortion_screen", "paper", "affine distortion strength on the validation split", tuple(variants))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="results/screens/distortions")
    parser.add_argument("--table", action="store_true", help="print the committed rows as a Markdown table; no runs")
    args = parser.parse_args(argv)
    if args.table:
        print(screen_table(Path(args.out)))
        return
    rows = run_grid(screen_grid(), args.seeds, Path(args.out), args.workers, 1, args.data_root)
    for row in sorted(rows, key=lambda r: (r["variant"], r["seed"])):
        print(f"{row['variant']:16s} seed {row['seed']}  {row['status']:9s} validation error "
              f"{row['final_test_error_pct']}%  train error {row['final_train_error_pct']}%")


if __name__ == "__main__":
    main()
