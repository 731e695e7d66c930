"""The `lenet5` command line: `lenet5 counts`, `lenet5 train`, `lenet5 evaluate`, `lenet5 predict`, `lenet5 grid`,
`lenet5 bench`, `lenet5 verify`, `lenet5 report`, `lenet5 figures` (see `lenet5 -h`).

Every error a user can cause is one line, `lenet5: error: ...`, and an exit code from repro/errors.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

from .config import PRESETS, ConfigError, apply_overrides, config_differences, model_config, parse_overrides, \
    run_config
from .errors import DivergedError, report_errors


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line like every other error (exit code 2, as argparse's)."""

    def error(self, message: str):
        print(f"lenet5: error: {message} (see {self.prog} -h)", file=sys.stderr)
        sys.exit(ConfigError.exit_code)


def thread_count(text: str) -> int:
    """--threads: an integer in 1..cores (more threads than cores only slows training down)."""
    cores = os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= cores:
        raise argparse.ArgumentTypeError(f"{text} is outside 1..{cores} (this machine's cores)")
    return value


def seed_value(text: str) -> int:
    """--seeds: a non-negative integer (a run folder is named seed<N>)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: seeds are integers 0, 1, 2, ...")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="named configuration to start from (default: paper; with --resume, the run's own)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config fields, e.g. --set c3=full epochs=3 (repeatable)")


def cmd_counts(args) -> int:
    from .counts import counts_as_dict, format_table, layer_counts
    from .model import LeNet5

    args.preset = args.preset or "paper"
    config = model_config(args.preset, parse_overrides(args.overrides))
    counts = layer_counts(LeNet5(config))
    if args.json:
        print(json.dumps({"preset": args.preset, "config": dataclasses.asdict(config), **counts_as_dict(counts)}))
    else:
        print(format_table(counts, f"LeNet-5 counts, preset {args.preset!r}: {config}"))
    return 0


def train_config(args):
    """The config `lenet5 train` runs: --preset (default paper) and --set; with --resume, the run folder's own
    config.json, which a --preset or --set must agree with (the first difference is refused by name)."""
    from .run_folder import RunPaths, read_run_config

    overrides = parse_overrides(args.overrides)
    folder = Path(args.out) / f"seed{args.seeds[0]}" if args.out and args.seeds else Path(args.out or ".")
    if not (args.resume and args.out and RunPaths(folder).config.exists()):
        return run_config(args.preset or "paper", overrides)
    saved = read_run_config(folder)
    asked = apply_overrides(saved, overrides) if args.preset is None else run_config(args.preset, overrides)
    if args.seeds:
        asked = dataclasses.replace(asked, train=dataclasses.replace(asked.train, seed=saved.train.seed))
    diff = config_differences(saved, asked)
    if diff:
        key, (was, now) = next(iter(diff.items()))
        raise ConfigError(f"{RunPaths(folder).config} has {key}={was}, but this command asks for {key}={now}; "
                          f"--resume takes the run's own config: drop the --preset/--set that differ, or start a "
                          f"new run in another --out")
    return saved


def resume_command(argv: list[str], out: Path) -> str:
    """The command that continues an interrupted `lenet5 train` or `lenet5 grid`: the same one, with --resume
    and --out for train."""
    argv = list(argv)
    if argv and argv[0] == "train":
        if "--resume" not in argv:
            argv.append("--resume")
        if "--out" not in argv:
            argv += ["--out", str(out)]
    return shlex.join(["lenet5", *argv])


def cmd_train(args) -> int:
    import torch

    from .train import train_seeds

    config = train_config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif config.train.batch_size == 1 and (args.seeds is None or len(args.seeds) == 1):
        # measured (docs/speed.md): one-pattern updates run faster on one thread; run two such jobs on 2 cores
        torch.set_num_threads(1)
    out = Path(args.out or f"runs/{args.preset or 'paper'}-{config.digest()}")
    args.resolved_out = out
    print(f"run folder: {out}", file=sys.stderr)
    seeds = [config.train.seed] if args.seeds is None else args.seeds
    outs = [out] if args.seeds is None else [out / f"seed{s}" for s in args.seeds]
    summaries = train_seeds(config, seeds, outs, args.data_root, args.resume, progress=not args.quiet)
    for summary, run_dir in zip(summaries, outs):
        if summary["status"] != "finished":
            print(f"lenet5: error: {summary['message']}", file=sys.stderr)
            continue
        passes = f"{summary['passes']} pass{'es' if summary['passes'] != 1 else ''}"
        where = "validation" if summary["config"]["train"].get("evaluate_on") == "validation" else "test"
        print(f"finished: {passes}, {where} error {summary['final_test_error_pct']:.2f}% (best "
              f"{summary['best_test_error_pct']:.2f}%), train error {summary['final_train_error_pct']:.2f}%, "
              f"{summary['wall_s']:.0f} s; results in {run_dir}")
    return 0 if all(s["status"] == "finished" for s in summaries) else DivergedError.exit_code


def cmd_bench(args) -> int:
    import torch

    from .bench import main_bench, online_variants

    names = [name for name, _ in online_variants()]
    unknown = [v for v in args.variants or [] if v not in names]
    if unknown:
        raise ConfigError(f"unknown bench variant {unknown[0]!r}; variants: {', '.join(names)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    main_bench(args.data_root, args.quick, args.json, args.variants, args.measures)
    return 0


def cmd_grid(args) -> int:
    from .errors import GRID_RUNS_FAILED
    from .study.grids import DEFAULT_SEEDS, GRIDS

    from .study.grid import cell_states, grid_cells, reuse_sources, run_grid, shrunk

    grid = GRIDS[args.name]
    seeds = args.seeds or list(DEFAULT_SEEDS)
    overrides = parse_overrides(args.overrides)
    if overrides and not args.out:
        raise ConfigError("lenet5 grid --set changes every run of the grid: give its runs their own --out (e.g. "
                          "--out runs/smoke), so that they never mix with the grid's rows in results/")
    out = Path(args.out or f"results/grids/{grid.name}")
    args.resolved_out = out
    chosen = grid.with_baselines(args.variants) if args.variants else None
    if args.dry_run:
        reference = shrunk(grid.reference.config, overrides).flat()
        variants = [v for v in grid.variants if chosen is None or v.name in chosen]
        for v in variants:
            config = shrunk(v.config, overrides)
            diff = {k: val for k, val in config.flat().items() if reference[k] != val}
            print(f"{v.name:24s} {config.digest()}  {diff or reference}")
        states = cell_states(grid, seeds, out, reuse_sources(out), chosen, overrides)
        for cell, state in states:
            print(f"  {cell.variant:24s} seed {cell.seed}: {state}")
        copies = sum(state.startswith("to copy") for _, state in states)
        todo = sum(state not in ("finished", "diverged") for _, state in states) - copies
        print(f"{len(states)} runs: {len(variants)} variants x seeds {seeds}; {copies} to copy from other "
              f"folders, {todo} to run or resume "
              f"in {out}")
        return 0
    workers = args.workers or max(1, (os.cpu_count() or 1) // args.threads)
    rows = run_grid(grid, seeds, out, workers, args.threads, args.data_root, progress=not args.quiet,
                    reuse=reuse_sources(out), backend=args.backend, address=args.address, variants=chosen,
                    overrides=overrides)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "diverged", "failed")}
    print(f"{grid.name}: {counts['finished']} finished, {counts['diverged']} diverged, {counts['failed']} failed "
          f"of {len(grid_cells(grid, seeds, chosen, overrides))}; rows in {out / 'runs.jsonl'}")
    return 0 if counts["failed"] == 0 else GRID_RUNS_FAILED


def cmd_verify(args) -> int:
    from .errors import NOT_REPRODUCED
    from .study.verify import format_report, verify

    records, summary = verify(args.result_dir, args.seeds, args.out, args.data_root, progress=not args.json,
                              threads=args.threads)
    if args.json:
        for line in records + [summary]:
            print(json.dumps(line))
    else:
        print(format_report(args.result_dir, records, summary))
    return NOT_REPRODUCED if summary["verdict"] == "different" else 0


def results_folder(text: str) -> Path:
    """--results of report and figures: a folder of committed results, which must exist (an empty table from a
    mistyped path would look like a result)."""
    from .errors import ConfigError

    path = Path(text)
    if not path.is_dir():
        raise ConfigError(f"--results {text}: no such folder; run from the repository root (results/ is there) "
                          f"or pass --results DIR")
    return path


def cmd_report(args) -> int:
    from .errors import ConfigError
    from .study.docs import generated_pages
    from .study.report import write_reports

    pages = [Path(p) for p in args.docs] if args.docs else generated_pages(Path("."))
    missing = [str(p) for p in pages if not p.is_file()]
    if missing:
        raise ConfigError(f"--docs: no such page {missing[0]}; pass Markdown files that exist (default: README.md, "
                          f"docs/*.md and paper_notes/*.md)")
    for path in write_reports(results_folder(args.results), pages, parser=build_parser()):
        print(path)
    return 0


def cmd_figures(args) -> int:
    from .study.figures import make_all_figures

    for path in make_all_figures(Path(args.out), results_folder(args.results), args.data_root):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="lenet5", description="Paper-faithful LeNet-5 (LeCun et al. 1998).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("counts", help="per-layer trainable parameters and connections beside the paper's")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_counts)

    p = sub.add_parser("train", help="train one run (resumable); writes config, per-pass log, model, predictions")
    _add_config_args(p)
    p.add_argument("--out", default=None, help="run folder (default: runs/<preset>-<config digest>)")
    p.add_argument("--seeds", type=seed_value, nargs="+", default=None,
                   help="train these seeds into OUT/seed<N>/ (one after another, never in lockstep)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with the config saved there")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: $LENET5_DATA or ./data)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch threads, 1..cores (default: 1 for a single online run, else torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-pass lines")
    p.set_defaults(func=cmd_train)

    from .inference import add_parsers

    add_parsers(sub)  # evaluate, predict

    from .bench import MEASURES

    p = sub.add_parser("bench", help="training throughput: every engine against a reference loop, per variant")
    p.add_argument("--quick", action="store_true", help="short measurements, no torch.compile")
    p.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                   help="only these one_at_a_time variants (default: all, e.g. paper pooling=max)")
    p.add_argument("--measures", nargs="+", default=None, choices=MEASURES, metavar="MEASURE",
                   help=f"only these measurements (default: all: {' '.join(MEASURES)})")
    p.add_argument("--json", action="store_true", help="one JSON line per measurement")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: $LENET5_DATA or ./data)")
    p.add_argument("--threads", type=thread_count, default=None, help="torch threads, 1..cores (default: torch's choice)")
    p.set_defaults(func=cmd_bench)

    from .study.grids import DEFAULT_SEEDS, GRIDS

    p = sub.add_parser("grid", help="run an ablation grid (repro/study/grids.py): every variant x seed, resumable")
    p.add_argument("name", choices=list(GRIDS), help="which grid (declared in repro/study/grids.py)")
    p.add_argument("--seeds", type=seed_value, nargs="+", default=None,
                   help=f"seeds per variant (default: {' '.join(map(str, DEFAULT_SEEDS))})")
    p.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                   help="only these variants, each with the baseline it is compared with (default: all; e.g. "
                        "--variants activation=relu --seeds 5 6 7 8 9 adds seeds to one swap)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="parallel runs (default: cores // threads; 1 runs in this process)")
    p.add_argument("--threads", type=thread_count, default=1, help="torch threads per run, 1..cores (default: 1)")
    p.add_argument("--out", default=None, help="grid folder (default: results/grids/NAME)")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: $LENET5_DATA or ./data)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local (default): a process pool on this machine; ray: Ray tasks on a Ray cluster")
    p.add_argument("--address", default=None,
                   help="with --backend ray: the cluster's address, e.g. 10.0.0.5:6379 or auto (default: start a "
                        "local cluster)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the variants, how each differs, and each run's state (finished, partial, to do)")
    from .study.grid import SHRINK_KEYS

    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help=f"shrink every run for a smoke test (needs --out), e.g. --set train_size=2000 epochs=1; "
                        f"keys: {', '.join(SHRINK_KEYS)}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("verify", help="retrain committed runs with their own config: bit-identical, or equivalent "
                                      "within a margin? (docs/reproduction.md)")
    p.add_argument("result_dir", metavar="RESULT_DIR",
                   help="a run folder, or a folder of seed<N>/ runs (e.g. results/paper_final)")
    p.add_argument("--seeds", type=seed_value, nargs="+", default=None,
                   help="only these seeds (default: every finished one)")
    p.add_argument("--out", default=None, help="where the new runs go (default: runs/verify/...); resumable")
    p.add_argument("--json", action="store_true", help="one JSON object per seed, then a summary object")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: $LENET5_DATA or ./data)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch threads per run (default: each committed run's own, from its summary.json)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="tables from committed results: results/*.md and the generated blocks of "
                                      "README.md, docs/ and paper_notes/")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--docs", "--readme", nargs="+", default=None, metavar="PAGE",
                   help="the pages whose marked blocks are refreshed (default: README.md, docs/*.md, "
                        "paper_notes/*.md)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("figures", help="regenerate the figures in figures/ (no training)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--results", default="results", help="committed results to plot (default: results)")
    p.add_argument("--data-root", default=None,
                   help="MNIST, for the misclassified-digit images only (default: $LENET5_DATA or ./data)")
    p.set_defaults(func=cmd_figures)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    return report_errors(lambda: args.func(args), "lenet5",
                         lambda: f"resume with: {resume_command(argv, getattr(args, 'resolved_out', None))}")


if __name__ == "__main__":
    sys.exit(main())
