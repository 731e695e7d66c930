"""Each grid variant's own step size, chosen on the validation split (the ablation issue, item 2).

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
repro/study/grids.py's STEP_SIZES by hand, and tests/test_step_size_screen.py checks it against these rows.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from repro.config import apply_overrides
from repro.errors import ConfigError, run_script
from repro.study.grid import RUNS_FILE, read_rows, run_grid
from repro.study.grids import GRIDS, PROTOCOLS, Grid, Variant, own_lr_name

BASE_STEPS = (-2, -1, 0, 1)  # x0.1, x0.3, x1, x3 on the 1-3-10 series
MAX_STEPS = 6  # a sweep stops growing at 6 values: 300x on the 1-3-10 series
CHEAP_PASSES = {"paper": 4}  # the mini-batch protocol's 5 passes are cheap already
OUT = Path("results/screens/step_sizes")


def series(lr: float, step: int) -> float:
    """The 1-3-10 series around `lr`: step 0 is lr, +1 is 3 lr, +2 is 10 lr, -1 is 0.3 lr, ..."""
    return float(f"{lr * (3.0 if step % 2 else 1.0) * 10.0 ** (step // 2):.3g}")


def screen_dir(grid: str, passes: int, root: Path = OUT) -> Path:
    return Path(root) / f"{grid}_p{passes}"


def finished_errors(out: Path) -> dict[str, dict[float, list[float]]]:
    """{pure variant: {lr: [validation error after the last pass, per seed]}}; a diverged run counts as inf."""
    rows, _ = read_rows(out / RUNS_FILE)
    errors: dict[str, dict[float, list[float]]] = {}
    for row in rows:
        pure = row["variant"].split("@lr=")[0]
        value = row["final_test_error_pct"] if row["status"] == "finished" else math.inf
        if row["status"] in ("finished", "diverged"):
            errors.setdefault(pure, {}).setdefault(row["lr"], []).append(value)
    return errors


def choose(errors: dict[float, list[float]], pure_lr: float) -> float | None:
    """The lr with the lowest mean validation error; ties go to the one closest to the pure swap's lr."""
    if not errors:
        return None
    return min(errors, key=lambda lr: (sum(errors[lr]) / len(errors[lr]), abs(math.log(lr / pure_lr))))


def lr_sweep(variant: Variant, errors: dict[float, list[float]]) -> list[float]:
    """The step sizes to screen: the base sweep, extended beyond whichever end holds the best so far."""
    pure = variant.config.train.lr
    steps = list(BASE_STEPS)
    while len(steps) < MAX_STEPS:
        done = {s: series(pure, s) for s in steps if series(pure, s) in errors}
        if len(done) < len(steps):
            break  # finish this sweep before growing it
        best = choose({lr: errors[lr] for lr in done.values()}, pure)
        if best == series(pure, steps[0]):
            steps.insert(0, steps[0] - 1)
        elif best == series(pure, steps[-1]):
            steps.append(steps[-1] + 1)
        else:
            break
    return [series(pure, s) for s in steps]


def pure_variants(grid: Grid, names: list[str] | None) -> list[Variant]:
    """The grid's variants at their grid-wide step size (all, or those named): what a screen sweeps. A
    `NAME@lr=...` variant already has its step size, the one this screen chose."""
    for name in names or []:
        if grid.variant(name).own_lr:  # ConfigError, listing the grid's variants, for a name it lacks
            raise ConfigError(f"{name!r} is {grid.name}'s variant at a step size a screen chose; screen the pure "
                              f"variant {name.split('@')[0]!r} instead")
    return [v for v in grid.variants if not v.own_lr and (not names or v.name in names)]


def cheap_passes(protocol: str) -> int:
    return CHEAP_PASSES.get(protocol, PROTOCOLS[protocol].fields["epochs"])


def screen_grid(grid: Grid, passes: int, names: list[str] | None, out: Path) -> Grid:
    """The screen's cells: each pure variant at each step size of its sweep, `passes` passes (a variant under
    another protocol than the grid's: that protocol's cheap length), scored on the validation split."""
    errors = finished_errors(out)
    cells = []
    for v in pure_variants(grid, names):
        protocol = grid.protocol_of(v).name
        own_passes = passes if protocol == grid.protocol else cheap_passes(protocol)
        for lr in lr_sweep(v, errors.get(v.name, {})):
            config = apply_overrides(v.config, {"lr": lr, "epochs": own_passes, "evaluate_on": "validation"})
            cells.append(Variant(own_lr_name(v.name, lr), v.component, v.value, config))
    return Grid(f"step_sizes_{grid.name}_p{passes}", grid.preset, f"step sizes for {grid.name}", tuple(cells),
                grid.protocol)


def table(grid: Grid, passes: int) -> str:
    errors = finished_errors(screen_dir(grid.name, passes))
    lines = [f"| variant | pure lr | validation error % after pass {passes} at each lr | chosen |", "|---|---|---|---|"]
    for v in pure_variants(grid, None):
        found = errors.get(v.name, {})
        if not found:
            continue
        cells = ", ".join(f"{lr:g}: " + "/".join("div" if math.isinf(e) else f"{e:.2f}" for e in found[lr])
                          for lr in sorted(found))
        lines.append(f"| {v.name} | {v.config.train.lr:g} | {cells} | {choose(found, v.config.train.lr):g} |")
    return "\n".join(lines)


