"""The ablation tables of `lenet5 report`: one pandas table per grid, from results/grids/NAME/runs.jsonl.

For each variant: its test error as mean ± 95% t-interval over seeds; its difference from the grid's reference,
paired by seed, with its interval and the paired t-test's p-value; and McNemar's exact test on the test
predictions of all seeds pooled (repro/study/stats.py). Runs that failed to train (`outcome`: diverged,
collapsed to chance, or failed) are listed, not averaged: one network stuck at chance would otherwise set a
variant's mean and interval on its own, and say nothing about how well the component works when it trains.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..provenance import MAKING
from ..run_folder import read_predictions
from .grid import RUNS_FILE, read_rows
from .stats import holm, mcnemar, mean_ci, paired_delta

COLUMNS = ["variant", "baseline", "seeds", "test_mean", "test_half", "delta", "delta_half", "detectable", "p_paired",
           "p_paired_holm", "mcnemar_b", "mcnemar_c", "p_mcnemar", "p_mcnemar_holm", "train_mean", "train_half", "passes",
           "not_trained", "unpaired", "paired"]

# A network that predicts one class for every input errs on ~89% of MNIST's training patterns (~90% of
# Fashion-MNIST's); one that learns anything at all is far below. A run that ends at or above this training error
# has collapsed (e.g. every ReLU dead after one large step) even though its loss stayed finite.
COLLAPSED_TRAIN_ERROR_PCT = 80.0


def grid_rows(grid_dir: Path) -> list[dict]:
    """The complete rows of a grid folder's runs file (a damaged last line is left out)."""
    return read_rows(Path(grid_dir) / RUNS_FILE)[0]


def outcome(row: dict) -> str:
    """'trained' for a finished run that learned; else why it is not averaged: its status ('diverged': the loss
    became non-finite; 'failed': an error), or 'collapsed' (finished at chance: COLLAPSED_TRAIN_ERROR_PCT)."""
    if row["status"] != "finished":
        return row["status"]
    return "collapsed" if row["final_train_error_pct"] >= COLLAPSED_TRAIN_ERROR_PCT else "trained"


def made_alike(first: dict, second: dict) -> bool:
    """Whether two rows (or summaries' flat fields) were made by the same code on the same kind of machine
    (repro/provenance.py, MAKING). A Δ pairs a variant's seed with its baseline's seed only where both were, because
    only then is the seed's pair the controlled comparison it claims to be (elsewhere rounding alone moves a run by
    about 0.1 point). Runs made before runs recorded these fields have None in each and pair with one another. The
    grid runner copies only runs made like those it would make, for the same reason (grid.py, `finished_runs`)."""
    return all(first.get(k) == second.get(k) for k in MAKING)


def paired_seeds(baseline: dict[int, dict], variant: dict[int, dict]) -> tuple[list[int], list[int]]:
    """(the seeds both have and made alike, the variant's seeds whose baseline run was made otherwise); each
    argument maps seed -> row."""
    common = sorted(set(baseline) & set(variant))
    alike = [s for s in common if made_alike(baseline[s], variant[s])]
    return alike, [s for s in common if s not in alike]


def _predictions(grid_dir: Path, row: dict) -> tuple[list, list]:
    data = read_predictions(Path(grid_dir) / row["run_dir"])
    return data["labels"], data["predictions"]


def grid_table(grid_dir: Path, grid) -> pd.DataFrame:
    """ablation_table for a declared grid (repro/study/grids.py): its order and each variant's baseline."""
    return ablation_table(grid_dir, grid.reference.name, [v.name for v in grid.variants],
                          {v.name: v.baseline for v in grid.variants})


