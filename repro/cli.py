"""The `lenet5` command line: `lenet5 counts`, `lenet5 figures` (see `lenet5 -h`)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .config import MODEL_PRESETS, ConfigError, model_config, parse_overrides
from .data import DataError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="paper", choices=sorted(MODEL_PRESETS),
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


def cmd_figures(args) -> int:
    from .figures import make_static_figures

    for path in make_static_figures(Path(args.out)):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lenet5", description="Paper-faithful LeNet-5 (LeCun et al. 1998).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("counts", help="per-layer trainable parameters and connections beside the paper's")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_counts)

    p = sub.add_parser("figures", help="regenerate the figures in figures/ (no training)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
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
