"""Do two grids agree on what a component is worth? The same swaps compared across two grids.

Two kinds of comparison: under two protocols (the paper's 20 online passes against batch 64 for 5 passes; the
ablation issue, item 5) and on two datasets (MNIST against Fashion-MNIST; the Fashion-MNIST issue, item 4). For
each swap both grids make (each rung, for two ladders), `lenet5 report` tabulates its pure-swap delta against its
baseline in each (the reference; on a ladder the rung before; paired by seed, 95% t-interval),
its rank in each (1 = the most helpful), and a verdict, and gives Spearman's rank correlation of the two rankings;
`lenet5 figures` draws the same deltas (repro/study/figures.py). The readings in docs/ quote these tables.

The verdict calls an effect *resolved* when its 95% interval excludes zero (it needs at least 2 seeds):
- `holds: helps` / `holds: hurts`: resolved in both grids, on the same side;
- `flips`: resolved in both, on opposite sides;
- `helps under X only` / `hurts under X only`: resolved in one grid, within noise of zero in the other;
- `unresolved in both`; `one seed`: a grid has only one seed of the swap, so no interval yet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Comparison:
    name: str  # the pages' marker and results/ablation.md's heading
    first: str  # grid names (repro/study/grids.py)
    second: str
    kind: str  # "protocol" or "dataset"
    first_label: str  # how the verdicts name each grid
    second_label: str
    figure: str  # the file `lenet5 figures` draws it in


COMPARISONS = [
    Comparison("protocols", "one_at_a_time", "one_at_a_time_minibatch", "protocol", "paper protocol",
               "mini-batch protocol", "ablation_protocols.png"),
] + [Comparison(f"datasets_{name}", name, f"{name}_fashion_mnist", "dataset", "MNIST", "Fashion-MNIST",
                f"ablation_datasets_{name}.png") for name in ("one_at_a_time", "leave_one_in", "ladder")]


def component_deltas(grid_dir: Path, grid) -> pd.DataFrame:
    """One row per pure variant of a grid: its test-error delta against its baseline, paired by seed (the
    reference for a swap; the rung before on the ladder), as a pure swap and at its own step size (`own_*`: the
    variant at its own against its baseline at its own; NaN until both have runs). A variant whose own step size
    is the protocol's is its own variant at its best."""
    from .ablation import grid_rows, outcome, paired_seeds
    from .grids import own_step_variant
    from .stats import paired_delta

    rows: dict[str, dict[int, dict]] = {}
    for r in grid_rows(grid_dir):
        if outcome(r) == "trained":  # as in the tables: a run that failed to train is not averaged
            rows.setdefault(r["variant"], {})[r["seed"]] = r
    errors = {name: {s: r["final_test_error_pct"] for s, r in runs.items()} for name, runs in rows.items()}

    def paired(baseline: str, variant: str) -> dict:  # only seeds made alike (ablation.MAKING)
        alike = paired_seeds(rows.get(baseline, {}), rows[variant])[0]
        return paired_delta({s: errors[baseline][s] for s in alike}, errors[variant])

    out = []
    for v in grid.variants[1:]:
        if v.own_lr or v.name not in errors:
            continue
        baseline = v.baseline or grid.reference.name
        pure = paired(baseline, v.name)
        own_name, own_baseline = own_step_variant(grid, v.name), own_step_variant(grid, baseline)
        own = {"delta": math.nan, "half": math.nan}
        if own_name and own_baseline and own_name in errors and own_baseline in errors:
            own = paired(own_baseline, own_name)
        out.append({"variant": v.name, "delta": pure["delta"], "half": pure["half"], "own_delta": own["delta"],
                    "own_half": own["half"], "seeds": len(pure["seeds"])})
    return pd.DataFrame(out, columns=["variant", "delta", "half", "own_delta", "own_half", "seeds"])


