"""`lenet5` with a test's step hook (step_hooks.py):

    python tests/helpers/hooked_lenet5.py [--exit-at N | --wait-at N [--wait-once FILE] | --poison-at N |
                                           --fail-at N] -- LENET5_ARGS

It also declares the tests' tiny grids (grid_data.py), so that `lenet5 grid tiny ...` runs one.
The hook and the grids are set up at import, not under `__main__`: a grid's spawned pool workers import this file
as their main module, with the same arguments, and so get the same hook and grids. With `--backend ray` the
driver joins the cluster first, so that Ray installs the hook in its workers too."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: `helpers` imports as it does under pytest

from helpers.grid_data import declare_test_grids  # noqa: E402 - after the path it comes from
from helpers.step_hooks import install, join_ray_cluster, parse  # noqa: E402

OPTIONS, LENET5_ARGS = parse(sys.argv[1:])
install(OPTIONS)
declare_test_grids()

if __name__ == "__main__":
    from repro import cli

    ray = argparse.ArgumentParser(add_help=False)
    ray.add_argument("--backend")
    ray.add_argument("--address")
    known, _ = ray.parse_known_args(LENET5_ARGS)
    if known.backend == "ray" and any(v is not None for k, v in vars(OPTIONS).items() if k.endswith("_at")):
        join_ray_cluster(known.address, OPTIONS)
    sys.exit(cli.main(LENET5_ARGS))
