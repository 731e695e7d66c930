"""`lenet5 grid --backend ray` against a real Ray cluster, started as a user starts one (`ray start --head` in a
subprocess; the driver connects to its address): the same rows as the local backend, and a worker killed
mid-run is retried with nothing lost or duplicated."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from helpers import grid_data
from helpers.step_hooks import lenet5_command
from repro.run_folder import RunPaths
from repro.study.grid import RUNS_FILE, read_rows, run_grid
from repro.study.grids import Grid

ray = pytest.importorskip("ray", reason="Ray is an optional dependency: pip install -e \".[test,ray]\" (CI does)")
RAY = Path(sys.executable).with_name("ray")


def tiny_grid(epochs: int) -> Grid:
    """2 variants of the paper preset on 640 synthetic patterns, batch 16: at 2 passes, the grid "tiny_ray" that
    `lenet5 grid` runs in the processes lenet5_command starts (tests/helpers/grid_data.py)."""
    return grid_data.tiny_grid(epochs, "tiny_ray", ("paper", "c3=full"))


def grid_command(cluster: str, data_root: Path, out: Path) -> list[str]:
    """`lenet5 grid tiny_ray` on the cluster, seed 0; to follow lenet5_command."""
    return ["grid", "tiny_ray", "--seeds", "0", "--quiet", "--backend", "ray", "--address", cluster,
            "--data-root", str(data_root), "--out", str(out)]


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
        # every file the local run left (its checkpoint aside) came back, the outputs the rejection tables read too
        local = {p.name for p in (a / row["run_dir"]).iterdir()} - {RunPaths(a).checkpoint.name}
        assert local >= {"test_outputs.npz", "model.pt", "summary.json"}
        assert {p.name for p in (b / rb[key]["run_dir"]).iterdir()} == local


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
def test_a_worker_killed_mid_run_is_retried_and_the_grid_completes_exactly(cluster, tiny_mnist_large, tmp_path):
    run_grid(tiny_grid(epochs=2), [0], tmp_path / "local", 1, 1, tiny_mnist_large, progress=False)
    pid_file = tmp_path / "waiting.pid"
    killer = subprocess.Popen([sys.executable, "-c", (
        "import os, signal, sys, time, pathlib\n"
        f"p = pathlib.Path({str(pid_file)!r})\n"
        "for _ in range(1200):\n"
        "    if p.exists() and p.read_text().strip():\n"
        "        time.sleep(0.2); os.kill(int(p.read_text()), signal.SIGKILL); sys.exit(0)\n"
        "    time.sleep(0.05)\n"
        "sys.exit(1)\n")])
    # the first run to reach update 50 (pass 2 of 40 updates, after pass 1's checkpoint) waits there once; the
    # driver runs in a process of its own, which has Ray install that hook in its workers
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LENET5_RAY_SCRATCH": str(tmp_path / "scratch")}
    driver = subprocess.run([*lenet5_command(wait_at=50, wait_once=pid_file),
                             *grid_command(cluster, tiny_mnist_large, tmp_path / "ray")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert killer.wait(timeout=60) == 0  # it found a waiting worker and killed it
    assert driver.returncode == 0, driver.stderr
    rows = read_rows(tmp_path / "ray" / RUNS_FILE)[0]
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


@pytest.mark.slow
def test_sigterm_to_the_ray_driver_stops_the_grid_and_the_rerun_completes_exactly(cluster, tiny_mnist_large,
                                                                                    tmp_path):
    pid_file = tmp_path / "waiting.pid"
    args = grid_command(cluster, tiny_mnist_large, tmp_path / "ray")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LENET5_RAY_SCRATCH": str(tmp_path / "scratch")}
    driver = subprocess.Popen([*lenet5_command(wait_at=50, wait_once=pid_file), *args], env=env,
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
    rerun = subprocess.run([*lenet5_command(), *args], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    run_grid(tiny_grid(epochs=2), [0], tmp_path / "local", 1, 1, tiny_mnist_large, progress=False)
    assert_same_grid(tmp_path / "local", tmp_path / "ray")
