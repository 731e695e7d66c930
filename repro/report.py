"""`lenet5 report`: tables built from committed results only (no training).

The reproduction table compares the paper preset's and the modern preset's runs under results/<preset>/seed<N>/
with the paper's figures (Sec. III-C): mean test error over seeds with a 95% t-interval, every seed's value,
and the final training error. It is written to results/reproduction.md and between the README's markers.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from scipy import stats

from . import atomic

# results/<folder>/seed<N>/ groups: (folder, label, the command that made each run, the paper's test / train error)
RESULT_GROUPS = [
    ("paper", "paper", "lenet5 train --preset paper --set seed=S --threads 1 --out results/paper/seedS", (0.95, 0.35)),
    ("paper_compiled", "paper, engine=compiled",
     "lenet5 train --preset paper --set engine=compiled --seeds 0 1 2 --threads 1 --out results/paper_compiled",
     (0.95, 0.35)),
    ("modern", "modern", "lenet5 train --preset modern --set seed=S --threads 1 --out results/modern/seedS", None),
]
README_BEGIN = "<!-- reproduction-table:begin (lenet5 report) -->"
README_END = "<!-- reproduction-table:end -->"


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t-interval over seeds (nan half-width for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)


def finished_summaries(results: Path, folder: str) -> list[dict]:
    out = []
    for path in sorted((results / folder).glob("seed*/summary.json")):
        summary = json.loads(path.read_text())
        if summary["status"] == "finished":
            out.append(summary)
    return out


def _fmt(mean: float, half: float) -> str:
    return f"{mean:.2f}" if math.isnan(half) else f"{mean:.2f} ± {half:.2f}"


def reproduction_table(results: Path) -> str:
    rows = ["| preset | seeds | test error % (mean ± 95% CI) | per seed | train error % | paper test / train % "
            "| passes | command |", "|---|---|---|---|---|---|---|---|"]
    for folder, label, command, paper in RESULT_GROUPS:
        runs = finished_summaries(results, folder)
        if not runs:
            continue
        tests = [r["final_test_error_pct"] for r in runs]
        trains = [r["final_train_error_pct"] for r in runs]
        seeds = [r["config"]["train"]["seed"] for r in runs]
        paper_text = f"{paper[0]} / {paper[1]}" if paper else "–"
        rows.append(f"| {label} | {', '.join(map(str, seeds))} | {_fmt(*mean_ci(tests))} | "
                    f"{', '.join(f'{t:.2f}' for t in tests)} | {_fmt(*mean_ci(trains))} | {paper_text} | "
                    f"{runs[0]['passes']} | `{command}` |")
    return "\n".join(rows)


def refresh_readme(readme: Path, table: str) -> bool:
    """Replace the text between the README's markers; False if the markers are missing."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    atomic.write_text(readme, f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}")
    return True


def write_reports(results: Path, readme: Path) -> list[Path]:
    table = reproduction_table(results)
    out = results / "reproduction.md"
    atomic.write_text(out, "# Reproduction: ours vs the paper (Sec. III-C)\n\nMade by `lenet5 report` from "
                      "results/<preset>/seed<N>/summary.json.\n\n" + table + "\n")
    written = [out]
    if readme.exists() and refresh_readme(readme, table):
        written.append(readme)
    return written
