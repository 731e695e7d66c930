"""`lenet5 grid NAME --backend ray [--address ADDR]`: a grid's runs as Ray tasks on a Ray cluster.

Why tasks and not Ray Tune trials: a grid is a fixed list of independent runs whose bookkeeping (one row per
run, written by the driver; skipping what finished; resuming from checkpoints) repro/study/grid.py already does
for the local pool. A task per (variant, seed) adds only what a cluster brings: placement on any node, and
Ray's own retry when a worker process or node dies. Tune would bring a second notion of trials, its own result
folders and its own resume, for search features a fixed grid does not use.

What runs where:
- Each task trains one run (repro.study.grid.run_cell) in a run folder on its node's disk, under
  $LENET5_RAY_SCRATCH (default: the node's temp dir)/lenet5-ray/<grid>/, and returns the finished folder's
  files (config, per-pass log and CSV, summary, test predictions, model) through Ray. The driver writes them
  into the grid folder and appends the run's row: workers need no shared filesystem, only the project installed
  and MNIST at the data root (the driver passes its LENET5_* environment variables on to the tasks).
- One CPU per task (`--threads` CPUs with more threads).
- A worker process that dies mid-run is retried by Ray (up to MAX_RETRIES times); the retry resumes from the
  run's checkpoint when it lands on the node that holds it (always, on a one-node cluster), else starts the run
  again. Either way it gives the same numbers (resuming is bit for bit, repro/train.py). With a shared
  filesystem, point LENET5_RAY_SCRATCH at it and a retry on any node resumes.
- A driver that dies loses nothing that finished (rows are appended as runs come back); started again it skips
  them. Ctrl-C or SIGTERM on the driver cancels the tasks: each running one checkpoints where it stands and
  returns, and the next start resumes it (on the same node).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ..interrupt import stop_requested

MAX_RETRIES = 3
SCRATCH_ENV = "LENET5_RAY_SCRATCH"
POLL_S = 0.5


def require_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray, which is not installed: pip install -e \".[ray]\"") from None
    return ray


def connect(address: str | None) -> None:
    """Join the cluster at `address`, or start a local one. Called before the grid installs its stop-signal
    handlers (repro/interrupt.py), because ray.init installs its own for SIGTERM."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)


def train_cell_on_node(cell, data_root, threads: int, scratch: str | None) -> dict:
    """The body of a Ray task: train (or resume) one cell in a node-local folder; its summary and files."""
    from ..run_folder import RunPaths
    from .cells import run_cell

    root = Path(scratch or tempfile.gettempdir()) / "lenet5-ray" / cell.grid
    summary = run_cell(cell, root, data_root, threads)
    run_dir = cell.run_dir(root)
    files = {}
    if summary["status"] in ("finished", "diverged"):
        # the whole finished run, its outputs on the test set and non-digits included (the rejection tables)
        files = {p.name: p.read_bytes() for p in RunPaths(run_dir).finished_files() if p.exists()}
    return {"summary": summary, "files": files}


def run_on_ray(todo, record, out: Path, data_root, threads: int) -> None:
    """Run `todo`'s cells as Ray tasks on the cluster `connect` joined, recording each result through `record`
    as it comes back."""
    ray = require_ray()
    from .. import atomic
    from .cells import INTERRUPTED

    env = {k: v for k, v in os.environ.items() if k.startswith("LENET5_")}
    task = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES, runtime_env={"env_vars": env})(train_cell_on_node)
    scratch = os.environ.get(SCRATCH_ENV)
    data_root = None if data_root is None else str(Path(data_root).resolve())
    refs = {task.remote(cell, data_root, threads, scratch): cell for cell in todo}
    for cell in todo:
        getattr(record, "started", lambda _: None)(cell)
    cancelled = False
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
        for ref in ready:
            cell = refs.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                record(cell, {"status": INTERRUPTED, "message": "cancelled before it started"})
                continue
            except ray.exceptions.RayError as exc:  # the task failed for good (retries spent, or an error)
                record(cell, {"status": "failed", "message": f"{type(exc).__name__}: "
                                                            f"{str(exc).strip().splitlines()[0][:300]}"})
                continue
            run_dir = cell.run_dir(out)
            run_dir.mkdir(parents=True, exist_ok=True)
            for name, data in result["files"].items():
                atomic.write_bytes(run_dir / name, data)
            record(cell, result["summary"])
        if stop_requested() and not cancelled:
            cancelled = True
            for ref in refs:
                ray.cancel(ref, force=False)  # SIGINT in the worker: the run checkpoints and returns
