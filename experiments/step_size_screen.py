"""Each grid variant's own step size, chosen on the validation split (the ablation issue, item 2): runs the
screen and prints its tables. The sweep, the choice and the tables are repro/study/screens.py's.

For every pure variant of a grid (repro/study/grids.py; the reference included) the screen trains a sweep of
step sizes (`lr`: SDLM's eta at pass 1 under the paper's per-pass table, or Adam's learning rate) on the first
50,000 training patterns and scores each on the last 10,000 (`evaluate_on=validation`); the test set is never
read. The sweep is the 1-3-10 series around the pure swap's lr: x0.1, x0.3, x1, x3 (at least 4 values spanning
30x). When a variant's best value sits at an end of its sweep, the next start adds the value beyond it, until
the best is inside or the sweep holds 6 values, 300x (`lr_sweep`). (A sweep, not to be confused with the `ladder`
grid, whose rungs it screens like any other grid's variants.)

Cheap screen: the first `--passes` passes of the grid's protocol (default: 4 of the paper protocol's 20; all 5 of
the mini-batch protocol). Under the paper's per-pass table the learning rate of a pass does not depend on the
number of passes, so a 4-pass run is exactly the first 4 passes of the 20-pass one, and `--passes 20` on a few
variants shows whether the cheap ranking holds at the full protocol (`--agreement`). A variant that trains under
another protocol than its grid's (the ladder's rungs after its protocol rung) is screened at that protocol's
cheap length, in the same folder.

    python -m experiments.step_size_screen one_at_a_time --data-root ../shared/data [--workers 2]
    python -m experiments.step_size_screen one_at_a_time --passes 20 --variants paper activation=relu
    python -m experiments.step_size_screen one_at_a_time --table        # the sweeps and each variant's choice
    python -m experiments.step_size_screen one_at_a_time --agreement    # cheap vs full ranking, where both ran

Rows: results/screens/step_sizes/GRID_pPASSES/runs.jsonl (resumable like `lenet5 grid`). The choice (lowest
validation error after the last pass, mean over the seeds screened; a diverged run counts as worst) goes into
repro/study/grids.py's STEP_SIZES by hand (`--table` prints the entry), and
repro.study.screens.step_size_mismatches, run by tests/test_step_size_screen.py, checks it against these rows.
"""
from __future__ import annotations

import argparse
import sys

from repro.errors import run_script
from repro.study.grid import RUNS_FILE, read_rows, run_grid
from repro.study.grids import GRIDS, PROTOCOLS
from repro.study.screens import (BASE_STEPS, MAX_STEPS, STEP_SIZES_ROOT, agreement_table, cheap_passes,
                                 chosen_step_sizes, reuse_sources, screen_dir, screen_grid, step_size_table)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", choices=list(GRIDS))
    parser.add_argument("--passes", type=int, default=None, help="default: 4 (paper protocol) or the protocol's own")
    parser.add_argument("--variants", nargs="+", default=None, help="only these pure variants")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--table", action="store_true", help="print the sweeps and the choices; no runs")
    parser.add_argument("--agreement", action="store_true", help="cheap vs full ranking; no runs")
    args = parser.parse_args(argv)
    grid = GRIDS[args.grid]
    passes = args.passes or cheap_passes(grid.protocol)
    if args.table:
        print(step_size_table(grid, passes))
        print("\nSTEP_SIZES entry:", {args.grid: chosen_step_sizes(grid, passes)})
        return
    if args.agreement:
        print(agreement_table(grid, cheap_passes(grid.protocol), PROTOCOLS[grid.protocol].fields["epochs"]))
        return
    out = screen_dir(grid.name, passes, STEP_SIZES_ROOT)
    # a sweep grows once its first values are in: start again until no sweep has anything left to run
    for _ in range(MAX_STEPS - len(BASE_STEPS) + 1):
        screen = screen_grid(grid, passes, args.variants, out)
        before = len(read_rows(out / RUNS_FILE)[0])
        run_grid(screen, args.seeds, out, args.workers, 1, args.data_root, reuse=reuse_sources(STEP_SIZES_ROOT))
        if len(read_rows(out / RUNS_FILE)[0]) == before:
            break
    print(step_size_table(grid, passes))


if __name__ == "__main__":
    sys.exit(run_script(main))