VALIDATION_PATTERNS = 10_000


def standard_error_pct(error_pct: float, n: int = VALIDATION_PATTERNS) -> float:
    """The binomial standard error of an error rate measured on n patterns, in points: how far apart two step
    sizes' errors can lie by the luck of the validation sample alone (0.10 points at 1%)."""
    p = error_pct / 100
    return 100 * math.sqrt(p * (1 - p) / n)


def verdict(cheap_choice: float, full: dict[float, float]) -> str:
    """Does the cheap screen's choice hold at the full protocol? `yes` where it is the full protocol's best too;
    `tied` where its full-protocol error lies within one standard error of the best one (the two are not told
    apart by the validation split); `no` otherwise."""
    best = min(full, key=full.get)
    if cheap_choice == best:
        return "yes"
    gap, se = full[cheap_choice] - full[best], standard_error_pct(full[best])
    return f"tied ({gap:.2f} < 1 SE = {se:.2f})" if gap < se else f"no ({gap:.2f} >= 1 SE = {se:.2f})"


def agreement(grid: Grid, cheap: int, full: int) -> str:
    """For variants screened at both lengths: each sweep's ranking after the cheap screen and after the full
    protocol, read from the full runs' logs at pass `cheap` (the same numbers as the cheap runs) and `full`, with
    Spearman's rank correlation of the two rankings and whether the cheap choice holds (`verdict`)."""
    from repro.study.stats import rank_correlation
    from repro.train import read_log

    out = screen_dir(grid.name, full)
    rows, _ = read_rows(out / RUNS_FILE)
    lines = [f"| variant | lr ranking after pass {cheap} | lr ranking after pass {full} | Spearman rho | "
             "cheap choice holds |", "|---|---|---|---|---|"]
    by_variant: dict[str, dict[float, dict[int, float]]] = {}
    for row in rows:
        if row["status"] != "finished":
            continue
        log = {e["pass"]: e["test_error_pct"] for e in read_log(out / row["run_dir"])}
        by_variant.setdefault(row["variant"].split("@lr=")[0], {})[row["lr"]] = log
    for name, sweep_logs in by_variant.items():
        lrs = sorted(sweep_logs)
        ranked = {p: sorted(lrs, key=lambda lr: sweep_logs[lr][p]) for p in (cheap, full)}
        rho, _ = rank_correlation([sweep_logs[lr][cheap] for lr in lrs], [sweep_logs[lr][full] for lr in lrs])
        holds = verdict(ranked[cheap][0], {lr: sweep_logs[lr][full] for lr in lrs})
        lines.append(f"| {name} | " + " | ".join(", ".join(f"{lr:g} ({sweep_logs[lr][p]:.2f})" for lr in ranked[p])
                                             for p in (cheap, full)) + f" | {rho:.2f} | {holds} |")
    return "\n".join(lines)


def chosen_step_sizes(grid: Grid, passes: int, root: Path = OUT) -> dict[str, float]:
    """{pure variant: chosen lr} for every variant whose sweep is complete (its best inside, or at MAX_STEPS)."""
    errors = finished_errors(screen_dir(grid.name, passes, root))
    chosen = {}
    for v in pure_variants(grid, None):
        found = errors.get(v.name, {})
        steps = lr_sweep(v, found)
        if found and all(lr in found for lr in steps):
            chosen[v.name] = choose({lr: found[lr] for lr in steps}, v.config.train.lr)
    return chosen


def reuse_sources(root: Path = OUT) -> list[Path]:
    """The folders whose finished runs a screen copies instead of training them again: the other screens
    (results/screens/*, e.g. the SDLM schedule screen's) and the other step-size screens beside this one
    (results/screens/step_sizes/*, e.g. one_at_a_time's sweeps, which the ladder grid's first rungs share)."""
    root = Path(root)
    return [d for parent in (root.parent, root) if parent.is_dir() for d in sorted(parent.iterdir()) if d.is_dir()]


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
    protocol = PROTOCOLS[grid.protocol]
    passes = args.passes or cheap_passes(grid.protocol)
    if args.table:
        print(table(grid, passes))
        print("\nSTEP_SIZES entry:", {args.grid: chosen_step_sizes(grid, passes)})
        return
    if args.agreement:
        print(agreement(grid, cheap_passes(grid.protocol), protocol.fields["epochs"]))
        return
    out = screen_dir(grid.name, passes)
    # a sweep grows once its first values are in: start again until no sweep has anything left to run
    for _ in range(MAX_STEPS - len(BASE_STEPS) + 1):
        screen = screen_grid(grid, passes, args.variants, out)
        before = len(read_rows(out / RUNS_FILE)[0])
        run_grid(screen, args.seeds, out, args.workers, 1, args.data_root, reuse=reuse_sources())
        if len(read_rows(out / RUNS_FILE)[0]) == before:
            break
    print(table(grid, passes))


if __name__ == "__main__":
    sys.exit(run_script(main))
