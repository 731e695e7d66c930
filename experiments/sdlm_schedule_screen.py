"""The smallest departure from the paper's SDLM schedule that trains as the paper's did (issue: the paper's own
numbers; paper_notes/sdlm.md).

The paper's eta = 0.0005 (Sec. III-B) collapses our network to chance in its first pass; the paper preset runs the
whole table 25x smaller (lr = 2e-5) and underfits (0.60% training error against the paper's 0.35%).
SDLM-MEASUREMENTS (shared with the project) points at h going stale during pass 1 while the activations grow.
Candidates, each the paper preset with the paper's per-pass table scaled by `lr / 0.0005`:

- the preset today (x0.04, h before each pass, App. C's literal rule);
- h re-estimated every 500 updates as well (`hessian_every`), at x0.1, x0.2, x0.3;
- a linear warm-up of eta over the first 3,000 updates of pass 1 (`warmup_updates`), with h every 500, at x1
  (the paper's literal table) and x0.2.

Every run trains on the first 50,000 training patterns and reports its error on the last 10,000 (the validation
split, `evaluate_on=validation`); the test set is never read. 20 passes each, so the per-pass curves in each
run's log give both the cheap screen (pass 5) and the full protocol (pass 20).

    python -m experiments.sdlm_schedule_screen --data-root ../shared/data [--seeds 0 1] [--workers 2]

Rows: results/screens/sdlm_schedule/runs.jsonl (resumable like `lenet5 grid`); each run's per-pass log beside it.
"""
from __future__ import annotations

import sys

from repro.config import run_config
from repro.errors import run_script
from repro.study.grids import Grid, Variant

from .screens import run_screen, screen_parser

CANDIDATES: dict[str, dict] = {
    "x0.04": dict(lr=0.00002),
    "x0.1_h500": dict(lr=0.00005, hessian_every=500),
    "x0.2_h500": dict(lr=0.0001, hessian_every=500),
    "x0.3_h500": dict(lr=0.00015, hessian_every=500),
    "x0.2_h500_warm3000": dict(lr=0.0001, hessian_every=500, warmup_updates=3000),
    "x1_h500_warm3000": dict(lr=0.0005, hessian_every=500, warmup_updates=3000),
}


def screen_grid(candidates=CANDIDATES) -> Grid:
    variants = tuple(Variant(name, None if i == 0 else "schedule", name,
                             run_config("paper", {**overrides, "evaluate_on": "validation"}))
                     for i, (name, overrides) in enumerate(candidates.items()))
    return Grid("sdlm_schedule_screen", "paper", "SDLM schedules on the validation split", variants)


def main(argv=None) -> None:
    parser = screen_parser(__doc__, "results/screens/sdlm_schedule")
    parser.add_argument("--only", nargs="+", default=None, help="run only these candidates")
    args = parser.parse_args(argv)
    candidates = {k: v for k, v in CANDIDATES.items() if not args.only or k in args.only}
    run_screen(screen_grid(candidates), args)


if __name__ == "__main__":
    sys.exit(run_script(main))
