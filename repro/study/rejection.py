"""The ablation's second axis (paper_notes/rbf_output.md): each run's rejection numbers from its stored outputs,
and each swap's paired difference in them, with the error tables' statistics.

Per run (`run_rejection`), from test_outputs.npz (and nondigit_outputs.npz where the run kept one): with each
head's default confidence (repro/rejection.py) the share of test patterns rejected to reach 0.5% error, the error
at 1% and 5% rejected, and per non-digit set the AUROC of telling the test digits from it and the share of it
accepted at the threshold that keeps 99% of the digits. Per grid (`rejection_table`): per variant the mean and 95%
t-interval over seeds, and its paired-by-seed difference from its baseline with the paired t-test's p-value, Holm
adjusted over the table. Runs that did not train (repro/study/ablation.py `outcome`) are left out, as in the
error tables; runs made before outputs were kept have none and are left out too.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..components import HEADS
from ..nondigits import FASHION_KEPT, NONDIGIT_SETS
from ..rejection import DEFAULT_CONFIDENCE, KEEP_DIGITS_PCT, confidence, nondigit_summary, rejection_summary
from ..run_folder import RunPaths, read_nondigit_outputs, read_outputs, read_predictions, read_run_config
from .ablation import grid_rows, outcome, paired_seeds, plus_minus
from .stats import ALPHA, holm, mean_ci, paired_delta

# the metrics of a run, in table order: (key, heading, lower is better)
METRICS = (("reject_pct_for_0_5pct_error", "rejected for 0.5% error, %", True),
           ("error_pct_at_1pct_reject", "error at 1% rejected, %", True),
           ("error_pct_at_5pct_reject", "error at 5% rejected, %", True),
           *((f"auroc_{name}", f"AUROC digits vs {name}", False) for name in NONDIGIT_SETS),
           *((f"accepted_pct_{name}", f"{name} accepted at {KEEP_DIGITS_PCT:g}% of digits, %", True)
             for name in NONDIGIT_SETS))


def run_rejection(run_dir: Path, kind: str | None = None) -> dict | None:
    """One run's rejection metrics (None for a run that kept no outputs); `kind`: the confidence (default: the
    head's, DEFAULT_CONFIDENCE)."""
    run_dir = Path(run_dir)
    if not RunPaths(run_dir).outputs.exists():
        return None
    config = read_run_config(run_dir)
    lower = HEADS[config.model.head].lower_is_better
    kind = kind or DEFAULT_CONFIDENCE[config.model.head]
    j = config.train.map_j
    outputs = read_outputs(run_dir).astype(np.float64)
    labels = read_predictions(run_dir)["labels"]
    metrics = rejection_summary(outputs, labels, lower, kind, j)
    others = {name: confidence(other.astype(np.float64), lower, kind, j)
              for name, other in read_nondigit_outputs(run_dir).items()}
    for name, m in nondigit_summary(confidence(outputs, lower, kind, j), others).items():
        metrics[f"auroc_{name}"], metrics[f"accepted_pct_{name}"] = m["auroc"], m["accepted_pct"]
    return metrics


def rejection_table(grid_dir: Path, grid) -> pd.DataFrame:
    """Per variant of a declared grid (repro/study/grids.py): mean ± half-width of each metric over its seeds with
    outputs, and the paired difference from its baseline (`delta_<metric>`, `half_<metric>`, `p_<metric>`,
    `p_holm_<metric>`)."""
    rows = [r for r in grid_rows(grid_dir) if outcome(r) == "trained"]
    per_variant: dict[str, dict[int, dict]] = {}
    made: dict[str, dict[int, dict]] = {}  # the rows, for pairing only runs made alike (ablation.MAKING)
    for row in rows:
        metrics = run_rejection(Path(grid_dir) / row["run_dir"])
        if metrics is not None:
            per_variant.setdefault(row["variant"], {})[row["seed"]] = metrics
            made.setdefault(row["variant"], {})[row["seed"]] = row
    table = []
    for v in grid.variants:
        runs = per_variant.get(v.name)
        if not runs:
            continue
        entry = {"variant": v.name, "baseline": v.baseline if v.name != grid.reference.name else None,
                 "seeds": sorted(runs)}
        base_name = v.baseline or grid.reference.name
        base = per_variant.get(base_name, {}) if v.name != grid.reference.name else {}
        alike = set(paired_seeds(made.get(base_name, {}), made[v.name])[0])
        base = {s: m for s, m in base.items() if s in alike}
        for key, _, _ in METRICS:
            values = {s: m[key] for s, m in runs.items() if key in m}
            entry[f"mean_{key}"], entry[f"half_{key}"] = mean_ci(list(values.values())) if values else (math.nan,) * 2
            if base:
                paired = paired_delta({s: m[key] for s, m in base.items() if key in m}, values)
                entry[f"delta_{key}"], entry[f"dhalf_{key}"], entry[f"p_{key}"] = (paired["delta"], paired["half"],
                                                                                   paired["p"])
                entry["paired"] = max(entry.get("paired", 0), len(paired["seeds"]))
        table.append(entry)
    frame = pd.DataFrame(table)
    for key, _, _ in METRICS:
        if f"p_{key}" in frame:
            frame[f"p_holm_{key}"] = holm(frame[f"p_{key}"].astype(float).tolist())
    return frame