def swaps_in_both(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """The swaps with a pure-swap delta in both grids, one row each (columns suffixed _first and _second), in
    the first grid's order."""
    return first.dropna(subset=["delta"]).merge(second.dropna(subset=["delta"]), on="variant",
                                                suffixes=("_first", "_second"))


def _side(delta: float, half: float) -> int:
    """-1: the interval lies below zero (the swap helps); +1: above (it hurts); 0: it holds zero, or is unknown."""
    if math.isnan(half):
        return 0
    return -1 if delta + half < 0 else 1 if delta - half > 0 else 0


def verdict(delta_first: float, half_first: float, delta_second: float, half_second: float,
            first_label: str, second_label: str) -> str:
    """Whether a swap's effect is resolved in each grid, and on which side (the module docstring)."""
    if math.isnan(half_first) or math.isnan(half_second):
        return "one seed"
    a, b = _side(delta_first, half_first), _side(delta_second, half_second)
    word = {-1: "helps", 1: "hurts"}
    if a and b:
        return f"holds: {word[a]}" if a == b else "flips"
    if a:
        return f"{word[a]} under {first_label} only"
    if b:
        return f"{word[b]} under {second_label} only"
    return "unresolved in both"


def compare(first: pd.DataFrame, second: pd.DataFrame, comparison: Comparison) -> pd.DataFrame:
    """The swaps in both grids with their deltas, their rank in each grid (1 = the most helpful) and a verdict."""
    both = swaps_in_both(first, second)
    for side in ("first", "second"):
        both[f"rank_{side}"] = both[f"delta_{side}"].rank(method="min").astype(int)
    both["verdict"] = [verdict(r.delta_first, r.half_first, r.delta_second, r.half_second,
                               comparison.first_label, comparison.second_label) for r in both.itertuples()]
    return both[["variant", "seeds_first", "delta_first", "half_first", "rank_first", "seeds_second",
                 "delta_second", "half_second", "rank_second", "verdict"]]


def comparison_markdown(table: pd.DataFrame, comparison: Comparison) -> str:
    """The comparison as Markdown, with Spearman's rank correlation of the two rankings below it."""
    from .ablation import plus_minus
    from .stats import rank_correlation

    if table.empty:
        return (f"_No swap has runs in both `{comparison.first}` and `{comparison.second}` yet: "
                f"`lenet5 grid {comparison.first}`, `lenet5 grid {comparison.second}`._")
    lines = [f"| swap | Δ {comparison.first_label}, pp (seeds) | rank | Δ {comparison.second_label}, pp (seeds) "
             "| rank | verdict |", "|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| `{r.variant}` | {plus_minus(r.delta_first, r.half_first, signed=True)} ({r.seeds_first}) | "
                     f"{r.rank_first} | {plus_minus(r.delta_second, r.half_second, signed=True)} ({r.seeds_second}) | "
                     f"{r.rank_second} | {r.verdict} |")
    rho, p = rank_correlation(list(table["delta_first"]), list(table["delta_second"]))
    rho_text = ("fewer than 3 swaps: no rank correlation yet" if math.isnan(rho)
                else f"Spearman's rank correlation of the two rankings: {rho:.2f} (p = {p:.2g}, {len(table)} swaps)")
    note = (f"Δ: pure swap minus its baseline (the grid's reference; on a ladder the rung before), paired by seed, "
            f"95% t-interval; `{comparison.first}` against `{comparison.second}`.")
    return "\n".join(lines) + f"\n\n{rho_text}. {note}"


def comparison_markers(name: str) -> tuple[str, str]:
    from .docs import markers

    return markers(f"comparison:{name}")


def comparison_tables(results: Path) -> dict[str, str]:
    """{comparison name: Markdown} for every comparison whose two grids both have a runs file."""
    from .grid import RUNS_FILE
    from .grids import GRIDS

    out = {}
    for c in COMPARISONS:
        dirs = [results / "grids" / name for name in (c.first, c.second)]
        if all((d / RUNS_FILE).exists() for d in dirs):
            first, second = (component_deltas(d, GRIDS[n]) for d, n in zip(dirs, (c.first, c.second)))
            out[c.name] = comparison_markdown(compare(first, second, c), c)
    return out
