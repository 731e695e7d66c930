"""The validation screens' rules and tables: how a step-size screen sweeps and chooses (the ablation issue, item 2),
the check that the grids' STEP_SIZES are the committed screens' choices, and the tables paper_notes/ quotes.

The scripts that run the screens live in experiments/ (step_size_screen.py, sdlm_schedule_screen.py,
distortion_screen.py); what they decide, and how their committed rows read, lives here, so that tests and the
grids depend on the study layer and not on a script.

A step-size screen trains each pure variant of a grid (repro/study/grids.py) at a sweep of step sizes (`lr`: SDLM's
eta at pass 1, or Adam's learning rate) on the first 50,000 training patterns and scores each on the last 10,000
(`evaluate_on=validation`). The sweep is the 1-3-10 series around the pure swap's lr, x0.1 to x3 (`BASE_STEPS`),
grown past whichever end holds the best until the best is inside or the sweep holds `MAX_STEPS` values
(`lr_sweep`). The choice is the lowest validation error after the last pass, mean over the seeds screened, a
diverged run counting as worst (`choose`). Rows: results/screens/step_sizes/GRID_pPASSES/runs.jsonl.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..config import apply_overrides
from ..data import VALIDATION_SIZE
from ..errors import ConfigError
from ..run_folder import read_log
from .grid import RUNS_FILE, read_rows
from .grids import GRIDS, PROTOCOLS, STEP_SIZES, Grid, Variant, own_lr_name
from .stats import rank_correlation

BASE_STEPS = (-2, -1, 0, 1)  # x0.1, x0.3, x1, x3 on the 1-3-10 series: at least 4 values spanning 30x
MAX_STEPS = 6  # a sweep stops growing at 6 values: 300x on the 1-3-10 series
# Under the paper's per-pass table a pass's learning rate does not depend on the number of passes, so a 4-pass run
# is exactly the first 4 passes of the 20-pass one; the mini-batch protocol's 5 passes are cheap already.
CHEAP_PASSES = {"paper": 4}
STEP_SIZES_ROOT = Path("results/screens/step_sizes")


def series(lr: float, step: int) -> float:
    """The 1-3-10 series around `lr`: step 0 is lr, +1 is 3 lr, +2 is 10 lr, -1 is 0.3 lr, ..."""
    return float(f"{lr * (3.0 if step % 2 else 1.0) * 10.0 ** (step // 2):.3g}")


def cheap_passes(protocol: str) -> int:
    """The passes a screen runs under `protocol`: CHEAP_PASSES, else the protocol's own."""
    return CHEAP_PASSES.get(protocol, PROTOCOLS[protocol].fields["epochs"])


def screen_dir(grid: str, passes: int, root: Path = STEP_SIZES_ROOT) -> Path:
    return Path(root) / f"{grid}_p{passes}"


