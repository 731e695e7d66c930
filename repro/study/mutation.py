"""results/mutation.json, the measure of the tests (experiments/mutation.py writes it): its table for docs/testing.md.

Per mutated module the file holds mutmut's counts (`killed`, `survived`, `timeout`, `other`, `total`), the tests and
limits the run used, the runs that made it, and each survivor with its diff and, where no test can tell it from the
module as written, an `equivalent` reason (issue 33's target: at least 85% of the mutants killed)."""
from __future__ import annotations

import json
from pathlib import Path

MUTATION_FILE = "mutation.json"  # under results/
TARGET_PCT = 85.0  # the share of mutants the tests must kill, per module


def read_mutation_report(results: Path) -> dict:
    """{module: its entry}, or {} where no mutation run was committed."""
    path = Path(results) / MUTATION_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def killed_pct_of_the_rest(entry: dict) -> float | None:
    """The share killed of the mutants that are not equivalent (the target's measure)."""
    rest = entry["total"] - entry.get("equivalent", 0)
    return round(100 * entry["killed"] / rest, 1) if rest else None


def mutation_table(results: Path) -> str:
    """One row per module: mutants, killed, survivors (equivalent, with a reason / left), timeouts, the shares."""
    report = read_mutation_report(results)
    if not report:
        return "_No mutation run committed yet: `python -m experiments.mutation MODULE`._"
    rows = ["| module | mutants | killed | survived: equivalent | survived: not yet killed | timeout, or no test reaches it | "
            "killed | killed of the non-equivalent | tests run against it |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for module, entry in report.items():
        equivalent = entry.get("equivalent", 0)
        others = entry["timeout"] + sum(entry.get("other", {}).values())
        rest_pct = killed_pct_of_the_rest(entry)
        mark = "" if rest_pct is not None and rest_pct >= TARGET_PCT else " (below the target)"
        tests = ", ".join(Path(t).name for t in entry["tests"])
        rows.append(f"| {module} | {entry['total']:,} | {entry['killed']:,} | {equivalent} | "
                    f"{entry['survived'] - equivalent} | {others} | {entry['killed_pct']}% | {rest_pct}%{mark} | "
                    f"{tests} |")
    return "\n".join(rows)
