"""Mutation testing as the measure of the tests (issue 33, item 1): mutmut 3 over one module at a time, each
against the tests that cover it, with a per-mutant time limit that fits them; the counts and the survivors are
merged into results/mutation.json.

    pip install -e '.[test]'                                  # mutmut is in the test extra
    python -m experiments.mutation repro/study/stats.py       # one module of MODULES
    python -m experiments.mutation repro/sdlm.py --tests tests/test_sdlm.py --max-children 2
    python -m experiments.mutation repro/data.py --keep /tmp/mut-data                  # a full run, its folder kept
    python -m experiments.mutation repro/data.py --keep /tmp/mut-data --retest         # after adding tests
    python -m experiments.mutation repro/train.py --retest --max-children 2            # the report's survivors
    python -m experiments.mutation repro/train.py --keep /tmp/mut-train --resume       # a stopped full run, on
    python -m experiments.mutation --list                     # MODULES and what results/mutation.json holds
    python -m experiments.mutation --equivalent reasons.json  # {mutant id: why it is equivalent} into the report
    python -m experiments.mutation repro/train.py --keep /tmp/mut-train --retest --collect   # a stopped retest's
                                                              # decisions so far (a stopped full run: no --retest)

mutmut copies the package into a mutants/ folder and rewrites every function of the module into a trampoline
that runs the original or one mutant; for each mutant it reruns only the selected tests that reach the mutated
function, and a mutant that none of them fails *survives*. The run happens in a scratch copy of the repository
(repro/, tests/, pyproject.toml and the module's `also_copy`, with a setup.cfg written for the module), so
that the working tree gets no mutants/ folder and no per-module mutmut section. The per-mutant limit is mutmut's:
`(time the mutant's tests took on the clean code + timeout_constant) * timeout_multiplier * 2` CPU seconds; torch
runs with one thread, so that its CPU time stays near its wall time and a slow mutant is not a "timeout" by
accounting alone.

results/mutation.json, per module: `killed`, `survived`, `timeout` and `other` (mutmut's remaining statuses),
`total`, `killed_pct`, the tests and limits used, and `survivors`, each with its mutmut `id` and `diff`. A
survivor that no test can kill because it changes nothing observable gets a one-line `equivalent` reason (with
`--equivalent REASONS.json`, or by hand); a rerun keeps it for the survivor with the same id and the same diff, and drops it
(with a line on stderr) where the mutant changed. `killed_pct_of_the_rest` leaves the equivalent ones out.

Without `--keep`, `--retest` makes the survivors the report records again in a fresh copy (each must have the diff
recorded: the module unchanged) and reruns only them; the report's other counts stand.

`--retest` reruns, in the kept folder of a full run of the same module (same code, same settings), only the mutants
that run did not kill, against the working tree's tests (added or changed, none removed), so that a survivor's new
test is checked in minutes; the kills of the full run stand, and `runs` lists the full run and each retest.

repro/study/stats.py, repro/study/verdicts.py, repro/data.py, repro/optim.py and repro/sdlm.py have been run with
the settings below (a full run of data.py takes about 25 minutes, of optim.py and verdicts.py 20, of sdlm.py 7,
with one child under `nice` on two cores busy with training; a retest of the survivors minutes); the other entries of MODULES are first guesses at a selection
(the tests that import the module).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from repro.errors import ConfigError, run_script
from repro.study.mutation import MUTATION_FILE, killed_pct_of_the_rest

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("results") / MUTATION_FILE
STATUS = re.compile(r"^\s+(\S+): (.+)$")  # a line of `mutmut results --all true`


@dataclass(frozen=True)
class Target:
    """How one module is mutated: the tests that cover it, mutmut's per-mutant limit, how a mutant's tests are
    isolated (fork, or forkserver for torch, which is not fork-safe once its threads run), and any other path the
    tests read."""

    tests: tuple[str, ...]
    timeout_multiplier: float = 15.0  # mutmut's defaults
    timeout_constant: float = 1.0
    process_isolation: str = "fork"
    also_copy: tuple[str, ...] = ()


TORCH = dict(timeout_multiplier=5.0, timeout_constant=10.0, process_isolation="forkserver")
MODULES: dict[str, Target] = {
    # the unit tests of the statistics, and the table tests that use them on synthetic grids
    "repro/study/stats.py": Target(("tests/test_grid_statistics.py", "tests/test_grid_tables.py",
                                    "tests/test_comparison.py")),
    # which effects a grid resolves: its unit tests on hand-made rows and synthetic grids
    "repro/study/verdicts.py": Target(("tests/test_verdicts.py",)),
    # the components' own tests, and those that step them online (test_online), preprocess input with them
    # (test_data) and switch BatchNorm's statistics (test_bn_eval)
    "repro/components/*": Target(("tests/test_components.py", "tests/test_losses.py", "tests/test_curvature.py",
                                  "tests/test_model.py", "tests/test_counts.py", "tests/test_online.py",
                                  "tests/test_sdlm.py", "tests/test_data.py", "tests/test_bn_eval.py"), **TORCH),
    "repro/online.py": Target(("tests/test_online.py",), **TORCH),
    "repro/sdlm.py": Target(("tests/test_sdlm.py", "tests/test_curvature.py"), **TORCH),
    # the C kernels' loader and wrappers (their C is not mutated), and the evaluation that uses them
    "repro/kernels/*": Target(("tests/test_c1s2_kernel.py", "tests/test_phases.py"), **TORCH),
    "repro/optim.py": Target(("tests/test_schedule.py", "tests/test_sdlm.py", "tests/test_online.py"), **TORCH),
    # the training loop's own tests, its endings, and the runs that take its other paths (distortions, BatchNorm's
    # note, data read from a root)
    "repro/train.py": Target(("tests/test_train.py", "tests/test_phases.py", "tests/test_run_endings.py",
                              "tests/test_run_records.py", "tests/test_distortions.py", "tests/test_bn_eval.py"),
                             **TORCH),
    # the loader's own tests, and the two that read data through it (evaluation, distortions)
    "repro/data.py": Target(("tests/test_data.py", "tests/test_inference.py", "tests/test_distortions.py"), **TORCH),
}
PYTEST_ARGS = ("-m", "not slow", "-p", "no:cacheprovider")  # the quick suite; slow tests start processes


def setup_cfg(module: str, target: Target) -> str:
    """mutmut's [mutmut] section for one module: mutate only it, select its tests, its limits."""
    def lines(values) -> str:
        return "".join(f"\n    {v}" for v in values)

    return (f"[mutmut]\nsource_paths ={lines(['repro'])}\nonly_mutate ={lines([module])}\n"
            f"pytest_add_cli_args_test_selection ={lines(target.tests)}\npytest_add_cli_args ={lines(PYTEST_ARGS)}\n"
            f"timeout_multiplier = {target.timeout_multiplier}\ntimeout_constant = {target.timeout_constant}\n"
            f"process_isolation = {target.process_isolation}\nuse_git_change_detection = false\n")


