"""Which effects a grid resolves: one verdict per pure swap (on a ladder, per rung), made from its rows, so that
the readings follow the rows as seeds land (the 20-seed issue, item 4).

Four tests, each over the seeds where the variant's run and its baseline's were made by the same code on the same
kind of machine (repro/study/ablation.py, `paired_seeds`):
- **interval**: the paired Δ's 95% t-interval excludes zero (the grid table's Δ, over the seeds that trained);
- **Holm**: the paired t-test's p-value, Holm-adjusted over every comparison of the grid table, is below ALPHA;
- **McNemar**: McNemar's exact test on the test predictions of those seeds pooled, Holm-adjusted the same way, is
  below ALPHA. It treats (image, seed) pairs as independent, so it sees effects that are consistent across images
  but says nothing of how much they vary between seeds: it resolves more than the t-tests do;
- **sign**: the two-sided sign test over the seeds where both runs ended (finished or diverged) and the baseline
  trained: a variant seed counts as worse when it errs more or failed to train (collapsed or diverged), better
  when it errs less, ties left out; Holm-adjusted over the swaps of the verdict table. It needs no average, so it
  still speaks where some seeds fail to train and the t-interval cannot (the ReLU swap at SDLM's step size).

A swap is **resolved** when its interval and Holm's test both hold. The verdict names its direction (`hurts` when
the variant errs more) and every test that holds; a swap that no test resolves is `unresolved`, and its
"could still miss" column (the table's detectable Δ) says how large a true effect these seeds could have missed.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from scipy import stats

from .ablation import _p, grid_rows, grid_table, outcome, paired_seeds, plus_minus
from .grids import GRIDS, PROGRAMME_GRIDS, PROGRAMME_HALF_WIDTH
from .stats import ALPHA, holm

if TYPE_CHECKING:
    import pandas as pd

TESTS = ("interval", "Holm", "McNemar", "sign")


def sign_test(baseline: dict[int, dict], variant: dict[int, dict]) -> dict:
    """Seeds where the variant is worse / better than its baseline (seed -> row, made alike and ended), ties and
    seeds whose baseline did not train left out; p: the two-sided binomial test of worse against worse + better
    (1 without any such seed)."""
    worse = better = 0
    for seed in paired_seeds(baseline, variant)[0]:
        base, var = baseline[seed], variant[seed]
        if outcome(base) != "trained":
            continue
        if outcome(var) != "trained":
            worse += 1
        elif var["final_test_error_pct"] != base["final_test_error_pct"]:
            worse += var["final_test_error_pct"] > base["final_test_error_pct"]
            better += var["final_test_error_pct"] < base["final_test_error_pct"]
    p = 1.0 if worse + better == 0 else float(stats.binomtest(worse, worse + better, 0.5).pvalue)
    return {"worse": worse, "better": better, "p": p}


def _held(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value < ALPHA


def grid_verdicts(grid_dir: Path, grid, table: "pd.DataFrame | None" = None) -> list[dict]:
    """One entry per pure variant with a baseline, in grid order: its Δ (`delta`, `half`, `paired` seeds),
    `detectable`, the four tests (`held`: those that hold), `sign` (sign_test), `direction`, `resolved` and
    `verdict`. `table`: the grid's table (ablation.grid_table), when it is already made."""
    table = (grid_table(grid_dir, grid) if table is None else table).set_index("variant")
    ended = [r for r in grid_rows(grid_dir) if r["status"] in ("finished", "diverged")]
    by_variant: dict[str, dict[int, dict]] = {}
    for r in ended:
        by_variant.setdefault(r["variant"], {})[r["seed"]] = r
    entries = []
    for v in grid.variants:
        if v.own_lr or v.baseline is None or v.name not in table.index:
            continue
        row = table.loc[v.name]
        sign = sign_test(by_variant.get(v.baseline, {}), by_variant.get(v.name, {}))
        entries.append({"variant": v.name, "delta": float(row["delta"]),
                        "half": float(row["delta_half"]), "detectable": float(row["detectable"]),
                        "paired": _paired_count(row), "p_holm": row["p_paired_holm"],
                        "mcnemar": (row["mcnemar_b"], row["mcnemar_c"]), "p_mcnemar_holm": row["p_mcnemar_holm"],
                        "sign": sign})
    for entry, p in zip(entries, holm([e["sign"]["p"] for e in entries])):
        entry["sign"]["p_holm"] = p
    for e in entries:
        resolved = {"interval": not math.isnan(e["half"]) and abs(e["delta"]) > e["half"],
                    "Holm": _held(e["p_holm"]), "McNemar": _held(e["p_mcnemar_holm"]),
                    "sign": _held(e["sign"]["p_holm"])}
        e["held"] = [t for t in TESTS if resolved[t]]
        e["direction"] = _direction(e)
        e["resolved"] = resolved["interval"] and resolved["Holm"]
        e["verdict"] = (("resolved: " if e["resolved"] else "") + f"{e['direction']} (by {', '.join(e['held'])})"
                        if e["held"] else "unresolved")
    return entries


def seeds_for_half_width(half: float, n: int, target: float) -> int | None:
    """How many paired seeds a Δ whose 95% t-interval is ±`half` over `n` seeds needs for ±`target`, if the
    spread of its paired differences stays what it is (s = half · √n / t₀.₉₇₅,ₙ₋₁; the smallest m with
    t₀.₉₇₅,ₘ₋₁ · s / √m ≤ target). None without an interval (fewer than 2 seeds)."""
    if n < 2 or math.isnan(half):
        return None
    spread = half * math.sqrt(n) / stats.t.ppf(0.975, n - 1)
    m = 2
    while stats.t.ppf(0.975, m - 1) * spread / math.sqrt(m) > target:
        m += 1
    return m


