"""`lenet5 verify RESULT_DIR`: retrain committed runs with their own config and say whether this machine
reproduces them.

Online training turns float rounding into a trajectory: the same config and seed give the same run bit for bit
only with the same code on the same kind of machine (repro/provenance.py records both); elsewhere a seed's run is
another draw, and only the mean over seeds is expected to agree. So verify answers twice: per seed, whether the
new run is bit-identical to the committed one (its per-pass log, test predictions and, where committed, its
model); over the seeds, the committed and new mean test errors, the paired difference's 95% t-interval, and a
verdict against an equivalence margin of `EQUIVALENCE_MARGIN` points (two one-sided tests, as an interval):

- bit-identical: every seed reproduced exactly;
- equivalent: the interval lies inside +-margin: a reproduction, to within the margin;
- different: the interval lies outside +-margin: this machine's runs disagree with the committed ones;
- undecided: the interval straddles the margin: more seeds are needed to tell.

RESULT_DIR is a run folder (holding summary.json) or a folder of seed<N>/ run folders: a result folder such as
results/paper_final, or one variant of a grid (results/grids/one_at_a_time/paper). The new runs go to `out`
(default runs/verify/...), resumable: an interrupted verify continues where it stopped.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..errors import RunError
from ..run_folder import RunPaths, finished_runs, read_log, read_predictions, read_run_config, read_summary, read_weights
from ..train import train
from .stats import mean_ci

EQUIVALENCE_MARGIN = 0.15  # points of test error: about the seed-to-seed spread of a paper-preset run's mean


def committed_runs(result_dir: Path) -> dict[int, Path]:
    """{seed: run folder} of the finished runs under result_dir (a run folder, or a folder of seed<N>/ ones)."""
    result_dir = Path(result_dir)
    if RunPaths(result_dir).summary.exists():
        found = [(result_dir, read_summary(result_dir))]
    else:
        found = finished_runs(result_dir)
    runs = {read_run_config(run_dir).train.seed: run_dir for run_dir, summary in found
            if summary.get("status") == "finished"}
    if not runs:
        raise RunError(f"{result_dir} holds no finished run (a run folder with summary.json, or seed<N>/ folders "
                       f"of them); point lenet5 verify at a result folder such as results/paper_final")
    return runs


def _summary(run_dir: Path) -> dict | None:
    return read_summary(run_dir) if RunPaths(run_dir).summary.exists() else None


def _log_without_wall_time(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "wall_s"} for entry in read_log(run_dir)]


def compare_runs(committed: Path, new: Path) -> dict:
    """Which of the committed run's outputs the new run reproduces exactly: log, predictions, model."""
    same = {"log": _log_without_wall_time(committed) == _log_without_wall_time(new)}
    same["predictions"] = read_predictions(committed) == read_predictions(new)
    if RunPaths(committed).model.exists():  # grids commit no model.pt
        a, b = (read_weights(RunPaths(run).model) for run in (committed, new))
        same["model"] = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return same


def seed_record(seed: int, committed: Path, new: Path) -> dict:
    """One seed's line of the report."""
    old, fresh = _summary(committed), _summary(new)
    same = compare_runs(committed, new)
    first = next((i + 1 for i, (a, b) in enumerate(zip(_log_without_wall_time(committed),
                                                         _log_without_wall_time(new))) if a != b), None)
    return {"seed": seed, "committed_test_error_pct": old["final_test_error_pct"],
            "test_error_pct": fresh["final_test_error_pct"], "bit_identical": all(same.values()),
            "compared": sorted(same), "first_differing_pass": first,
            "committed_machine": old.get("machine"), "committed_commit": old.get("commit"),
            "machine": fresh.get("machine"), "commit": fresh.get("commit")}


def verdict(records: list[dict], margin: float = EQUIVALENCE_MARGIN) -> dict:
    """The summary over seeds: means, the paired difference (new - committed) and its 95% interval, the verdict."""
    old = [r["committed_test_error_pct"] for r in records]
    new = [r["test_error_pct"] for r in records]
    delta, half = mean_ci([b - a for a, b in zip(old, new)])
    if all(r["bit_identical"] for r in records):
        word = "bit-identical"
    elif math.isnan(half):
        word = "undecided"
    elif -margin <= delta - half and delta + half <= margin:
        word = "equivalent"
    elif delta - half > margin or delta + half < -margin:
        word = "different"
    else:
        word = "undecided"
    return {"summary": True, "seeds": [r["seed"] for r in records], "bit_identical_seeds": sum(r["bit_identical"]
                                                                                               for r in records),
            "committed_mean_test_error_pct": sum(old) / len(old), "mean_test_error_pct": sum(new) / len(new),
            "difference": delta, "difference_half_width": half, "margin": margin, "verdict": word}


def default_out(result_dir: Path) -> Path:
    return Path("runs") / "verify" / "-".join(Path(result_dir).resolve().parts[-2:])


def verify(result_dir, seeds: list[int] | None = None, out=None, data_root=None, progress: bool = True,
           margin: float = EQUIVALENCE_MARGIN, threads: int | None = None) -> tuple[list[dict], dict]:
    """Retrain the committed runs of `result_dir` (those of `seeds`, default all) into `out`, one after another,
    each with the thread count it was trained with (its summary's `threads`; another count rounds differently)
    unless `threads` says otherwise, and compare; returns the per-seed records and the summary."""
    runs = committed_runs(Path(result_dir))
    missing = sorted(set(seeds or []) - set(runs))
    if missing:
        raise RunError(f"{result_dir} has no finished run of seed {missing[0]} (it has {sorted(runs)}); choose "
                       f"--seeds among those")
    out = Path(out) if out else default_out(Path(result_dir))
    records = []
    for seed in seeds or sorted(runs):
        config = read_run_config(runs[seed])
        new = out / f"seed{seed}"
        torch.set_num_threads(threads or _summary(runs[seed]).get("threads") or 1)
        train(config, new, data_root=data_root, resume=True, progress=progress)
        records.append(seed_record(seed, runs[seed], new))
    return records, verdict(records, margin)


def format_report(result_dir, records: list[dict], summary: dict) -> str:
    lines = [f"lenet5 verify {result_dir}: {len(records)} seed(s) retrained with their committed config", "",
             f"{'seed':>4} {'committed %':>11} {'new %':>7} {'bit-identical':>13}  compared; first differing pass"]
    for r in records:
        first = f"; pass {r['first_differing_pass']}" if r["first_differing_pass"] else ""
        lines.append(f"{r['seed']:>4} {r['committed_test_error_pct']:>11.2f} {r['test_error_pct']:>7.2f} "
                     f"{'yes' if r['bit_identical'] else 'no':>13}  {', '.join(r['compared'])}{first}")
    half = summary["difference_half_width"]
    lines += ["", f"mean test error: committed {summary['committed_mean_test_error_pct']:.3f}%, new "
                  f"{summary['mean_test_error_pct']:.3f}%; new - committed {summary['difference']:+.3f} "
                  f"± {half:.3f} points (95% t-interval over seeds)",
              f"verdict: {summary['verdict']} (equivalence margin ±{summary['margin']} points; "
              f"{summary['bit_identical_seeds']} of {len(records)} seeds bit-identical)"]
    machines = {json.dumps(r["committed_machine"], sort_keys=True) for r in records}
    if machines == {"null"}:
        lines.append("the committed runs record no machine or commit (made before runs recorded them)")
    return "\n".join(lines)