def ablation_table(grid_dir: Path, reference: str, order: list[str] | None = None,
                   baselines: dict[str, str | None] | None = None) -> pd.DataFrame:
    """One row per variant that has runs (grid order if given, else file order). Each variant is compared with
    its baseline (`baselines[name]`; default and when absent: the reference); the `baseline` column names it."""
    rows = grid_rows(grid_dir)
    finished = [r for r in rows if outcome(r) == "trained"]
    names = order or list(dict.fromkeys(r["variant"] for r in rows))
    by_variant = {name: {r["seed"]: r for r in finished if r["variant"] == name} for name in names}
    baselines = baselines or {}
    table = []
    for name in names:
        runs = by_variant[name]
        attempted = [r for r in rows if r["variant"] == name]
        if not attempted:
            continue  # not run yet
        not_trained = [f"seed {r['seed']} {outcome(r)}" for r in attempted if outcome(r) != "trained"]
        if not runs:
            table.append({"variant": name, "seeds": [], "not_trained": not_trained})
            continue
        test = {s: r["final_test_error_pct"] for s, r in runs.items()}
        test_mean, test_half = mean_ci(list(test.values()))
        train_mean, train_half = mean_ci([r["final_train_error_pct"] for r in runs.values()])
        entry = {"variant": name, "seeds": sorted(runs), "test_mean": test_mean, "test_half": test_half,
                 "train_mean": train_mean, "train_half": train_half,
                 "passes": max(r["passes"] for r in runs.values()), "not_trained": not_trained}
        base = baselines.get(name) or reference
        entry["baseline"] = None if name == reference else base
        if name != reference:
            ref = by_variant.get(base, {})
            alike, entry["unpaired"] = paired_seeds(ref, runs)
            ref_test = {s: ref[s]["final_test_error_pct"] for s in alike}
            paired = paired_delta(ref_test, test)
            entry.update(delta=paired["delta"], delta_half=paired["half"], p_paired=paired["p"],
                         detectable=paired["detectable"], paired=len(paired["seeds"]))
            if paired["seeds"]:
                labels = _predictions(grid_dir, ref[paired["seeds"][0]])[0]
                ref_preds = [_predictions(grid_dir, ref[s])[1] for s in paired["seeds"]]
                var_preds = [_predictions(grid_dir, runs[s])[1] for s in paired["seeds"]]
                m = mcnemar(labels, ref_preds, var_preds)
                entry.update(mcnemar_b=m["b"], mcnemar_c=m["c"], p_mcnemar=m["p"])
        table.append(entry)
    frame = pd.DataFrame(table, columns=COLUMNS)
    # one family per grid: every comparison in the table (Holm controls the chance of any false positive)
    for column in ("p_paired", "p_mcnemar"):
        frame[f"{column}_holm"] = holm(frame[column].astype(float).tolist())
    return frame


def _num(value, fmt: str = "{:.2f}") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def plus_minus(mean, half, signed: bool = False) -> str:
    """`mean ± half` to two decimals (`+`-signed for a Δ), `mean` alone without an interval, `–` without a mean:
    the one format of every table's numbers (the grids' and the comparisons')."""
    fmt = "{:+.2f}" if signed else "{:.2f}"
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return _num(mean, fmt) if half is None or math.isnan(half) else f"{_num(mean, fmt)} ± {half:.2f}"


def _p(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.1e}" if value < 0.001 else f"{value:.3f}"


def _p_holm(p, adjusted) -> str:
    return "–" if _p(p) == "–" else f"{_p(p)} ({_p(adjusted)})"


def table_markdown(table: pd.DataFrame, reference: str) -> str:
    """The table as Markdown; pandas' own to_markdown needs the tabulate package, which this would be the only
    use of."""
    compared = any(b not in (None, reference) and b == b for b in table["baseline"])  # b == b: not NaN
    against = "its baseline" if compared else "reference"
    lines = [f"| variant | seeds | test error % (mean ± 95% CI) | Δ vs {against}, pp (paired, 95% CI) | paired t p "
             "(Holm) | detectable Δ, pp | McNemar b / c | McNemar p (Holm) | train error % | not averaged |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        is_ref = r["variant"] == reference
        name = f"**{r['variant']}** (reference)" if is_ref else f"`{r['variant']}`"
        seeds = ", ".join(map(str, r["seeds"])) or "–"
        bc = "–" if is_ref or _num(r["mcnemar_b"]) == "–" else f"{int(r['mcnemar_b'])} / {int(r['mcnemar_c'])}"
        delta = "–" if is_ref else plus_minus(r["delta"], r["delta_half"], signed=True)
        if compared and not is_ref:
            delta += f" vs `{r['baseline']}`"
        unpaired = r["unpaired"] if isinstance(r["unpaired"], list) else []
        if unpaired and not is_ref:
            delta += f" (unpaired: seed {', '.join(map(str, unpaired))}, baseline made by other code or machine)"
        p_t = "–" if is_ref else _p_holm(r["p_paired"], r["p_paired_holm"])
        p_m = "–" if is_ref else _p_holm(r["p_mcnemar"], r["p_mcnemar_holm"])
        detectable = "–" if is_ref else _num(r["detectable"])
        lines.append(f"| {name} | {seeds} | {plus_minus(r['test_mean'], r['test_half'])} | {delta} | "
                     f"{p_t} | {detectable} | {bc} | {p_m} | "
                     f"{plus_minus(r['train_mean'], r['train_half'])} | {', '.join(r['not_trained'])} |")
    return "\n".join(lines)