def _paired_count(row) -> int:
    """The seeds the Δ is over: the table's `paired` (both runs trained and made alike), 0 where it has none."""
    paired = row.get("paired")
    return 0 if paired is None or paired != paired else int(paired)  # paired != paired: NaN


def _direction(entry: dict) -> str:
    """`hurts` (the variant errs more) or `helps`: by the Δ's sign, unless only McNemar's or the sign test holds,
    then by the first of those that holds (b against c; worse against better seeds), since a Δ averaged over the
    trained seeds may lean the other way (a seed that failed to train is not in it)."""
    held = entry["held"]
    if held and not {"interval", "Holm"} & set(held):
        b, c = entry["mcnemar"]
        if "McNemar" in held:
            return "hurts" if b > c else "helps"
        return "hurts" if entry["sign"]["worse"] > entry["sign"]["better"] else "helps"
    delta = entry["delta"]
    return "level" if math.isnan(delta) or delta == 0 else ("hurts" if delta > 0 else "helps")


def verdict_table(entries: list[dict], grid_name: str) -> str:
    """The verdicts as Markdown: one row per swap; for a grid of the 20-seed programme, whether its interval has
    reached the programme's target half-width."""
    target = grid_name in PROGRAMME_GRIDS
    head = ("| swap | paired seeds | Δ, pp (95% CI) | "
            + (f"within ±{PROGRAMME_HALF_WIDTH} | seeds for ±{PROGRAMME_HALF_WIDTH} at this spread | " if target else "")
            + "paired t p (Holm) | McNemar p (Holm) | sign test: worse / better, p (Holm) | verdict "
              "| could still miss, pp |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for e in entries:
        sign = e["sign"]
        cells = [f"`{e['variant']}`", str(e["paired"]), plus_minus(e["delta"], e["half"], signed=True)]
        if target:
            needed = seeds_for_half_width(e["half"], e["paired"], PROGRAMME_HALF_WIDTH)
            cells += ["–" if math.isnan(e["half"]) else ("yes" if e["half"] <= PROGRAMME_HALF_WIDTH else "no"),
                      "–" if needed is None else str(needed)]
        cells += [_p(e["p_holm"]), _p(e["p_mcnemar_holm"]),
                  f"{sign['worse']} / {sign['better']}, {_p(sign['p_holm'])}", e["verdict"],
                  "–" if e["resolved"] else _pp(e["detectable"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pp(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def verdict_summary(entries: list[dict], grid_name: str) -> str:
    """One paragraph: the swaps resolved, those that only some tests resolve, those unresolved with what each
    could still hide, and for a grid of the programme how many intervals are within its target half-width."""
    if not entries:
        return f"_No paired seeds yet: `lenet5 grid {grid_name}`._"
    counts = sorted(e["paired"] for e in entries)
    seeds = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]} to {counts[-1]}"
    resolved = [e for e in entries if e["resolved"]]
    partly = [e for e in entries if e["held"] and not e["resolved"]]
    unresolved = [e for e in entries if not e["held"]]

    def delta(e):
        return plus_minus(e["delta"], e["half"], signed=True)
    unit = "rung" if GRIDS[grid_name].name.startswith("ladder") else "swap"
    parts = [f"With {seeds} paired seeds per {unit} (Δ in points, 95% interval):"]
    parts.append("resolved (interval and Holm): " + ("; ".join(f"`{e['variant']}` {e['direction']} ({delta(e)})"
                                                              for e in resolved) or "none") + ".")
    if partly:
        parts.append("Resolved by some tests only: " + "; ".join(
            f"`{e['variant']}` {e['direction']} ({delta(e)}; by {', '.join(e['held'])})" for e in partly) + ".")
    parts.append("Unresolved: " + ("; ".join(f"`{e['variant']}` ({delta(e)}; could hide {_pp(e['detectable'])})"
                                            for e in unresolved) or "none") + ".")
    if grid_name in PROGRAMME_GRIDS:
        within = [e for e in entries if not math.isnan(e["half"]) and e["half"] <= PROGRAMME_HALF_WIDTH]
        parts.append(f"Intervals within the programme's ±{PROGRAMME_HALF_WIDTH}: {len(within)} of {len(entries)}.")
        needed = [(e["variant"], seeds_for_half_width(e["half"], e["paired"], PROGRAMME_HALF_WIDTH))
                  for e in entries if e not in within]
        needed = [f"`{name}` {n}" for name, n in needed if n]
        if needed:
            parts.append("At today's spread of paired differences, the others would reach it at " + ", ".join(needed)
                         + " paired seeds.")
    return " ".join(parts)


def verdict_blocks(results: Path, frames: dict[str, "pd.DataFrame"]) -> dict[str, tuple[str, str]]:
    """{grid name: (its verdict table, its summary)} for every grid of `frames` (report.grid_frames)."""
    blocks = {}
    for name, table in frames.items():
        entries = grid_verdicts(Path(results) / "grids" / name, GRIDS[name], table)
        blocks[name] = (verdict_table(entries, name), verdict_summary(entries, name))
    return blocks
