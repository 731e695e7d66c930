"""`lenet5 grid NAME`: every (variant, seed) of an ablation grid (repro/study/grids.py), resumable.

Layout under the output folder (default results/grids/NAME/):

    runs.jsonl               one JSON line per run that ended: finished, diverged or failed
    <variant>/seed<N>/       the run folder of repro.train (config, per-pass log, test predictions, checkpoint)

A re-run skips every (variant, seed) that has a finished or diverged row, retries failed ones, and resumes
interrupted runs from their checkpoints. Rows are written by the main process only, each with one `write` of a
whole line followed by fsync; a line cut short by a kill is detected on the next start, dropped, and its run
recorded again (from its run folder if it had finished, otherwise by resuming or redoing it).

Runs go to a local process pool (`workers` processes of `threads` torch threads each, at most the machine's
cores); workers=1 runs them in this process. Ctrl-C or SIGTERM stops the grid cleanly: running runs write their
checkpoints, no new run starts, no row is written for an unfinished run, and `Interrupted` is raised; the same
command resumes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from tqdm import tqdm

from .. import atomic
from ..config import ConfigError, RunConfig, apply_overrides
from ..errors import Interrupted
from ..interrupt import install_for_process, stop_requested, stop_signals
from ..provenance import making_of, this_making
from ..run_folder import RunPaths, passes_logged, finished_runs as finished_result_runs, read_summary
from .cells import INTERRUPTED, Cell, run_cell  # noqa: F401 - run_cell: the runners' (and tests') name for it

RUNS_FILE = "runs.jsonl"
DONE = ("finished", "diverged")  # a re-run does not repeat these; 'failed' is retried


# what `lenet5 grid --set` may change in every run of a grid: its size and how it is measured, never what a
# variant swaps (a --set activation=relu would make every variant the same network and the Δs meaningless)
SHRINK_KEYS = ("train_size", "epochs", "evaluate_on", "hessian_samples", "checkpoint_every", "engine")


def shrunk(config, overrides: dict | None):
    """`config` with `lenet5 grid --set`'s overrides (SHRINK_KEYS only) applied."""
    if not overrides:
        return config
    wrong = [k for k in overrides if k not in SHRINK_KEYS]
    if wrong:
        raise ConfigError(f"lenet5 grid --set {wrong[0]}: a grid's runs may be changed in {', '.join(SHRINK_KEYS)} "
                          f"only (what its variants swap stays theirs); use lenet5 train --set for anything else")
    return apply_overrides(config, overrides)


def grid_cells(grid, seeds, variants=None, overrides=None) -> list[Cell]:
    """The grid's cells in run order: seed-major, so that a partial grid has every variant at its first seeds.
    `variants`: only the variants of these names (default: all); `overrides`: `shrunk`'s, for every cell."""
    cells = []
    for seed in seeds:
        for v in grid.variants:
            if variants is not None and v.name not in variants:
                continue
            base = shrunk(v.config, overrides)
            config = dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed))
            cells.append(Cell(grid.name, v.name, v.component, v.value, seed, config))
    return cells


def read_rows(path: Path) -> tuple[list[dict], int]:
    """The complete rows of a runs file, and how many damaged lines (cut short or not JSON) were dropped."""
    if not path.exists():
        return [], 0
    rows, damaged = [], 0
    text = path.read_text()
    lines = text.split("\n")
    # a file that does not end in a newline has a last line that was being written when the process died
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            complete = i < len(lines) - 1 and isinstance(row, dict) and "variant" in row and "seed" in row
        except json.JSONDecodeError:
            complete = False
        if complete:
            rows.append(row)
        else:
            damaged += 1
    return rows, damaged