def rejection_markdown(frame: pd.DataFrame, reference: str, keys: tuple[str, ...] | None = None) -> str:
    """The table as Markdown: per metric its mean ± CI, and for a swap its paired Δ ± CI (Holm-adjusted p)."""
    keys = keys or tuple(k for k, _, _ in METRICS if f"mean_{k}" in frame)
    headings = {k: h for k, h, _ in METRICS}
    lines = ["| variant | seeds | " + " | ".join(headings[k] for k in keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for r in frame.to_dict("records"):
        cells = []
        for k in keys:
            fmt = plus_minus(r.get(f"mean_{k}"), r.get(f"half_{k}"))
            delta = r.get(f"delta_{k}")
            if r["variant"] != reference and delta is not None and not (isinstance(delta, float) and math.isnan(delta)):
                p = r.get(f"p_holm_{k}")
                shown = "–" if p is None or math.isnan(p) else (f"{p:.1e}" if p < 0.001 else f"{p:.3f}")
                fmt += f"; Δ {plus_minus(delta, r.get(f'dhalf_{k}'), signed=True)} (Holm p {shown})"
            cells.append(fmt)
        name = f"**{r['variant']}** (reference)" if r["variant"] == reference else f"`{r['variant']}`"
        lines.append(f"| {name} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def result_rejection(result_dir: Path) -> pd.DataFrame:
    """Per seed of a result folder (seed<N>/ runs, e.g. results/paper_final): its rejection metrics."""
    rows = []
    for run_dir in sorted(Path(result_dir).glob("seed*")):
        metrics = run_rejection(run_dir)
        if metrics is not None:
            rows.append({"seed": read_run_config(run_dir).train.seed, **metrics})
    return pd.DataFrame(rows)


# the reproduction's result folders whose runs keep outputs (experiments/keep_outputs.py gave the older ones theirs)
RESULT_FOLDERS = ("paper_final", "paper_distortions", "modern")
SUMMARY_KEYS = ("reject_pct_for_0_5pct_error", "error_pct_at_1pct_reject", "error_pct_at_5pct_reject",
                *(f"auroc_{name}" for name in NONDIGIT_SETS), *(f"accepted_pct_{name}" for name in NONDIGIT_SETS))


def results_markdown(results: Path) -> str:
    """One row per result folder: each metric's mean ± 95% CI over its seeds with outputs."""
    headings = {k: h for k, h, _ in METRICS}
    lines = ["| result | seeds | error % | " + " | ".join(headings[k] for k in SUMMARY_KEYS) + " |",
             "|---|---|---|" + "---|" * len(SUMMARY_KEYS)]
    for folder in RESULT_FOLDERS:
        frame = result_rejection(Path(results) / folder)
        if frame.empty:
            continue
        cells = [plus_minus(*mean_ci(frame["error_pct"].tolist()))]
        for key in SUMMARY_KEYS:
            values = frame[key].dropna().tolist() if key in frame else []
            cells.append(plus_minus(*mean_ci(values)) if values else "–")
        lines.append(f"| {folder} | {len(frame)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# the second axis at a glance: the share rejected for 0.5% error and each non-digit AUROC
AXIS_KEYS = ("reject_pct_for_0_5pct_error", *(f"auroc_{name}" for name in NONDIGIT_SETS))


def _resolved(r: dict, key: str) -> bool:
    """A swap's Δ in `key` is resolved when its 95% interval excludes zero and its Holm-adjusted p is below ALPHA
    (the error tables' rule: repro/study/verdicts.py)."""
    delta, half, p = (r.get(f"{k}_{key}") for k in ("delta", "dhalf", "p_holm"))
    numbers = [v for v in (delta, half, p) if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return len(numbers) == 3 and abs(delta) > half and p < ALPHA


def second_axis(frame: pd.DataFrame, reference: str) -> str:
    """Each swap's paired Δ in the share rejected for 0.5% error and in each non-digit AUROC, one row per swap,
    a resolved Δ in bold; then one sentence naming the resolved ones and which way each goes."""
    headings = {k: h for k, h, _ in METRICS}
    better_low = {k: low for k, _, low in METRICS}
    lines = ["| swap | paired seeds | " + " | ".join(f"Δ {headings[k]}" for k in AXIS_KEYS) + " |",
             "|---|---|" + "---|" * len(AXIS_KEYS)]
    resolved = []
    for r in frame.to_dict("records"):
        if r["variant"] == reference or "@lr=" in r["variant"] or not r.get("paired"):
            continue
        cells = []
        for key in AXIS_KEYS:
            text = plus_minus(r.get(f"delta_{key}"), r.get(f"dhalf_{key}"), signed=True)
            if _resolved(r, key):
                text = f"**{text}**"
                worse = (r[f"delta_{key}"] > 0) == better_low[key]
                resolved.append(f"`{r['variant']}` {headings[key]} {plus_minus(r[f'delta_{key}'], None, True)} "
                                f"({'worse' if worse else 'better'})")
            cells.append(text)
        lines.append(f"| `{r['variant']}` | {int(r['paired'])} | " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return "_No swap has paired seeds with kept outputs yet._"
    sentence = ("Resolved (95% interval excludes zero and Holm-adjusted p < 0.05, in bold): "
                + ("; ".join(resolved) if resolved else "none") + ".")
    return "\n".join(lines) + "\n\n" + sentence


def rejection_frames(results: Path) -> dict[str, pd.DataFrame]:
    """{grid name: rejection_table} for every declared grid with a runs file whose runs kept outputs."""
    from .grids import GRIDS

    frames = {}
    for name, grid in GRIDS.items():
        grid_dir = Path(results) / "grids" / name
        if (grid_dir / "runs.jsonl").exists():
            frame = rejection_table(grid_dir, grid)
            if not frame.empty:
                frames[name] = frame
    return frames


def rejection_report(results: Path, frames: dict[str, pd.DataFrame] | None = None) -> str | None:
    """results/rejection.md: the reproduction's networks, then every grid whose runs keep outputs (`frames`:
    rejection_frames, when already made)."""
    from .grids import GRIDS

    frames = rejection_frames(results) if frames is None else frames
    parts = []
    table = results_markdown(results)
    if table.count("\n") > 1:
        parts.append("## The reproduction's networks\n\nMean ± 95% t-interval over seeds (results/<name>/seed<N>; "
                     "confidence: the RBF's margin, the softmax's probability; non-digits: the run's kept outputs on "
                     f"the first {FASHION_KEPT:,} Fashion-MNIST test images, A-Z, noise and blank fields, "
                     "repro/nondigits.py).\n\n" + table + "\n")
    for name, frame in frames.items():
        reference = GRIDS[name].reference.name
        parts.append(f"## {name}\n\nPer variant: mean ± 95% CI over its seeds that kept outputs; for a swap, "
                     f"its paired Δ from its baseline ± 95% CI (Holm-adjusted paired t p over the table).\n\n"
                     + rejection_markdown(frame, reference) + "\n\nAt a glance, the pure swaps:\n\n"
                     + second_axis(frame, reference) + "\n")
    if not parts:
        return None
    return ("# Rejection: what the RBF output was for (paper_notes/rbf_output.md)\n\nMade by `lenet5 report` from "
            "each run's test_outputs.npz and nondigit_outputs.npz.\n\n" + "\n".join(parts))
