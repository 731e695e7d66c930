"""What the validation screens (experiments/*_screen.py) share: their command line and running a screen as a
resumable grid (repro.study.grid); the table of its committed rows that paper_notes/ quotes is
repro/study/screens.py's."""
from __future__ import annotations

import argparse
from pathlib import Path

from repro.study.grid import run_grid
from repro.study.grids import Grid
from repro.study.screens import screen_table


def screen_parser(doc: str, default_out: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--table", action="store_true", help="print the committed rows as a Markdown table; no runs")
    return parser


def run_screen(grid: Grid, args: argparse.Namespace) -> None:
    """Run the screen's missing runs (or, with --table, only print its table), then one line per run."""
    if args.table:
        print(screen_table(Path(args.out)))
        return
    rows = run_grid(grid, args.seeds, Path(args.out), args.workers, 1, args.data_root)
    for row in sorted(rows, key=lambda r: (r["variant"], r["seed"])):
        print(f"{row['variant']:22s} seed {row['seed']}  {row['status']:9s} validation error "
              f"{row['final_test_error_pct']}%  train error {row['final_train_error_pct']}%")

