"""How strong the affine distortions of Sec. III-C should be (the paper gives no ranges).

The paper preset at its final schedule (repro/config.py), trained with `distortions=affine`: translation,
scaling, squeezing and shearing drawn within repro.distortions.AFFINE_RANGES times `distortion_strength`. Each
candidate strength trains on the first 50,000 training patterns (and their distorted copies) and reports its
error on the last 10,000 (the validation split, `evaluate_on=validation`); the test set is never read. 20 passes,
the paper's protocol. The distortion preset takes the strength with the lowest validation error after pass 20.

    python -m experiments.distortion_screen --data-root ../shared/data [--seeds 0] [--strengths 0.5 1] [--workers 2]

Committed: strengths 0.25, 0.5, 1 and 1.5 with seed 0, then the three lowest with seed 1
(`--seeds 1 --strengths 0.25 0.5 1`); 1.5 was 0.5 points behind after seed 0 and got no second seed.

Rows: results/screens/distortions/runs.jsonl (resumable like `lenet5 grid`); each run's per-pass log beside it.
"""
from __future__ import annotations

import sys

from repro.config import run_config
from repro.errors import run_script
from repro.study.grids import Grid, Variant

from .screens import run_screen, screen_parser

STRENGTHS = (0.25, 0.5, 1.0, 1.5)


def screen_grid(strengths=STRENGTHS) -> Grid:
    # without distortions, the same config and seed is the winning row of experiments/sdlm_schedule_screen.py
    variants = [Variant(f"strength={s:g}", "distortion_strength", str(s),
                         run_config("paper", {"distortions": "affine", "distortion_strength": s,
                                              "evaluate_on": "validation"})) for s in strengths]
    return Grid("distortion_screen", "paper", "affine distortion strength on the validation split", tuple(variants))


def main(argv=None) -> None:
    parser = screen_parser(__doc__, "results/screens/distortions")
    parser.add_argument("--strengths", type=float, nargs="+", default=list(STRENGTHS))
    args = parser.parse_args(argv)
    run_screen(screen_grid(tuple(args.strengths)), args)


if __name__ == "__main__":
    sys.exit(run_script(main))
