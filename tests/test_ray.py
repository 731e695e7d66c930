"""`lenet5 grid --backend ray` against a real Ray cluster, started as a user starts one (`ray start --head` in a
subprocess; the driver connects to its address): the same rows as the local backend, and a worker killed
mid-run is retried with nothing lost or duplicated."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from repro.config import run_config
from repro.study.grid import RUNS_FILE, read_rows, run_grid
from repro.study.grids import Grid, Variant
from repro.train import WAIT_AT_STEP_ENV, WAIT_ONCE_FILE_ENV

ray = pytest.importorskip("ray", reason="Ray is an optional dependency: pip install -e \".[test,ray]\" (CI does)")
RAY = Path(sys.executable).with_name("ray")


def tiny_grid(epochs: int) -> Grid:
    """2 variants of the paper preset on 640 synthetic patterns, batch 16."""
    def config(**swap):
        return run_config("paper", dict(epochs=epochs, batch_size=16, hessian_samples=8, **swap))
    return Grid("tiny_ray", "paper", "a test grid", (Variant("paper", None, None, config()),
                                                    Variant("c3=full", "c3", "full", config(c3="full"))))


@pytest.fixture(scope="module")
def cluster():
    """A one-node cluster of 2 CPUs from `ray start --head`, stopped at the end. HOME points at an empty folder
    for the cluster and the drivers alike: an auth token that an earlier `ray.init()` left in ~/.ray would make
    the cluster and a driver disagree about authentication (seen with Ray 2.60)."""
    temp = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit in 107 characters
    port = 6400 + os.getpid() % 500
    home = os.environ.get("HOME")
    os.environ["HOME"] = temp
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        started = subprocess.run([str(RAY), "start", "--head", f"--port={port}", "--num-cpus=2",
                                  f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"],
                                 capture_output=True, text=True, env=env, timeout=120)
        assert started.returncode == 0, started.stderr
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, env=env, timeout=120)
        if home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = home


def rows_by_key(out: Path) -> dict:
    rows, damaged = read_rows(out / RUNS_FILE)
    assert damaged == 0
    keyed = {(r["variant"], r["seed"]): r for r in rows}
    assert len(keyed) == len(rows)  # one row per run, none duplicated
    return keyed


def assert_same_grid(a: Path, b: Path) -> None:
    ra, rb = rows_by_key(a), rows_by_key(b)
    assert sorted(ra) == sorted(rb)
    for key, row in ra.items():
        assert row["status"] == rb[key]["status"] == "finished"
        assert row["final_test_error_pct"] == rb[key]["final_test_error_pct"]
        assert row["final_train_error_pct"] == rb[key]["final_train_error_pct"]
        ma = torch.load(a / row["run_dir"] / "model.pt")["model"]
        mb = torch.load(b / rb[key]["run_dir"] / "model.pt")["model"]
        assert all(torch.equal(ma[k], mb[k]) for k in ma)
        for name in ("config.json", "log.csv", "summary.json", "test_predictions.json"):
            assert (b / rb[key]["run_dir"] / name).exists()


@pytest.mark.slow
def test_ray_backend_gives_the_local_backends_rows(cluster, tiny_mnist_large, tmp_path, monkeypatch):
    monkeypatch.setenv("LENET5_RAY_SCRATCH", str(tmp_path / "scratch"))
    grid = tiny_grid(epochs=1)
    run_grid(grid, [0, 1], tmp_path / "local", 1, 1, tiny_mnist_large, progress=False)
    rows = run_grid(grid, [0, 1], tmp_path / "ray", 1, 1, tiny_mnist_large, progress=False, backend="ray",
                    address=cluster)
    assert len(rows) == 4
    assert_same_grid(tmp_path / "local", tmp_path / "ray")
    # the run folders were written by the driver from what the tasks returned, not on a shared disk
    assert not (tmp_path / "ray" / "paper" / "seed0" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_and_the_grid_completes_exactly(cluster, tiny_mnist_large, tmp_path,
                                                                             monkeypatch):
    grid = tiny_grid(epochs=2)
    run_grid(grid, [0], tmp_path / "local", 1, 1, tiny_mnist_large, progress=False)
    pid_file = tmp_path / "waiting.pid"
    # the first run to reach update 50 (pass 2 of 40 updates, after pass 1's checkpoint) waits there once
    monkeypatch.setenv(WAIT_AT_STEP_ENV, "50")
    monkeypatch.setenv(WAIT_ONCE_FILE_ENV, str(pid_file))
    monkeypatch.setenv("LENET5_RAY_SCRATCH", str(tmp_path / "scratch"))
    killer = subprocess.Popen([sys.executable, "-c", (
        "import os, signal, sys, time, pathlib\n"
        f"p = pathlib.Path({str(pid_file)!r})\n"
        "for _ in range(1200):\n"
        "    if p.exists() and p.read_text().strip():\n"
        "        time.sleep(0.2); os.kill(int(p.read_text()), signal.SIGKILL); sys.exit(0)\n"
        "    time.sleep(0.05)\n"
        "sys.exit(1)\n")])
    rows = run_grid(grid, [0], tmp_path / "ray", 1, 1, tiny_mnist_large, progress=False, backend="ray",
                    address=cluster)
    assert killer.wait(timeout=60) == 0  # it found a waiting worker and killed it
    assert len(rows) == 2 and all(r["status"] == "finished" for r in rows)
    assert_same_grid(tmp_path / "local", tmp_path / "ray")


def test_without_ray_the_backend_is_one_line_naming_the_install(monkeypatch, tmp_path):
    import builtins

    from repro.config import ConfigError
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[ray\]"'):
        run_grid(tiny_grid(1), [0], tmp_path / "grid", backend="ray")
    assert not (tmp_path / "grid").exists()


DRIVER = """
import sys
from repro import cli
from repro.config import run_config
from repro.study import grids

def config(**swap):
    return run_config("paper", dict(epochs=2, batch_size=16, hessian_samples=8, **swap))

grids.GRIDS["tiny_ray"] = grids.Grid("tiny_ray", "paper", "a test grid", (
    grids.Variant("paper", None, None, config()), grids.Variant("c3=full", "c3", "full", config(c3="full"))))
if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_to_the_ray_driver_stops_the_grid_and_the_rerun_completes_exactly(cluster, tiny_mnist_large,
                                                                                    tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    pid_file = tmp_path / "waiting.pid"
    args = [sys.executable, str(script), "grid", "tiny_ray", "--seeds", "0", "--quiet", "--backend", "ray",
            "--address", cluster, "--data-root", str(tiny_mnist_large), "--out", str(tmp_path / "ray")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LENET5_RAY_SCRATCH": str(tmp_path / "scratch")}
    driver = subprocess.Popen(args, env={**env, WAIT_AT_STEP_ENV: "50", WAIT_ONCE_FILE_ENV: str(pid_file)},
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and driver.poll() is None, driver.stderr.read() if driver.poll() else ""
        time.sleep(0.05)
    time.sleep(1.0)  # let the other run finish and be recorded
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr
    assert "lenet5: interrupted: SIGTERM: grid tiny_ray stopped with 1 of 2 runs recorded" in stderr, stderr
    assert len(read_rows(tmp_path / "ray" / RUNS_FILE)[0]) == 1
    rerun = subprocess.run(args, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    run_grid(tiny_grid(epochs=2), [0], tmp_path / "local", 1, 1, tiny_mnist_large, progress=False)
    assert_same_grid(tmp_path / "local", tmp_path / "ray")