def rewrite_rows(path: Path, rows: list[dict]) -> None:
    atomic.write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def append_row(path: Path, row: dict) -> None:
    """Append one whole line with a single write, then fsync: a kill leaves the line whole or cut short."""
    data = (json.dumps(row, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _row(cell: Cell, summary: dict, out: Path) -> dict:
    return {"grid": cell.grid, "variant": cell.variant, "component": cell.component, "value": cell.value,
            "seed": cell.seed, "digest": cell.config.digest(), "run_dir": str(cell.run_dir(out).relative_to(out)),
            "status": summary["status"], "message": summary.get("message", ""), **cell.config.flat(),
            **({"reused_from": summary["reused_from"]} if summary.get("reused_from") else {}),
            **{k: summary.get(k) for k in ("final_train_error_pct", "final_test_error_pct", "best_train_error_pct",
                                           "best_test_error_pct", "passes", "wall_s", "trainable_params",
                                           "threads", "torch", "commit", "code_dirty")},
            # the kind of machine, from the run's summary (repro/provenance.py; older runs have none)
            **{k: (summary.get("machine") or {}).get(k) for k in ("cpu", "cpu_capability")}}


def _check_rows(rows: list[dict], cells: list[Cell], runs_file: Path) -> None:
    digests = {c.key: c.config.digest() for c in cells}
    for row in rows:
        expected = digests.get((row["variant"], row["seed"]))
        if expected is not None and row["digest"] != expected:
            raise ConfigError(f"{runs_file} holds a run of {row['variant']} seed {row['seed']} with another config "
                              f"(digest {row['digest']}, the grid now declares {expected}); use another --out or "
                              f"move the old results away")


def finished_runs(sources, exclude: Path | None = None) -> dict[tuple[str, int], Path]:
    """{(config digest, seed): run folder} of the finished runs in other grid folders (their runs.jsonl) and
    result folders (their seed<N>/summary.json), so that a grid need not train a config another has trained.
    `exclude`: a folder to leave out (the grid's own).

    Only runs made by the code and kind of machine this process is (repro/provenance.py, `MAKING`): a Δ pairs a
    variant's seed with its baseline's only where both were made alike, so a copy made otherwise would leave the
    grid's other runs of that seed unpaired (e.g. a grid run from a newer commit copying a reference an older
    commit made in the grid beside it)."""
    found: dict[tuple[str, int], Path] = {}
    skip = None if exclude is None else Path(exclude).resolve()
    here = this_making()
    for source in (Path(s) for s in sources if Path(s).resolve() != skip):
        for row in read_rows(source / RUNS_FILE)[0]:
            if (row.get("status") == "finished" and "digest" in row and not row.get("reused_from")
                    and making_of(row) == here):
                found.setdefault((row["digest"], row["seed"]), source / row["run_dir"])
        try:
            runs = finished_result_runs(source, with_model=True)
        except (OSError, ValueError):  # not runs of ours: nothing to copy
            continue
        for run_dir, summary in runs:
            try:
                config = RunConfig.from_dict(summary["config"])
            except (KeyError, TypeError, ValueError, ConfigError):
                continue
            if making_of(summary) == here:
                found.setdefault((config.digest(), config.train.seed), run_dir)
    return found


def reuse_sources(out: Path) -> list[Path]:
    """Where `lenet5 grid` looks for finished runs to copy, when `out` lies in a results tree (.../grids/NAME):
    the other grids beside it (results/grids/*) and the result folders above them (results/*, e.g.
    results/paper_final, whose runs are the paper preset's). Anywhere else: nowhere, so that an --out in a
    shared folder such as /tmp never has its neighbours searched."""
    out = Path(out).resolve()
    if out.parent.name != "grids":
        return []
    return [d for parent in (out.parent, out.parent.parent) if parent.is_dir() for d in sorted(parent.iterdir())
            if d.is_dir() and d != out]  # a fresh results tree may not hold grids/ yet


def _reuse(cell: Cell, source: Path, out: Path) -> dict:
    """Copy a finished run of the same config and seed into the cell's folder (not its checkpoint); its
    summary, marked with where it came from."""
    import shutil

    run_dir = cell.run_dir(out)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a partial run of the same config: the finished one replaces it
    shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns(RunPaths(source).checkpoint.name, "*.tmp"))
    summary = read_summary(run_dir)
    return {**summary, "reused_from": _portable(source)}


def _copy_if_finished_elsewhere(cell: Cell, out: Path, reuse) -> dict | None:
    """The copy's summary when another folder finished the cell's config and seed after this grid started (two
    grids run side by side share configs), else None. Looked up just before the cell would train."""
    source = finished_runs(reuse, exclude=out).get((cell.config.digest(), cell.seed)) if reuse else None
    return None if source is None else _reuse(cell, source, out)


def _portable(path: Path) -> str:
    """`path` relative to the working directory where it lies below it (a committed row names no machine's
    folders), else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


BACKENDS = ("local", "ray")


def run_grid(grid, seeds, out: Path, workers: int = 1, threads: int = 1, data_root=None,
             progress: bool = True, reuse=(), backend: str = "local", address: str | None = None,
             variants=None, on_turn=None, overrides=None) -> list[dict]:
    """Run every cell of `grid` not yet recorded in out/runs.jsonl; returns all rows of the grid's cells. A cell
    whose config and seed finished in one of the `reuse` folders (`finished_runs`) is copied, not trained.
    `variants`: only the variants of these names (`Grid.with_baselines` adds what they are compared with).
    backend "local": a process pool of `workers` x `threads` on this machine; "ray": Ray tasks of `threads`
    CPUs each on the cluster at `address` (repro/study/ray_backend.py).
    `on_turn(cell)`: a seam for tests, never set in production; the local backend calls it in this process as a
    cell's turn comes, before the cell is looked up in the `reuse` folders and run (a test acts there as another
    grid running beside this one would)."""
    cores = os.cpu_count() or 1
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "ray":
        from .ray_backend import require_ray

        require_ray()  # before anything is written: a missing Ray is one line, not a failed grid
    if workers < 1 or threads < 1:
        raise ConfigError(f"--workers {workers} and --threads {threads} must be at least 1")
    if backend == "local" and workers * threads > cores:
        raise ConfigError(f"--workers {workers} x --threads {threads} = {workers * threads} exceeds this machine's "
                          f"{cores} cores; lower one of them")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs_file = out / RUNS_FILE
    cells = grid_cells(grid, seeds, variants, overrides)
    rows, damaged = read_rows(runs_file)
    failed_before = [r for r in rows if r["status"] not in DONE]
    if damaged or failed_before:
        # drop cut-short lines and the failed runs about to be retried, so every cell keeps a single row
        rows = [r for r in rows if r["status"] in DONE]
        rewrite_rows(runs_file, rows)
        if damaged:
            print(f"{runs_file}: dropped {damaged} damaged line(s); their runs are recorded again", file=sys.stderr)
    _check_rows(rows, cells, runs_file)
    done = {(r["variant"], r["seed"]) for r in rows}
    todo = [c for c in cells if c.key not in done]
    elsewhere = finished_runs(reuse, exclude=out) if todo else {}
    sources = {c.key: elsewhere.get((c.config.digest(), c.seed)) for c in todo}
    copies = [(c, sources[c.key]) for c in todo if sources[c.key]]
    todo = [c for c in todo if not sources[c.key]]
    if todo:
        from ..data import load_raw

        for dataset in sorted({c.config.train.dataset for c in todo}):
            load_raw(data_root, "test", dataset=dataset)  # missing data: one DataError now, not a failed row per run
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo) - len(copies), unit="run", disable=not progress,
               desc=grid.name, file=sys.stderr, dynamic_ncols=True)
    running = RunningCells(out, local=backend != "ray")

    def record(cell: Cell, summary: dict) -> None:
        running.ended(cell)
        if summary["status"] == INTERRUPTED:
            interrupted.append(cell)
            return
        row = _row(cell, summary, out)
        append_row(runs_file, row)
        rows.append(row)
        bar.update(1)
        if row["status"] != "finished":
            tqdm.write(f"{cell.variant} seed {cell.seed}: {row['status']}: {row['message']}", file=sys.stderr)

    record.started = running.started

    interrupted: list[Cell] = []
    for cell, source in copies:
        record(cell, _reuse(cell, source, out))
    if backend == "ray" and todo:
        from .ray_backend import connect

        connect(address)
    with stop_signals(), running.shown_on(bar):
        if backend == "ray" and todo:
            from .ray_backend import run_on_ray

            run_on_ray(todo, record, out, data_root, threads)
        elif workers == 1:
            _run_here(todo, record, out, data_root, threads, reuse, on_turn)
        elif todo:
            _run_in_pool(todo, record, out, data_root, threads, workers, reuse, on_turn)
    bar.close()
    if interrupted:
        started = [c for c in interrupted if RunPaths(c.run_dir(out)).checkpoint.exists()]
        raise Interrupted(f"{stop_requested() or 'stop'}: grid {grid.name} stopped with "
                          f"{len(todo) - len(interrupted)} of {len(todo)} runs recorded in {runs_file}; "
                          f"{len(started)} interrupted run(s) checkpointed in their folders")
    keys = {c.key for c in cells}
    return [r for r in rows if (r["variant"], r["seed"]) in keys]


def _run_here(todo: list[Cell], record, out: Path, data_root, threads: int, reuse=(), on_turn=None) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        for k, cell in enumerate(todo):
            if stop_requested():  # as the pool does: after a stop no cell starts, not even a copy
                for rest in todo[k:]:
                    record(rest, {"status": INTERRUPTED, "message": "not started"})
                break
            if on_turn:
                on_turn(cell)
            copied = _copy_if_finished_elsewhere(cell, out, reuse)
            if not copied:
                record.started(cell)
            record(cell, copied or run_cell(cell, out, data_root, threads))
    finally:
        torch.set_num_threads(before)  # run_cell set this process's thread count


POLL_S = 0.5  # how often the driver looks for a stop signal while its workers train


def _run_in_pool(todo: list[Cell], record, out: Path, data_root, threads: int, workers: int, reuse=(),
                 on_turn=None) -> None:
    """The cells on a process pool, handed out one at a time as workers free up, so that a cell another grid
    has finished meanwhile is copied instead. A stop signal to this process is passed on to the workers, which
    checkpoint their runs and start no other (repro/interrupt.py); the cells not started are recorded as such."""
    queue, running = list(todo), {}
    # spawn, not fork: forking a process that already runs torch's thread pools can deadlock
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=install_for_process) as pool:
        def hand_out():
            while queue and len(running) < workers and not stop_requested():
                cell = queue.pop(0)
                if on_turn:
                    on_turn(cell)
                copied = _copy_if_finished_elsewhere(cell, out, reuse)
                if copied:
                    record(cell, copied)
                else:
                    record.started(cell)
                    running[pool.submit(run_cell, cell, out, data_root, threads)] = cell

        hand_out()
        forwarded = False
        while running:
            finished, _ = wait(set(running), timeout=POLL_S, return_when=FIRST_COMPLETED)
            for future in finished:
                record(running.pop(future), future.result())
            if stop_requested() and not forwarded:
                forwarded = True
                for child in multiprocessing.active_children():
                    os.kill(child.pid, signal.SIGINT)
            hand_out()
    for cell in queue:  # a stop came before these started
        record(cell, {"status": INTERRUPTED, "message": "not started"})


class RunningCells:
    """The cells being trained, shown beside the grid's bar and refreshed every REFRESH_S: with the local back end
    each one's passes so far (read from its run folder's log), on Ray how many are on the cluster (their folders
    are on the nodes). A grid's bar moves once per finished run, minutes apart; this shows that it is alive."""

    REFRESH_S = 2.0

    def __init__(self, out: Path, local: bool):
        self.out, self.local, self.cells = Path(out), local, {}

    def started(self, cell: Cell) -> None:
        self.cells[cell.key] = cell

    def ended(self, cell: Cell) -> None:
        self.cells.pop(cell.key, None)

    def describe(self) -> str:
        cells = list(self.cells.values())
        if not cells:
            return ""
        if not self.local:
            return f"{len(cells)} run(s) on the cluster"
        parts = []
        for cell in cells:
            passes = passes_logged(cell.run_dir(self.out))
            parts.append(f"{cell.variant} seed {cell.seed}: pass {passes}/{cell.config.train.epochs}")
        return "; ".join(parts)

    @contextlib.contextmanager
    def shown_on(self, bar):
        """Refresh the bar's postfix with `describe()` from a background thread while the block runs."""
        if bar.disable:
            yield
            return
        done = threading.Event()

        def refresh():
            while not done.wait(self.REFRESH_S):
                try:
                    bar.set_postfix_str(self.describe(), refresh=True)
                except (OSError, RuntimeError):  # a log replaced, or a cell ended, while read: next time
                    pass

        thread = threading.Thread(target=refresh, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            bar.set_postfix_str(self.describe())


def cell_states(grid, seeds, out: Path, reuse=(), variants=None, overrides=None) -> list[tuple[Cell, str]]:
    """Each cell's state for `lenet5 grid --dry-run`: its row's status (finished, diverged, failed), 'partial'
    with the passes done when its folder holds a checkpoint, 'to copy' when one of the `reuse` folders holds
    its config and seed finished, else 'to do'."""
    out = Path(out)
    elsewhere = finished_runs(reuse, exclude=out)
    rows, _ = read_rows(out / RUNS_FILE)
    status = {(r["variant"], r["seed"]): r["status"] for r in rows}
    states = []
    for cell in grid_cells(grid, seeds, variants, overrides):
        run_dir = cell.run_dir(out)
        state = status.get(cell.key)
        if state is None or state not in DONE:
            if RunPaths(run_dir).checkpoint.exists():
                passes = passes_logged(run_dir)
                state = f"partial ({passes}/{cell.config.train.epochs} passes)"
            elif state is None:
                source = elsewhere.get((cell.config.digest(), cell.seed))
                state = f"to copy from {source}" if source else "to do"
        states.append((cell, state))
    return states