def scratch_copy(scratch: Path, module: str, target: Target) -> None:
    """The parts of the repository a mutation run needs, and its setup.cfg."""
    for path in ("repro", "tests", "pyproject.toml", *target.also_copy):
        if (ROOT / path).is_dir():
            shutil.copytree(ROOT / path, scratch / path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (scratch / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, scratch / path)
    (scratch / "setup.cfg").write_text(setup_cfg(module, target))


# what mutmut prints, and then stops, when the clean tests fail under its trampolines: no mutant was tested
MUTMUT_FAILED = ("failed to collect stats", "Failed to run clean test", "Failed to collect list of tests")


def mutmut(scratch: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=scratch, env=env, capture_output=True,
                            text=True)
    failed = [line for line in MUTMUT_FAILED if line in result.stdout + result.stderr]
    if failed:  # whatever the exit code: the statuses left are the previous run's
        raise RuntimeError(f"mutmut {' '.join(args[:3])} stopped ({failed[0]}); run the selected tests in "
                           f"{scratch / 'mutants'} with MUTANT_UNDER_TEST=stats to see which fails:\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    if check and result.returncode != 0:
        raise RuntimeError(f"mutmut {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}"
                           f"\n{result.stderr[-3000:]}")
    return result.stdout


def statuses(scratch: Path) -> dict[str, str]:
    """{mutant id: mutmut's status} for every mutant of the run."""
    found = {}
    for line in mutmut(scratch, "results", "--all", "true").splitlines():
        match = STATUS.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def diff(scratch: Path, mutant: str) -> str:
    """The mutant as a diff of the module (`mutmut show`, less its heading line)."""
    return "\n".join(line for line in mutmut(scratch, "show", mutant).splitlines()
                     if not line.startswith("# ")).strip()


def summarise(module: str, target: Target, found: dict[str, str], diffs: dict[str, str],
              previous: dict | None) -> dict:
    """The module's entry of results/mutation.json; `equivalent` reasons kept from `previous` where the survivor is
    the same mutant (same id, same diff)."""
    counts: dict[str, int] = {}
    for status in found.values():
        counts[status] = counts.get(status, 0) + 1
    kept = {s["id"]: s for s in (previous or {}).get("survivors", []) if "equivalent" in s}
    survivors = []
    for mutant in sorted(diffs):
        entry = {"id": mutant, "diff": diffs[mutant]}
        old = kept.pop(mutant, None)
        if old and old["diff"] == entry["diff"]:
            entry["equivalent"] = old["equivalent"]
        elif old:
            print(f"{mutant}: the mutant changed; its 'equivalent' note is dropped: {old['equivalent']}",
                  file=sys.stderr)
        survivors.append(entry)
    for mutant, old in kept.items():
        print(f"{mutant}: no longer survives; its 'equivalent' note is dropped: {old['equivalent']}", file=sys.stderr)
    killed, total = counts.pop("killed", 0), len(found)
    equivalent = sum("equivalent" in s for s in survivors)
    entry = {"killed": killed, "total": total, "equivalent": equivalent}
    return {"killed": killed, "survived": counts.pop("survived", 0), "timeout": counts.pop("timeout", 0),
            "other": counts, "total": total, "killed_pct": round(100 * killed / total, 1) if total else None,
            "equivalent": equivalent, "killed_pct_of_the_rest": killed_pct_of_the_rest(entry),
            "tests": list(target.tests), "pytest_args": list(PYTEST_ARGS),
            "timeout_multiplier": target.timeout_multiplier, "timeout_constant": target.timeout_constant,
            "process_isolation": target.process_isolation,
            "mutmut": metadata.version("mutmut"), "survivors": survivors}


def reuse_kept_run(scratch: Path, module: str, target: Target) -> None:
    """For --retest and --resume: check that the kept run in `scratch` was of this module, with these settings, on
    the module's current code, then replace the scratch copy's tests by the working tree's (a test may be added or
    changed, none may be removed: the kept kills stand)."""
    if not (scratch / "mutants").is_dir():
        raise ConfigError(f"--retest and --resume need --keep to name the folder of an earlier run of {module}; "
                          f"{scratch} has none")
    if (scratch / "setup.cfg").read_text() != setup_cfg(module, target):
        raise ConfigError(f"{scratch} holds a run with other settings than {module}'s now; run it in full")
    for path in ROOT.glob(module):
        copy = scratch / path.relative_to(ROOT)
        if not copy.is_file() or copy.read_bytes() != path.read_bytes():
            raise ConfigError(f"{path.relative_to(ROOT)} changed since the run in {scratch}; run it in full")
    others = [str(path.relative_to(ROOT)) for path in (ROOT / "repro").rglob("*.py")
              if not (scratch / path.relative_to(ROOT)).is_file()
              or (scratch / path.relative_to(ROOT)).read_bytes() != path.read_bytes()]
    for other in others:  # the working tree's tests may need them (mutmut runs the copy under mutants/)
        for copy in (scratch / other, scratch / "mutants" / other):
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / other, copy)
    if others:
        print(f"brought up to date for the tests, not mutated: {', '.join(others)}", file=sys.stderr)
    old_tests = {p.relative_to(scratch / "tests") for p in (scratch / "tests").rglob("test_*.py")}
    gone = old_tests - {p.relative_to(ROOT / "tests") for p in (ROOT / "tests").rglob("test_*.py")}
    if gone:
        raise ConfigError(f"test files removed since the run in {scratch}: {sorted(map(str, gone))}; run it in full")
    shutil.copytree(ROOT / "tests", scratch / "tests", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def retest_names(scratch: Path, module: str, target: Target) -> list[str]:
    """For --retest: the mutants of the kept run in `scratch` that were not killed."""
    reuse_kept_run(scratch, module, target)
    return sorted(m for m, status in statuses(scratch).items() if status != "killed")


def retest_from_report(scratch: Path, module: str, target: Target, previous: dict,
                       max_children: int, only: list[str] | None = None) -> tuple[dict, dict]:
    """--retest without a kept run: the survivors the report records for `module` (those matching a pattern of
    `only`, if given; the others stay survivors as recorded), made again in a fresh copy (the module unchanged:
    each mutant's diff must be the one recorded) and run against the working tree's tests.
    ({id: status} of the report's survivors, {survivor id: diff})."""
    recorded = {s["id"]: s["diff"] for s in previous.get("survivors", [])}
    chosen = sorted(m for m in recorded if not only or any(fnmatch.fnmatchcase(m, p) for p in only))
    if not chosen:
        raise ConfigError(f"the report records no survivors of {module}"
                          f"{' matching ' + ' '.join(only) if only else ''} to retest")
    scratch_copy(scratch, module, target)
    output = mutmut(scratch, "run", "--max-children", str(max_children), *chosen, check=False)
    found = {m: status for m, status in statuses(scratch).items() if m in chosen}
    missing = sorted(set(chosen) - set(found))
    changed = sorted(m for m in found if diff(scratch, m) != recorded[m]) if not missing else []
    if missing or changed:
        raise ConfigError(f"{module} changed since the report's run ({(missing or changed)[0]} "
                          f"{'is no longer made' if missing else 'is another mutant now'}); run it in full")
    if "not checked" in found.values():
        raise RuntimeError(f"mutmut left survivors of {module} unchecked; its output ends:\n{output[-3000:]}")
    found.update({m: "survived" for m in recorded if m not in found})  # not retested: as the report has them
    return found, {m: recorded[m] for m, status in found.items() if status == "survived"}


def merge_retest(previous: dict, found: dict[str, str]) -> dict[str, str]:
    """A retest's statuses of the report's survivors, with the rest of the report's mutants as its counts say
    (their ids are not recorded: placeholders keep the counts `summarise` makes)."""
    merged = dict(found)
    decided = {"killed": previous["killed"], "timeout": previous["timeout"], **previous.get("other", {})}
    for status, count in decided.items():
        merged.update({f"<{status} in the full run #{i}>": status for i in range(count)})
    return merged


def run_module(module: str, target: Target, max_children: int, keep: Path | None,
               retest: bool = False, resume: bool = False) -> tuple[dict, dict]:
    """Run mutmut over `module` in a scratch copy; ({id: status}, {survivor id: diff}). With `retest`, `keep`
    holds an earlier run: only its mutants that were not killed are run again, against the current tests. With
    `resume`, `keep` holds a full run that was stopped: mutmut tests only the mutants it had not decided."""
    scratch = Path(tempfile.mkdtemp(prefix="mutation-")) if keep is None else keep
    try:
        if retest:
            names = retest_names(scratch, module, target)
            output = mutmut(scratch, "run", "--max-children", str(max_children), *names, check=False)
        elif resume:
            reuse_kept_run(scratch, module, target)
            output = mutmut(scratch, "run", "--max-children", str(max_children), check=False)
        else:
            scratch_copy(scratch, module, target)
            output = mutmut(scratch, "run", "--max-children", str(max_children), check=False)
        found = statuses(scratch)
        if not found:
            raise RuntimeError(f"mutmut made no mutants of {module}; its output ends:\n{output[-3000:]}")
        if set(found.values()) == {"not checked"}:  # e.g. the clean tests failed under mutmut's trampolines
            raise RuntimeError(f"mutmut checked none of the mutants of {module}; its output ends:\n"
                               f"{output[-3000:]}")
        return found, {m: diff(scratch, m) for m, status in found.items() if status == "survived"}
    finally:
        if keep is None:
            shutil.rmtree(scratch, ignore_errors=True)


def add_equivalent(report: dict, reasons: dict[str, str]) -> list[str]:
    """Give the survivors named in `reasons` ({mutant id: why no test can tell it from the module}) their
    `equivalent` line, in whichever module they are, and recount; the modules changed. An id that is not a
    survivor of the report is an error (a stale or mistyped id would otherwise be dropped silently)."""
    where = {s["id"]: (module, s) for module, entry in report.items() for s in entry.get("survivors", [])}
    unknown = sorted(set(reasons) - set(where))
    if unknown:
        raise ConfigError(f"not survivors of the report: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}; "
                          f"take the ids from its 'survivors'")
    changed = []
    for mutant, reason in reasons.items():
        module, survivor = where[mutant]
        survivor["equivalent"] = reason.strip()
        changed.append(module)
    for module in set(changed):
        entry = report[module]
        entry["equivalent"] = sum("equivalent" in s for s in entry["survivors"])
        entry["killed_pct_of_the_rest"] = killed_pct_of_the_rest(entry)
    return sorted(set(changed))


def write_report(out: Path, report: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(sorted(report.items())), indent=2, ensure_ascii=False) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", nargs="?", help="a key of MODULES, e.g. repro/study/stats.py")
    parser.add_argument("--tests", nargs="+", default=None, help="another test selection than MODULES's")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested side by side (default 1)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--keep", default=None, help="run in this folder and leave it (mutmut browse works there)")
    parser.add_argument("--retest", action="store_true",
                        help="with --keep of an earlier run of the module (same code, same settings): run only its "
                             "mutants that were not killed, against the current tests; without --keep: the survivors "
                             "--out records, made again in a fresh copy")
    parser.add_argument("--only", nargs="+", metavar="PATTERN",
                        help="with --retest in a fresh copy: only the recorded survivors whose id matches a pattern "
                             "(fnmatch, e.g. 'repro.train.x__drive__mutmut_*')")
    parser.add_argument("--resume", action="store_true",
                        help="with --keep of a full run that was stopped (same code, same settings): test only the "
                             "mutants it had not decided; it counts as the full run")
    parser.add_argument("--collect", action="store_true",
                        help="no run: with --keep of a run or retest that was stopped, write what it decided so far "
                             "into --out (its entry says 'stopped'); --resume or --retest goes on from there")
    parser.add_argument("--equivalent", metavar="REASONS.json",
                        help="no run: give the survivors named in this file ({mutant id: reason}) their 'equivalent' "
                             "line in --out, and recount")
    parser.add_argument("--list", action="store_true", help="MODULES and the counts in --out; no run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    if args.equivalent:
        changed = add_equivalent(report, json.loads(Path(args.equivalent).read_text()))
        write_report(out, report)
        for module in changed:
            print(f"{module}: {report[module]['equivalent']} equivalent, "
                  f"{report[module]['killed_pct_of_the_rest']}% killed of the rest")
        return
    if args.list or not args.module:
        for module, target in MODULES.items():
            entry = report.get(module)
            done = (f"{entry['killed']} of {entry['total']} killed, {entry['survived']} survived "
                    f"({entry['equivalent']} equivalent), {entry['timeout']} timeout" if entry else "not run")
            print(f"{module:24s} {done}; tests: {' '.join(target.tests)}")
        return
    if args.module not in MODULES:
        raise ConfigError(f"no mutation target {args.module!r}; the targets: {', '.join(MODULES)}")
    target = MODULES[args.module]
    if args.tests:
        target = Target(tuple(args.tests), target.timeout_multiplier, target.timeout_constant,
                        target.process_isolation, target.also_copy)
    keep = Path(args.keep).resolve() if args.keep else None
    # --retest without the folder of an earlier run: the report's survivors, made again in a fresh copy
    from_report = args.retest and not (keep and (keep / "mutants").is_dir())
    if args.only and not from_report:
        raise ConfigError("--only selects among the survivors the report records: use it with --retest, without a "
                          "--keep folder of an earlier run")
    if args.resume and not keep:
        raise ConfigError("--resume needs --keep FOLDER, the folder of the stopped run of the module")
    if args.retest and args.resume:
        raise ConfigError("--retest and --resume exclude each other: resume a stopped full run first, then retest")
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.collect:
        if not keep or not (keep / "mutants").is_dir():
            raise ConfigError("--collect needs --keep FOLDER, the folder of a stopped run of the module")
        found = statuses(keep)
        diffs = {m: diff(keep, m) for m, status in found.items() if status == "survived"}
    elif from_report:
        if args.module not in report:
            raise ConfigError(f"--retest needs a run of {args.module}: in --keep FOLDER or recorded in {out}")
        scratch = keep or Path(tempfile.mkdtemp(prefix="mutation-"))
        try:
            found, diffs = retest_from_report(scratch, args.module, target, report[args.module], args.max_children,
                                              args.only)
        finally:
            if keep is None:
                shutil.rmtree(scratch, ignore_errors=True)
        found = merge_retest(report[args.module], found)
    else:
        found, diffs = run_module(args.module, target, args.max_children, keep, args.retest, args.resume)
    previous = report.get(args.module)
    report[args.module] = summarise(args.module, target, found, diffs, previous)
    kind = "retest of the mutants the run before left alive" if args.retest else "full"
    kind += ", made again from the report's survivors" if from_report else ""
    kind += f" matching {' '.join(args.only)}" if args.only else ""
    kind = f"{kind}, stopped before the end (what it had decided)" if args.collect else kind
    run = {"kind": kind + (", resumed after a stop (minutes: of the resumed part)" if args.resume else ""),
           "minutes": round((time.monotonic() - started) / 60, 1), "max_children": args.max_children}
    if args.collect:
        run.pop("minutes")  # the time of the collection, not of the run
    report[args.module]["runs"] = [*((previous or {}).get("runs", []) if args.retest else []), run]
    write_report(out, report)
    entry = report[args.module]
    print(f"{args.module}: {entry['killed']} of {entry['total']} killed ({entry['killed_pct']}%), "
          f"{entry['survived']} survived ({entry['equivalent']} equivalent), {entry['timeout']} timeout, "
          f"other {entry['other']}")
    for survivor in entry["survivors"]:
        if "equivalent" not in survivor:
            print(f"  survived: {survivor['id']}")


if __name__ == "__main__":
    sys.exit(run_script(main))
