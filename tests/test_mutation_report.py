"""results/mutation.json: how experiments/mutation.py keeps and adds `equivalent` reasons, and the table
docs/testing.md shows of it (repro/study/mutation.py). No mutmut run here: that takes hours."""
import json

import pytest

from experiments.mutation import MODULES, add_equivalent, merge_retest, summarise
from repro.errors import ConfigError
from repro.study.mutation import mutation_table

TARGET = MODULES["repro/study/stats.py"]


def _entry(found, diffs, previous=None):
    return summarise("repro/study/stats.py", TARGET, found, diffs, previous)


def test_a_rerun_keeps_a_reason_only_for_the_same_mutant():
    found = {"m1": "killed", "m2": "survived", "m3": "survived", "m4": "timeout"}
    first = _entry(found, {"m2": "-a\n+b", "m3": "-c\n+d"})
    assert (first["killed"], first["survived"], first["timeout"], first["total"]) == (1, 2, 1, 4)
    assert first["killed_pct"] == 25.0 and first["equivalent"] == 0 and first["killed_pct_of_the_rest"] == 25.0
    first["survivors"][0]["equivalent"] = "why m2 changes nothing"
    first["survivors"][1]["equivalent"] = "why m3 changes nothing"
    again = _entry(found, {"m2": "-a\n+b", "m3": "-c\n+e"}, previous=first)  # m3 is another mutant now
    assert [s.get("equivalent") for s in again["survivors"]] == ["why m2 changes nothing", None]
    assert again["equivalent"] == 1 and again["killed_pct_of_the_rest"] == pytest.approx(100 / 3, abs=0.05)


def test_a_retest_of_the_reports_survivors_adds_its_kills_to_the_full_runs_counts():
    """--retest without a kept run reruns only the survivors the report lists: the full run's other mutants keep
    the statuses its counts give them, and a reason stays with a survivor that still survives."""
    full = _entry({"m1": "killed", "m2": "killed", "m3": "survived", "m4": "survived", "m5": "survived",
                   "m6": "timeout"}, {"m3": "-a\n+b", "m4": "-c\n+d", "m5": "-e\n+f"})
    full["survivors"][2]["equivalent"] = "why m5 changes nothing"
    again = _entry(merge_retest(full, {"m3": "killed", "m4": "survived", "m5": "survived"}),
                   {"m4": "-c\n+d", "m5": "-e\n+f"}, previous=full)
    assert (again["killed"], again["survived"], again["timeout"], again["total"]) == (3, 2, 1, 6)
    assert [s["id"] for s in again["survivors"]] == ["m4", "m5"]
    assert again["survivors"][1]["equivalent"] == "why m5 changes nothing" and again["equivalent"] == 1


def test_reasons_are_added_by_id_and_the_counts_follow():
    report = {"repro/study/stats.py": _entry({"m1": "killed", "m2": "survived"}, {"m2": "-a\n+b"})}
    assert add_equivalent(report, {"m2": " a default no caller uses "}) == ["repro/study/stats.py"]
    entry = report["repro/study/stats.py"]
    assert entry["survivors"][0]["equivalent"] == "a default no caller uses"
    assert entry["equivalent"] == 1 and entry["killed_pct_of_the_rest"] == 100.0
    with pytest.raises(ConfigError, match="not survivors of the report: m1; take the ids"):
        add_equivalent(report, {"m1": "a killed mutant is not a survivor"})


def test_the_table_shows_each_module_and_flags_one_below_the_target(tmp_path):
    assert "No mutation run committed yet" in mutation_table(tmp_path)
    good = _entry({**{f"k{i}": "killed" for i in range(9)}, "s": "survived"}, {"s": "-a\n+b"})
    poor = _entry({"k": "killed", "s1": "survived", "s2": "survived"}, {"s1": "-a\n+b", "s2": "-c\n+d"})
    add_equivalent({"good": good}, {"s": "no caller passes it"})
    (tmp_path / "mutation.json").write_text(json.dumps({"good": good, "poor": poor}))
    rows = mutation_table(tmp_path).splitlines()[2:]
    assert rows[0].startswith("| good | 10 | 9 | 1 | 0 | 0 | 90.0% | 100.0% |")
    assert rows[1].startswith("| poor | 3 | 1 | 0 | 2 | 0 | 33.3% | 33.3% (below the target) |")