def finished_errors(out: Path) -> dict[str, dict[float, list[float]]]:
    """{pure variant: {lr: [validation error after the last pass, per seed]}}; a diverged run counts as inf, a
    failed one not at all (a re-run retries it)."""
    rows, _ = read_rows(Path(out) / RUNS_FILE)
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
    `NAME@lr=...` variant already has its step size, the one a screen chose."""
    for name in names or []:
        if grid.variant(name).own_lr:  # ConfigError, listing the grid's variants, for a name it lacks
            raise ConfigError(f"{name!r} is {grid.name}'s variant at a step size a screen chose; screen the pure "
                              f"variant {name.split('@')[0]!r} instead")
    return [v for v in grid.variants if not v.own_lr and (not names or v.name in names)]


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


def chosen_step_sizes(grid: Grid, passes: int, root: Path = STEP_SIZES_ROOT) -> dict[str, float]:
    """{pure variant: chosen lr} for every variant whose sweep is complete (its best inside, or at MAX_STEPS)."""
    errors = finished_errors(screen_dir(grid.name, passes, root))
    chosen = {}
    for v in pure_variants(grid, None):
        found = errors.get(v.name, {})
        steps = lr_sweep(v, found)
        if found and all(lr in found for lr in steps):
            chosen[v.name] = choose({lr: found[lr] for lr in steps}, v.config.train.lr)
    return chosen


def step_size_mismatches(root: Path = STEP_SIZES_ROOT,
                         declared: dict[str, dict[str, float]] | None = None) -> list[str]:
    """Where the declared step sizes (grids.py's STEP_SIZES unless given) differ from the committed screens'
    choices (`chosen_step_sizes` at each grid's cheap length, under `root`), one line each; [] when they agree.

    STEP_SIZES is written out in grids.py rather than read from these rows when a grid is built, so that a grid
    does not depend on results/ (absent from an installed package) and cannot change when a screen gains a row;
    this check is what ties the two (tests/test_step_size_screen.py). Both ways: a declared value the screen did
    not choose, a declared variant the screen has no complete sweep for, and a choice left undeclared."""
    declared = STEP_SIZES if declared is None else declared
    lines = [f"STEP_SIZES names {name!r}, which is not a grid" for name in declared if name not in GRIDS]
    for name, grid in GRIDS.items():
        want = declared.get(name, {})
        chosen = chosen_step_sizes(grid, cheap_passes(grid.protocol), root)
        for variant in sorted(set(want) | set(chosen)):
            if variant not in chosen:
                lines.append(f"{name}: {variant} declared {want[variant]:g}, but "
                             f"{screen_dir(name, cheap_passes(grid.protocol), root)} holds no complete sweep of it")
            elif variant not in want:
                lines.append(f"{name}: {variant} not declared; the screen chose {chosen[variant]:g}")
            elif want[variant] != chosen[variant]:
                lines.append(f"{name}: {variant} declared {want[variant]:g}, the screen chose {chosen[variant]:g}")
    return lines


def reuse_sources(root: Path = STEP_SIZES_ROOT) -> list[Path]:
    """The folders whose finished runs a screen copies instead of training them again: the other screens
    (results/screens/*, e.g. the SDLM schedule screen's) and the other step-size screens beside this one
    (results/screens/step_sizes/*, e.g. one_at_a_time's sweeps, which the ladder grid's first rungs share)."""
    root = Path(root)
    return [d for parent in (root.parent, root) if parent.is_dir() for d in sorted(parent.iterdir()) if d.is_dir()]


def step_size_table(grid: Grid, passes: int, root: Path = STEP_SIZES_ROOT) -> str:
    """Each screened variant's sweep (validation error after the last pass at each lr, per seed) and its choice."""
    errors = finished_errors(screen_dir(grid.name, passes, root))
    lines = [f"| variant | pure lr | validation error % after pass {passes} at each lr | chosen |", "|---|---|---|---|"]
    for v in pure_variants(grid, None):
        found = errors.get(v.name, {})
        if not found:
            continue
        cells = ", ".join(f"{lr:g}: " + "/".join("div" if math.isinf(e) else f"{e:.2f}" for e in found[lr])
                          for lr in sorted(found))
        lines.append(f"| {v.name} | {v.config.train.lr:g} | {cells} | {choose(found, v.config.train.lr):g} |")
    return "\n".join(lines)


def standard_error_pct(error_pct: float, n: int = VALIDATION_SIZE) -> float:
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


def agreement_table(grid: Grid, cheap: int, full: int, root: Path = STEP_SIZES_ROOT) -> str:
    """For variants screened at both lengths: each sweep's ranking after the cheap screen and after the full
    protocol, read from the full runs' logs at pass `cheap` (the same numbers as the cheap runs) and `full`, with
    Spearman's rank correlation of the two rankings and whether the cheap choice holds (`verdict`)."""
    out = screen_dir(grid.name, full, root)
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


def screen_table(out: Path, passes=(1, 2, 5, 10, 20)) -> str:
    """The other screens' table (sdlm_schedule, distortions): validation error after the given passes and the final
    training error, one line per finished run of the screen in `out`."""
    rows, _ = read_rows(Path(out) / RUNS_FILE)
    lines = ["| candidate | seed | " + " | ".join(f"pass {p}" for p in passes) + " | training error % after pass 20 |",
             "|---|---|" + "---|" * (len(passes) + 1)]
    for row in sorted((r for r in rows if r["status"] == "finished"), key=lambda r: (r["variant"], r["seed"])):
        log = {e["pass"]: e for e in read_log(Path(out) / row["run_dir"])}
        cells = [f"{log[p]['test_error_pct']:.2f}" if p in log else "–" for p in passes]
        lines.append(f"| {row['variant']} | {row['seed']} | " + " | ".join(cells) +
                     f" | {row['final_train_error_pct']:.2f} |")
    return "\n".join(lines)
