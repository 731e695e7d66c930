"""What running a grid on Ray costs over the local process pool, on one machine.

The tiny grid of the Ray tests at a real size: 2 variants (the paper preset and c3=full) x 2 seeds, 1 pass over
the first 500 MNIST training patterns at batch 16, into fresh folders, each pass scored on the validation split (as
many patterns as the test set, which a timing has no reason to read). Timed: the local pool (2 workers), and
the Ray backend on a local cluster of this machine (`ray.init()` in the driver, as `lenet5 grid --backend ray`
without --address does), with the cluster's start-up timed apart. Run it on an otherwise idle machine:

    python -m experiments.ray_overhead --data-root ../shared/data

Writes results/ray_overhead.json (docs/ablation.md, "A grid on a Ray cluster").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from repro.config import run_config
from repro.errors import run_script
from repro.study.grid import run_grid
from repro.study.grids import Grid, Variant

OUT = Path("results/ray_overhead.json")


def tiny_grid() -> Grid:
    def config(**swap):
        return run_config("paper", dict(epochs=1, batch_size=16, train_size=500, evaluate_on="validation", **swap))
    return Grid("ray_overhead", "paper", "the Ray tests' grid on real MNIST",
                (Variant("paper", None, None, config()), Variant("c3=full", "c3", "full", config(c3="full"))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    import ray

    grid, seeds = tiny_grid(), [0, 1]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_grid(grid, seeds, Path(tmp) / "local", 2, 1, args.data_root, progress=False)
        local_s = time.perf_counter() - start
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - start
        start = time.perf_counter()
        run_grid(grid, seeds, Path(tmp) / "ray", 1, 1, args.data_root, progress=False, backend="ray")
        ray_s = time.perf_counter() - start
        ray.shutdown()
    result = {"runs": len(grid.variants) * len(seeds), "cores": os.cpu_count(), "local_pool_s": round(local_s, 1),
              "ray_cluster_start_s": round(init_s, 1), "ray_grid_s": round(ray_s, 1), "ray_version": ray.__version__,
              "command": "python -m experiments.ray_overhead --data-root ../shared/data"}
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
