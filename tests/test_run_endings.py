"""Every way a run ends, forced at a chosen update, in every context a run is started from: the exit code that
repro/errors.py documents, one line on stderr that says so, and the run folders and grid rows left consistent.

ENDINGS x CONTEXTS: a run that finishes; one whose weights turn NaN in mid-pass 2 (it must find its own loss
non-finite at its next check, keep its last good checkpoint and stop as `diverged`); one stopped by SIGTERM there;
one that fails there (raises). Each in `lenet5 train` (one seed), `lenet5 train --seeds 0 1`, `lenet5 grid` with a
pool of two local workers, and `lenet5 grid --backend ray` on a real cluster. The endings are forced through
repro.train's step hook, installed in the processes that train (tests/helpers/step_hooks.py).
"""
import json
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers.step_hooks import FAILURE, WAITING, lenet5_command
from repro.errors import GRID_RUNS_FAILED, DivergedError, Interrupted, RunError
from repro.run_folder import RunPaths
from repro.study.grid import RUNS_FILE, read_rows

ENDINGS = ["finished", "diverged", "interrupted", "failed"]
CONTEXTS = ["one seed", "seeds", "grid", "ray"]

# 640 patterns at batch 16: 40 updates a pass, 2 passes; a checkpoint every 5 updates (train contexts)
UPDATES_PER_PASS = 40
AT = 52  # the update where the ending is forced: pass 2, update 12, between two checkpoints (train contexts)
LAST_CHECKPOINT = (1, 10)  # (pass, step) of the checkpoint before AT: pass 2 (index 1), update 10
NEXT_CHECK = {"train": 15, "grid": UPDATES_PER_PASS}  # the first check after AT: a checkpoint's, or the pass's end
TRAIN_SET = ["epochs=2", "batch_size=16", "hessian_samples=8", "checkpoint_every=5"]
# the tests' grids (tests/helpers/grid_data.py, declared in the processes lenet5_command starts): epochs 2, batch 16
GRID_VARIANTS = {"grid": ("paper", "c3=full", "pooling=max"), "ray": ("paper", "c3=full")}
GRID_NAMES = {"grid": "tiny", "ray": "tiny_ray"}

EXIT_CODES = {  # (ending, train or grid) -> the exit code repro/errors.py documents
    ("finished", "train"): 0, ("diverged", "train"): DivergedError.exit_code,
    ("interrupted", "train"): Interrupted.exit_code, ("failed", "train"): RunError.exit_code,
    ("finished", "grid"): 0, ("diverged", "grid"): 0,  # a grid that ran every cell, some diverged, succeeded
    ("interrupted", "grid"): Interrupted.exit_code, ("failed", "grid"): GRID_RUNS_FAILED,
}

try:  # the real cluster of tests/test_ray.py: one `ray start --head` for this module's Ray cases
    from test_ray import cluster  # a fixture, used by name
except pytest.skip.Exception as _no_ray:
    _why = str(_no_ray)

    @pytest.fixture(scope="module")
    def cluster():
        pytest.skip(_why)


def env(tmp_path: Path) -> dict:
    # built when the test runs: the cluster fixture points HOME at its own folder
    return {**os.environ, "OMP_NUM_THREADS": "1", "LENET5_RAY_SCRATCH": str(tmp_path / "scratch")}


def command_line(context: str, data_root: Path, out: Path, address: str | None) -> list[str]:
    if context in ("one seed", "seeds"):
        seeds = ["--seeds", "0", "1"] if context == "seeds" else []
        return ["train", "--data-root", str(data_root), "--threads", "1", "--quiet", "--set", *TRAIN_SET, *seeds,
                "--out", str(out)]
    args = ["grid", GRID_NAMES[context], "--seeds", "0", "--quiet", "--data-root", str(data_root), "--out", str(out)]
    return args + (["--backend", "ray", "--address", address] if context == "ray" else ["--workers", "2"])


def run_dirs(context: str, out: Path) -> list[Path]:
    """The run folders a context trains, in the order it trains them."""
    if context == "one seed":
        return [out]
    if context == "seeds":
        return [out / "seed0", out / "seed1"]
    return [out / v.replace("=", "-") / "seed0" for v in GRID_VARIANTS[context]]


def lines(stderr: str, pattern: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(pattern, line)]


def summary(run_dir: Path) -> dict | None:
    paths = RunPaths(run_dir)
    return json.loads(paths.summary.read_text()) if paths.summary.exists() else None


def checkpoint_position(run_dir: Path) -> tuple[int, int]:
    """(pass, step) of the run's checkpoint, whose weights must all be finite."""
    state = torch.load(RunPaths(run_dir).checkpoint, weights_only=False)
    assert all(torch.isfinite(w).all() for w in state["model"].values()), f"{run_dir}: a non-finite checkpoint"
    return state["pass"], state["step"]


