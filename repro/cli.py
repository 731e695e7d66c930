"""The `lenet5` command line: `lenet5 counts`, `lenet5 train`, `lenet5 grid`, `lenet5 bench`, `lenet5 report`,
`lenet5 figures` (see `lenet5 -h`)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .config import PRESETS, ConfigError, model_config, parse_overrides, run_config
from .data import DataError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS),
                   help="named configuration to start from (default: paper)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, e.g. --set c3=full (repeatable)")


def cmd_counts(args) -> int:
    from .counts import counts_as_dict, format_table, layer_counts
    from .model import LeNet5

    config = model_config(args.preset, parse_overrides(args.overrides))
    counts = layer_counts(LeNet5(config))
    if args.json:
        print(json.dumps({"preset": args.preset, "config": dataclasses.asdict(config), **counts_as_dict(counts)}))
    else:
        print(format_table(counts, f"LeNet-5 counts, preset {args.preset!r}: {config}"))
    return 0


def cmd_train(args) -> int:
    import torch

    from .train import RunError, train, train_seeds

    config = run_config(args.preset, parse_overrides(args.overrides))
    if args.threads:
        torch.set_num_threads(args.threads)
    elif config.train.batch_size == 1 and (args.seeds is None or len(args.seeds) == 1):
        # measured (README, Speed): one-pattern updates run faster on one thread; run two such jobs on 2 cores
        torch.set_num_threads(1)
    out = Path(args.out or f"runs/{args.preset}-{config.digest()}")
    print(f"run folder: {out}", file=sys.stderr)
    try:
        if args.seeds is None:
            summaries, outs = [train(config, out, args.data_root, args.resume, progress=not args.quiet)], [out]
        else:
            outs = [out / f"seed{s}" for s in args.seeds]
            summaries = train_seeds(config, args.seeds, outs, args.data_root, args.resume, progress=not args.quiet)
    except RunError as exc:
        print(f"lenet5: error: {exc}", file=sys.stderr)
        return 3
    for summary, run_dir in zip(summaries, outs):
        if summary["status"] != "finished":
            print(f"lenet5: error: {summary['message']}", file=sys.stderr)
            continue
        print(f"finished: {summary['passes']} passes, test error {summary['final_test_error_pct']:.2f}% (best "
              f"{summary['best_test_error_pct']:.2f}%), train error {summary['final_train_error_pct']:.2f}%, "
              f"{summary['wall_s']:.0f} s; results in {run_dir}")
    return 0 if all(s["status"] == "finished" for s in summaries) else 3


def cmd_bench(args) -> int:
    import torch

    from .bench import main_bench, online_variants

    names = [name for name, _ in online_variants()]
    unknown = [v for v in args.variants or [] if v not in names]
    if unknown:
        raise ConfigError(f"unknown bench variant {unknown[0]!r}; variants: {', '.join(names)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    main_bench(args.data_root, args.quick, args.json, args.variants)
    return 0


def cmd_grid(args) -> int:
    import os

    from .study.grids import DEFAULT_SEEDS, GRIDS

    from .study.grid import grid_cells, run_grid

    grid = GRIDS[args.name]
    seeds = args.seeds or list(DEFAULT_SEEDS)
    if args.dry_run:
        reference = grid.reference.config.flat()
        for v in grid.variants:
            diff = {k: val for k, val in v.config.flat().items() if reference[k] != val}
            print(f"{v.name:24s} {v.config.digest()}  {diff or reference}")
        print(f"{len(grid_cells(grid, seeds))} runs: {len(grid.variants)} variants x seeds {seeds}")
        return 0
    workers = args.workers or max(1, (os.cpu_count() or 1) // args.threads)
    out = Path(args.out or f"results/grids/{grid.name}")
    rows = run_grid(grid, seeds, out, workers, args.threads, args.data_root, progress=not args.quiet)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "diverged", "failed")}
    print(f"{grid.name}: {counts['finished']} finished, {counts['diverged']} diverged, {counts['failed']} failed "
          f"of {len(grid_cells(grid, seeds))}; rows in {out / 'runs.jsonl'}")
    return 0 if counts["failed"] == 0 else 3


def cmd_report(args) -> int:
    from .study.report import write_reports

    for path in write_reports(Path(args.results), Path(args.readme)):
        print(path)
    return 0


def cmd_figures(args) -> int:
    from .study.figures import make_all_figures

    for path in make_all_figures(Path(args.out), Path(args.results), args.data_root):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lenet5", description="Paper-faithful LeNet-5 (LeCun et al. 1998).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("counts", help="per-layer trainable parameters and connections beside the paper's")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_counts)

    p = sub.add_parser("train", help="train one run (resumable); writes config, per-pass log, model, predictions")
    _add_config_args(p)
    p.add_argument("--out", default=None, help="run folder (default: runs/<preset>-<config digest>)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train these seeds into OUT/seed<N>/ (in lockstep with the online engines)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: $LENET5_DATA or ./data)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (default: 1 for a single online run, else torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-pass lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="training throughput: every engine against a reference loop, per variant")
    p.add_argument("--quick", action="store_true", help="short measurements, no torch.compile")
    p.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                   help="only these one_at_a_time variants (default: all, e.g. paper pooling=max)")
    p.add_argument("--json", action="store_true", help="one JSON line per measurement")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: $LENET5_DATA or ./data)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.set_defaults(func=cmd_bench)

    from .study.grids import GRIDS

    p = sub.add_parser("grid", help="run an ablation grid (repro/study/grids.py): every variant x seed, resumable")
    p.add_argument("name", choices=list(GRIDS), help="which grid (declared in repro/study/grids.py)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds per variant (default: 0 1 2)")
    p.add_argument("--workers", type=int, default=0,
                   help="parallel runs (default: cores // threads; 1 runs in this process)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1)")
    p.add_argument("--out", default=None, help="grid folder (default: results/grids/NAME)")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: $LENET5_DATA or ./data)")
    p.add_argument("--dry-run", action="store_true", help="list the variants and how each differs; train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("report", help="tables from committed results: results/reproduction.md and the README's")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--readme", default="README.md", help="README whose marked table is refreshed")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("figures", help="regenerate the figures in figures/ (no training)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--results", default="results", help="committed results to plot (default: results)")
    p.add_argument("--data-root", default=None,
                   help="MNIST, for the misclassified-digit images only (default: $LENET5_DATA or ./data)")
    p.set_defaults(func=cmd_figures)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError) as exc:
        print(f"lenet5: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
