"""How BatchNorm trained at batch 1 should evaluate: running statistics or each pattern's own (`bn_eval`).

`bn_eval` changes what a run measures, not how it trains (SDLM's curvature pass always uses the running
statistics; tests/test_bn_eval.py), so one trained network gives both numbers. This screen takes the networks
of the `one_at_a_time` step-size screen's norm=batch rows (paper protocol, 4 passes, trained on the first 50,000
training patterns, seed 0, one per step size) and measures each on the validation split (the last 10,000
training patterns; the test set is never read) with both statistics:

    python -m experiments.bn_eval_screen --data-root ../shared/data

The networks (model.pt) are not committed: where one is missing (a fresh clone), it is trained again from its
run folder's config.json into a temporary folder (about 4 core-minutes each; on the same machine the same
network, bit for bit).

Writes results/screens/bn_eval.jsonl, one row per (step size, bn_eval); paper_notes/normalisation.md reads it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from repro import atomic
from repro.components import EVALUATION_STATISTICS, set_evaluation_statistics
from repro.config import RunConfig
from repro.errors import run_script
from repro.inference import evaluate_model, load_model
from repro.study.grid import read_rows
from repro.run_folder import RunPaths, read_run_config
from repro.train import train

SCREEN = Path("results/screens/step_sizes/one_at_a_time_p4")
OUT = Path("results/screens/bn_eval.jsonl")


def network(run_dir: Path, data_root) -> tuple[torch.nn.Module, RunConfig]:
    """The run's trained network: its model.pt, or where that is missing, the run trained again from its config."""
    if RunPaths(run_dir).model.exists():
        return load_model(run_dir)
    print(f"{run_dir}/model.pt is not here (not committed): training it again from its config.json")
    with tempfile.TemporaryDirectory() as tmp:
        train(read_run_config(run_dir), Path(tmp) / "run", data_root=data_root, progress=False)
        return load_model(Path(tmp) / "run")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--screen", type=Path, default=SCREEN, help="a step-size screen folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [r for r in read_rows(args.screen / "runs.jsonl")[0]
            if r["variant"].split("@lr=")[0] == "norm=batch" and r["status"] == "finished"]
    if not rows:
        raise SystemExit(f"{args.screen}/runs.jsonl holds no finished norm=batch run; run "
                         f"`python -m experiments.step_size_screen one_at_a_time` first")
    out = []
    for row in sorted(rows, key=lambda r: r["lr"]):
        model, config = network(args.screen / row["run_dir"], args.data_root)
        assert config.train.evaluate_on == "validation", row["run_dir"]  # never the test set
        for bn_eval in EVALUATION_STATISTICS:
            result = evaluate_model(set_evaluation_statistics(model, bn_eval), config, "validation", args.data_root)
            out.append({"run_dir": str(args.screen / row["run_dir"]), "lr": row["lr"], "passes": row["passes"],
                        "trained_with_bn_eval": config.train.bn_eval, "bn_eval": bn_eval,
                        "validation_error_pct": round(result["error_pct"], 4), "patterns": result["patterns"]})
            print(f"lr {row['lr']:g}: bn_eval={bn_eval:<12} validation error {result['error_pct']:.2f}%")
    atomic.write_text(args.out, "".join(json.dumps(r) + "\n" for r in out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_script(main))