def rows(out: Path) -> dict:
    file = out / RUNS_FILE
    if not file.exists():
        return {}
    found, damaged = read_rows(file)
    assert damaged == 0
    keyed = {(r["variant"], r["seed"]): r for r in found}
    assert len(keyed) == len(found), "a cell has two rows"
    return keyed


def force(ending: str, context: str, data_root: Path, out: Path, address, tmp_path) -> subprocess.CompletedProcess:
    """Run the context with `ending` forced at update AT of every run that gets there."""
    args = command_line(context, data_root, out, address)
    if ending == "finished":
        return subprocess.run([*lenet5_command(), *args], capture_output=True, text=True, env=env(tmp_path),
                              timeout=600)
    if ending in ("diverged", "failed"):
        hook = {"poison_at": AT} if ending == "diverged" else {"fail_at": AT}
        return subprocess.run([*lenet5_command(**hook), *args], capture_output=True, text=True,
                              env=env(tmp_path), timeout=600)
    # interrupted: the runs wait at AT for a stop signal; SIGTERM to the driver once they all wait (the pool's
    # two workers: the third cell has not started), or once the first Ray run waits (the other may finish)
    once = tmp_path / "waiting.pid" if context == "ray" else None
    proc = subprocess.Popen([*lenet5_command(wait_at=AT, wait_once=once), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(tmp_path))
    if context == "ray":  # Ray workers' stderr does not reach the driver: the waiting run writes its pid
        deadline = time.monotonic() + 300
        while not (once.exists() and once.read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
        time.sleep(1.0)
        seen = []
    else:
        seen = []
        while sum(WAITING in line for line in seen) < (2 if context == "grid" else 1):
            line = proc.stderr.readline()
            assert line, f"ended before waiting: {''.join(seen)}"
            seen.append(line)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "".join(seen) + stderr)


# The grid and Ray contexts take 30-90 s a case (a process pool, a Ray cluster), several seeds ~10 s: they are
# `extended`, left out of the default run to keep the suite under 10 minutes (python -m pytest -m extended).
EXTENDED_CONTEXTS = ("seeds", "grid", "ray")
CASES = [pytest.param(e, c, id=f"{e}-{c.replace(' ', '_')}",
                      marks=[pytest.mark.slow] + ([pytest.mark.extended] if c in EXTENDED_CONTEXTS else []))
         for e in ENDINGS for c in CONTEXTS]


@pytest.mark.parametrize("ending, context", CASES)
def test_each_ending_in_each_context_is_clean(ending, context, tiny_mnist_large, tmp_path, request):
    address = request.getfixturevalue("cluster") if context == "ray" else None
    out = tmp_path / "out"
    done = force(ending, context, tiny_mnist_large, out, address, tmp_path)
    kind = "train" if context in ("one seed", "seeds") else "grid"
    assert done.returncode == EXIT_CODES[(ending, kind)], done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors, interrupted = lines(done.stderr, "lenet5: error: "), lines(done.stderr, "lenet5: interrupted: ")
    dirs = run_dirs(context, out)
    if kind == "train":
        check_train(ending, context, dirs, errors, interrupted)
    else:
        check_grid(ending, context, out, dirs, done.stderr, errors, interrupted, tiny_mnist_large, address, tmp_path)


def check_train(ending, context, dirs, errors, interrupted):
    if ending == "finished":
        assert errors == interrupted == []
        for d in dirs:
            assert summary(d)["status"] == "finished" and RunPaths(d).model.exists()
    elif ending == "diverged":
        # every seed reaches AT, so each diverges: one line per diverged run, each naming its pass and update
        assert interrupted == [] and len(errors) == len(dirs), errors
        for line, d in zip(errors, dirs):
            found = re.search(r"run diverged in pass (\d+) before step (\d+)", line)
            assert found, line
            # pass 2, at the first check after AT: the next checkpoint's
            assert (int(found[1]), int(found[2])) == (AT // UPDATES_PER_PASS + 1, NEXT_CHECK["train"]), line
            s = summary(d)
            assert s["status"] == "diverged" and s["passes"] == 1 and str(RunPaths(d).checkpoint) in s["message"]
            assert not RunPaths(d).model.exists()
            # the last good checkpoint: the one before AT, where the weights turned NaN; none after it
            assert checkpoint_position(d) == LAST_CHECKPOINT
    else:
        # the first run stops at AT (interrupted: checkpointed there; failed: its last checkpoint is kept); a
        # further seed never starts
        if ending == "interrupted":
            assert errors == [] and len(interrupted) == 1, interrupted
            assert f"stopped at pass 2, update {AT % UPDATES_PER_PASS}" in interrupted[0]
        else:
            assert interrupted == [] and len(errors) == 1 and FAILURE in errors[0], errors
        first, *rest = dirs
        assert summary(first) is None and not RunPaths(first).model.exists()
        assert checkpoint_position(first) == ((AT // UPDATES_PER_PASS, AT % UPDATES_PER_PASS)
                                              if ending == "interrupted" else LAST_CHECKPOINT)
        for d in rest:
            assert not RunPaths(d).checkpoint.exists() and summary(d) is None


def check_grid(ending, context, out, dirs, stderr, errors, interrupted, data_root, address, tmp_path):
    keys = [(v, 0) for v in GRID_VARIANTS[context]]
    found = rows(out)
    # the runs that did not finish each say so in one line (the exit code speaks for the grid)
    cell_lines = lines(stderr, r"\S+ seed 0: (diverged|failed): ")
    assert errors == [], errors
    if ending == "interrupted":
        assert len(interrupted) == 1 and f"grid {GRID_NAMES[context]} stopped with" in interrupted[0], stderr
        if context == "grid":
            # both workers' runs were stopped at AT and checkpointed; the third cell never started; no row
            assert found == {}
            started = [d for d in dirs if RunPaths(d).checkpoint.exists()]
            assert len(started) == 2
            for d in started:
                assert summary(d) is None and not RunPaths(d).model.exists()
                assert checkpoint_position(d) == (AT // UPDATES_PER_PASS, AT % UPDATES_PER_PASS)
        else:
            # the stopped Ray run has no row; the other cell finished, or was stopped too
            assert all(r["status"] == "finished" for r in found.values()) and len(found) <= 1
        assert cell_lines == []
    else:
        assert interrupted == []
        assert sorted(found) == sorted(keys)  # one row per cell
        assert {r["status"] for r in found.values()} == {ending}
        assert len(cell_lines) == (0 if ending == "finished" else len(keys)), cell_lines
        for d in dirs:
            if ending == "failed":
                assert summary(d) is None and not RunPaths(d).model.exists()
                continue
            s = summary(d)
            assert s["status"] == ending and RunPaths(d).model.exists() == (ending == "finished")
            if ending == "diverged":
                assert f"run diverged in pass 2 before step {NEXT_CHECK['grid']}:" in s["message"], s
                assert s["passes"] == 1
                if context == "grid":  # the local run keeps its last good checkpoint (a Ray run's stays on its node)
                    assert checkpoint_position(d)[0] == 1
        if ending == "failed":
            assert all(FAILURE in r["message"] for r in found.values())
    if ending in ("failed", "interrupted"):
        # a rerun retries the failed cells and resumes the interrupted ones: every cell ends with one finished row
        rerun = force("finished", context, data_root, out, address, tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        again = rows(out)
        assert sorted(again) == sorted(keys) and all(r["status"] == "finished" for r in again.values())
        for d in dirs:
            assert summary(d)["status"] == "finished" and RunPaths(d).model.exists()
    if ending == "diverged":
        # a rerun does not repeat a diverged cell
        rerun = force("finished", context, data_root, out, address, tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        assert {r["status"] for r in rows(out).values()} == {"diverged"} and len(rows(out)) == len(keys)


def test_a_divergence_anywhere_is_caught_at_the_next_check_with_its_position(tiny_mnist, tmp_path):
    """In-process, quick: weights turned NaN at an update that is neither a check nor a pass's end are caught at the
    run's next check, which names pass and update; the checkpoint there is never written."""
    from helpers.step_hooks import poison
    from repro.config import run_config
    from repro.train import StepHook, install_step_hook, train

    # 32 patterns at batch 1: 32 updates a pass; checkpoints every 8; poisoned at pass 2, update 5
    config = run_config("paper", {"epochs": 3, "batch_size": 1, "hessian_samples": 8, "checkpoint_every": 8})
    install_step_hook(StepHook(32 + 5, poison))
    try:
        with pytest.raises(DivergedError, match=r"run diverged in pass 2 before step 8\b"):
            train(config, tmp_path / "run", data_root=tiny_mnist, progress=False)
    finally:
        install_step_hook(None)
    s = summary(tmp_path / "run")
    assert s["status"] == "diverged" and s["passes"] == 1 and not math.isnan(s["final_test_error_pct"])
    assert not RunPaths(tmp_path / "run").model.exists()
    assert checkpoint_position(tmp_path / "run") == (1, 0)  # pass 1's; not the one at update 8 of pass 2
