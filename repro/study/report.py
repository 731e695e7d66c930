"""`lenet5 report`: tables built from committed results only (no training).

The reproduction table compares the paper preset's and the modern preset's runs under results/<preset>/seed<N>/
with the paper's figures (Sec. III-C): mean test error over seeds with a 95% t-interval, every seed's value,
and the final training error. It is written to results/reproduction.md and into the pages that show it.
The ablation tables (repro/study/ablation.py), one per grid under results/grids/, and the comparisons of the same
swaps across two grids (repro/study/comparison.py) go to results/ablation.md and into the pages that show them;
the README's headline table puts the paper's two numbers beside ours, the modern preset's and the best network
the ladder measured. Which page shows which block is the pages' business (repro/study/docs.py): every marked
block in README.md and docs/*.md is refreshed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import atomic
from ..run_folder import finished_runs
from .docs import code_blocks, embedded_files, markers, refresh, refresh_pages
from .stats import mean_ci

if TYPE_CHECKING:
    import pandas as pd

# the headline: result folder -> (what it is, the paper's test error % or None); then the ladder's best rung
HEADLINE_GROUPS = {
    "paper_final": ("LeNet-5 as in 1998 (preset `paper`)", 0.95),
    "paper_distortions": ("the same, trained on distorted patterns too (`paper_distortions`)", 0.8),
    "modern": ("the modern preset: the seed blog's BatchNorm/ReLU/max-pool LeNet, Adam, batch 64, 5 passes "
               "(`modern`)", None),
}
HEADLINE_GRID = "ladder"  # the best network measured: the rung of this grid with the lowest mean test error
HEADLINE_MIN_SEEDS = 5  # ... among those with at least this many seeds, none of which failed to train

# Fig. 6: both presets on the first N training patterns (train_size=N); N = 60,000 are the presets' own groups.
# The paper states its error only for 60,000 patterns (0.95% without, 0.8% with distortions; Sec. III-C).
FIG6_SIZES = (15_000, 30_000, 60_000)
FIG6_PRESETS = {"paper": "paper_final", "paper_distortions": "paper_distortions"}  # preset: its 60,000 folder


def fig6_folder(preset: str, size: int) -> str:
    return FIG6_PRESETS[preset] if size == 60_000 else f"{preset}_n{size}"


# results/<folder>/seed<N>/ groups: (folder, label, the command that made each run, the paper's test / train error)
RESULT_GROUPS = [
    ("paper_final", "paper", "lenet5 train --preset paper --seeds 0 1 2 3 4 --threads 1 --out results/paper_final",
     (0.95, 0.35)),
    ("paper_distortions", "paper_distortions",
     "lenet5 train --preset paper_distortions --seeds 0 1 2 3 4 --threads 1 --out results/paper_distortions",
     (0.8, None)),
    # the paper preset before its schedule was chosen again (lr 2e-5, h per pass only; paper_notes/sdlm.md)
    ("paper_compiled", "paper, lr=2e-5, h per pass",
     "lenet5 train --preset paper --set lr=0.00002 hessian_every=0 --seeds 0 1 2 --threads 1 "
     "--out results/paper_compiled", (0.95, 0.35)),
    ("modern", "modern", "lenet5 train --preset modern --set engine=reference --seeds 0 1 2 3 4 --threads 1 "
     "--out results/modern", None),
    # splits SDLM's lead over Adam in the leave_one_in grid between optimizer and schedule (paper_notes/ablation.md)
    ("modern_adam_paper_schedule", "modern, lr_schedule=paper",
     "lenet5 train --preset modern --set lr_schedule=paper engine=reference --seeds 0 1 2 3 4 --threads 1 "
     "--out results/modern_adam_paper_schedule", None),
] + [(fig6_folder(preset, size), f"{preset}, first {size:,} patterns",
      f"lenet5 train --preset {preset} --set train_size={size} --seeds 0 1 2 --threads 1 "
      f"--out results/{fig6_folder(preset, size)}", None)
     for preset in FIG6_PRESETS for size in FIG6_SIZES[:-1]]

README_BEGIN, README_END = markers("reproduction-table")


def finished_summaries(results: Path, folder: str) -> list[dict]:
    return [summary for _, summary in finished_runs(Path(results) / folder)]


def reproduction_table(results: Path) -> str:
    from .ablation import plus_minus

    rows = ["| preset | seeds | test error % (mean ± 95% CI) | per seed | train error % | paper test / train % "
            "| passes | command |", "|---|---|---|---|---|---|---|---|"]
    for folder, label, command, paper in RESULT_GROUPS:
        runs = finished_summaries(results, folder)
        if not runs:
            continue
        tests = [r["final_test_error_pct"] for r in runs]
        trains = [r["final_train_error_pct"] for r in runs]
        seeds = [r["config"]["train"]["seed"] for r in runs]
        paper_text = " / ".join("–" if v is None else f"{v}" for v in paper) if paper else "–"
        rows.append(f"| {label} | {', '.join(map(str, seeds))} | {plus_minus(*mean_ci(tests))} | "
                    f"{', '.join(f'{t:.2f}' for t in tests)} | {plus_minus(*mean_ci(trains))} | {paper_text} | "
                    f"{runs[0]['passes']} | `{command}` |")
    return "\n".join(rows)


def ablation_markers(grid_name: str) -> tuple[str, str]:
    return markers(f"ablation-table:{grid_name}")


def refresh_readme(readme: Path, table: str, begin: str = README_BEGIN, end: str = README_END) -> bool:
    """Replace the text between a page's markers (default: the reproduction table's); False if it lacks them."""
    return refresh(readme, table, begin, end)


def best_rung(results: Path, grid_name: str = HEADLINE_GRID) -> dict | None:
    """The grid's variant with the lowest mean test error among those with HEADLINE_MIN_SEEDS seeds or more and
    no seed that failed to train (a rung that collapses on some seeds is not a recipe to recommend)."""
    from .ablation import grid_table
    from .grid import RUNS_FILE
    from .grids import GRIDS

    grid_dir = Path(results) / "grids" / grid_name
    if not (grid_dir / RUNS_FILE).exists():
        return None
    table = grid_table(grid_dir, GRIDS[grid_name])
    ok = table[(table["seeds"].map(len) >= HEADLINE_MIN_SEEDS) & (table["not_trained"].map(len) == 0)]
    if ok.empty:
        return None
    return ok.loc[ok["test_mean"].astype(float).idxmin()].to_dict()


def programme_status(results: Path) -> str:
    """How far the 20-seed programme is (repro/study/grids.py): per pure swap of its grids, the seeds finished
    (trained, collapsed or diverged: a seed that ran counts), the programme's own seeds among them, those paired
    with its baseline's (made alike: ablation.MAKING), and the commands that continue it: the seeds no variant has
    begun, and each seed begun but unfinished, on the code and kind of machine that began it."""
    from .ablation import MAKING, grid_rows, paired_seeds
    from .grids import GRIDS, PROGRAMME_GRIDS, PROGRAMME_SEEDS, PROGRAMME_TARGET

    lines = ["| grid | variant | seeds run (of %d) | of which the programme's (%d-%d) | paired with its baseline |"
             % (PROGRAMME_TARGET, PROGRAMME_SEEDS[0], PROGRAMME_SEEDS[-1]), "|---|---|---|---|---|"]
    commands, unfinished = [], []
    for name in PROGRAMME_GRIDS:
        grid = GRIDS[name]
        rows = grid_rows(Path(results) / "grids" / name) if (Path(results) / "grids" / name).exists() else []
        ran = [r for r in rows if r["status"] in ("finished", "diverged")]
        pure = [v for v in grid.variants if not v.own_lr]
        by_variant = {v.name: {r["seed"]: r for r in ran if r["variant"] == v.name} for v in pure}
        for v in pure:
            seeds = sorted(by_variant[v.name])
            new = [s for s in seeds if s in PROGRAMME_SEEDS]
            base = v.baseline or grid.reference.name
            paired = ("–" if v.name == grid.reference.name
                      else str(len(paired_seeds(by_variant.get(base, {}), by_variant[v.name])[0])))
            lines.append(f"| `{name}` | `{v.name}` | {len(seeds)} | {len(new)} | {paired} |")
        begun = {s: [r for r in ran if r["seed"] == s and r["variant"] in by_variant] for s in PROGRAMME_SEEDS}
        fresh = [s for s, made in begun.items() if not made]
        for seed, made in begun.items():
            if made and len({r["variant"] for r in made}) < len(pure):
                makings = {tuple(r.get(k) for k in MAKING) for r in made}
                where = "; ".join(f"{(c or 'unknown')[:7]} on {cpu} ({cap})" for c, cpu, cap in sorted(makings, key=str))
                unfinished.append(f"`{name}` seed {seed} ({where})")
        variants = " ".join(v.name for v in pure)
        if fresh:
            commands.append(f"`lenet5 grid {name} --seeds {' '.join(map(str, fresh))} --variants {variants} "
                            f"--workers 1 --threads 1`")
    # of the runs that ended (a summary.json beside): what a clean clone holds, whatever is training here
    kept = sorted(p for p in Path(results).rglob("*.npz") if (p.parent / "summary.json").exists())
    text = "\n".join(lines) + (f"\n\nThe runs' kept outputs (test_outputs.npz, nondigit_outputs.npz) under results/ take "
                               f"{sum(p.stat().st_size for p in kept) / 1e6:.1f} MB in {len(kept)} files.")
    if commands:
        text += "\n\nContinue it with the seeds no variant has begun (finished runs are skipped): " + "; ".join(commands) + "."
    if unfinished:
        text += ("\n\nBegun, not finished: " + ", ".join(unfinished) + ". A Δ pairs a seed's runs only where the "
                 "same code on the same kind of machine made them, so each is finished there: on that kind of "
                 "machine, check its commit out beside the repository (`git worktree add --detach ../lenet5-COMMIT "
                 "COMMIT`) and run its command above with `--seeds` of it, prefixed with "
                 "`PYTHONPATH=../lenet5-COMMIT`.")
    return text


# files a run folder holds that are never committed (.gitignore): the resumable checkpoint, a grid run's network
UNCOMMITTED = ("checkpoint.pt", "model.pt")


def programme_size(results: Path) -> str:
    """How much the 20-seed programme's finished runs (PROGRAMME_SEEDS of PROGRAMME_GRIDS) add to the repository:
    the bytes of their committed files (logs, predictions, kept outputs; a copied run counts again, as a copy in
    the working tree), for the README."""
    from .grids import PROGRAMME_GRIDS, PROGRAMME_SEEDS

    folders = [d for name in PROGRAMME_GRIDS for d in sorted((Path(results) / "grids" / name).glob("*/seed*"))
               if d.name[4:].isdigit() and int(d.name[4:]) in PROGRAMME_SEEDS and (d / "summary.json").exists()]
    size = sum(f.stat().st_size for d in folders for f in d.iterdir()
               if f.is_file() and f.name not in UNCOMMITTED and not f.name.endswith(".tmp"))
    if not folders:
        return "The 20-seed programme has no finished run yet."
    return (f"The 20-seed programme's {len(folders)} finished runs so far (seeds {PROGRAMME_SEEDS[0]}-"
            f"{PROGRAMME_SEEDS[-1]} of {' and '.join(f'`{g}`' for g in PROGRAMME_GRIDS)}) have added "
            f"{size / 1e6:.1f} MB of files to the repository, {size / len(folders) / 1e3:.0f} kB a run: its log, "
            f"predictions and kept outputs, no network (git compresses the logs and predictions further).")


def headline_table(results: Path) -> str:
    """The README's first table: the paper's test errors, ours, the modern preset's and the best network the
    ladder measured, each with its seeds, its 95% interval and the command that made it."""
    from .ablation import plus_minus

    commands = {folder: command for folder, _, command, _ in RESULT_GROUPS}
    rows = ["| network | the paper (Sec. III-C) | ours: test error % (mean ± 95% CI) | seeds | made by |",
            "|---|---|---|---|---|"]
    for folder, (label, paper) in HEADLINE_GROUPS.items():
        runs = finished_summaries(results, folder)
        if runs:
            tests = [r["final_test_error_pct"] for r in runs]
            rows.append(f"| {label} | {'–' if paper is None else f'{paper}%'} | {plus_minus(*mean_ci(tests))}% | "
                        f"{len(tests)} | `{commands[folder]}` |")
    best = best_rung(results)
    if best is not None:
        rows.append(f"| the best network measured: the `{HEADLINE_GRID}` rung `{best['variant']}` (a modern "
                    f"architecture trained the 1998 way; [docs/ablation.md](docs/ablation.md)) | – | "
                    f"{plus_minus(best['test_mean'], best['test_half'])}% | {len(best['seeds'])} | "
                    f"`lenet5 grid {HEADLINE_GRID} --variants {best['variant']}` |")
    return "\n".join(rows)


def grid_frames(results: Path) -> dict[str, "pd.DataFrame"]:
    """{grid name: its ablation table (repro/study/ablation.py, `grid_table`)} for every declared grid with a runs
    file under results/grids/: read once, then written as Markdown and judged (repro/study/verdicts.py)."""
    from .ablation import grid_table
    from .grid import RUNS_FILE
    from .grids import GRIDS

    return {name: grid_table(results / "grids" / name, grid) for name, grid in GRIDS.items()
            if (results / "grids" / name / RUNS_FILE).exists()}


def ablation_tables(frames: dict[str, "pd.DataFrame"]) -> dict[str, str]:
    """{grid name: Markdown table} of `grid_frames`."""
    from .ablation import table_markdown
    from .grids import GRIDS

    return {name: table_markdown(frame, GRIDS[name].reference.name) for name, frame in frames.items()}


def ablation_report(tables: dict[str, str], results: Path,
                    verdicts: dict[str, tuple[str, str]] | None = None) -> str:
    """results/ablation.md: each grid's protocol, cost and table, then its verdicts (repro/study/verdicts.py)."""
    from .grids import GRIDS, PROTOCOLS

    from .ablation import grid_rows

    parts = ["# Ablation grids\n",
             "Made by `lenet5 report` from results/grids/NAME/runs.jsonl and each run's test predictions. Grids "
             "and protocols: repro/study/grids.py.\n",
             "Δ is variant minus its baseline (the grid's reference; the previous rung on the ladder; for a variant "
             "at its own step size, the reference at its own) in percentage points, paired by seed, with its 95% "
             "t-interval and the paired t-test's p-value. McNemar: b = test images the baseline gets right and the "
             "variant wrong, c = the reverse, pooled over seeds; p from the exact binomial test. In brackets: the "
             "p-values Holm-adjusted over all comparisons of the grid. Not averaged: runs that diverged (the loss "
             "became non-finite), collapsed (finished at chance: training error of 80% or more, e.g. every ReLU "
             "dead) or failed; they are named in the last column and left out of every mean and Δ.\n"]
    for name, table in tables.items():
        grid = GRIDS[name]
        protocol = PROTOCOLS[grid.protocol]
        rows = grid_rows(results / "grids" / name)
        trained = [r for r in rows if not r.get("reused_from")]
        recorded = f"{len(rows)} run{'' if len(rows) == 1 else 's'} recorded"
        copied = f"{len(rows) - len(trained)} of them copied" if len(rows) > len(trained) else "none copied"
        minutes = sum((r.get("wall_s") or 0) * (r.get("threads") or 1) for r in trained) / 60
        settings = (", ".join(f"{k}={v}" for k, v in protocol.fields.items()) + "; "
                    + "; ".join(f"{opt}: " + ", ".join(f"{k}={v}" for k, v in s.items())
                                for opt, s in protocol.optimizer_settings.items())
                    + "; SDLM's eta by loss: "
                    + ", ".join(f"{loss}={eta:g}" for loss, eta in protocol.sdlm_eta_by_loss.items())
                    + "".join(f"; BatchNorm: {k}={v}" for k, v in protocol.batchnorm_fields.items()))
        parts.append(f"## {name}: {grid.description}\n\nProtocol `{grid.protocol}` ({protocol.description}): "
                     f"{settings}.\n\nRemake the runs: `lenet5 grid {name}` ({recorded}, {copied} from another "
                     f"grid or result folder with the same config and seed; {minutes:.0f} core-minutes of "
                     f"training)\n\n{table}\n")
        if name in (verdicts or {}):
            parts.append(f"Which effects are resolved (repro/study/verdicts.py):\n\n{verdicts[name][0]}\n\n"
                         f"{verdicts[name][1]}\n")
    return "\n".join(parts)


def reports(results: Path, parser=None) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Everything `lenet5 report` writes, built from the committed results and the code without writing
    anything: {file name under results/: text} and {(begin, end) markers: the block between them}."""
    results = Path(results)
    table = reproduction_table(results)
    files = {"reproduction.md": "# Reproduction: ours vs the paper (Sec. III-C)\n\nMade by `lenet5 report` from "
                                "results/<preset>/seed<N>/summary.json.\n\n" + table + "\n"}
    from .comparison import COMPARISONS, comparison_markers, comparison_tables
    from .verdicts import verdict_blocks
    frames = grid_frames(results)
    tables, comparisons, verdicts = ablation_tables(frames), comparison_tables(results), verdict_blocks(results, frames)
    if tables:
        text = ablation_report(tables, results, verdicts)
        if comparisons:
            text += "\n# The same swaps in two grids\n\n" + "".join(
                f"## {c.first} against {c.second}\n\n{comparisons[c.name]}\n\n" for c in COMPARISONS
                if c.name in comparisons)
        files["ablation.md"] = text
    from .rejection import rejection_frames, rejection_report, results_markdown as rejection_results, second_axis
    rejection = rejection_frames(results)
    text = rejection_report(results, rejection)
    if text:
        files["rejection.md"] = text
    from .grids import GRIDS
    from .mutation import mutation_table
    blocks = {(README_BEGIN, README_END): table, markers("headline"): headline_table(results),
              markers("mutation-results"): mutation_table(results),
              markers("programme-status"): programme_status(results),
              markers("programme-size"): programme_size(results),
              markers("rejection-results"): rejection_results(results)}
    # a grid whose runs are gone gets a line saying so, never its old table
    blocks.update({ablation_markers(name): tables.get(name, f"_No finished runs yet: `lenet5 grid {name}`._")
                   for name in GRIDS})
    for name in GRIDS:  # each swap's paired Δ in rejection and the non-digit AUROCs, where runs kept outputs
        blocks[markers(f"second-axis:{name}")] = (second_axis(rejection[name], GRIDS[name].reference.name)
                                                  if name in rejection else
                                                  f"_No run of `{name}` has kept outputs yet._")
    for name in GRIDS:  # a grid's verdicts, and their summary alone for a page that quotes only that
        table_text, summary = verdicts.get(name, (f"_No finished runs yet: `lenet5 grid {name}`._",) * 2)
        blocks[markers(f"verdicts:{name}")] = f"{table_text}\n\n{summary}" if name in verdicts else table_text
        blocks[markers(f"verdict-summary:{name}")] = summary
    blocks.update({comparison_markers(c.name): comparisons.get(
        c.name, f"_Not both grids have runs yet: `lenet5 grid {c.first}`, `lenet5 grid {c.second}`._")
        for c in COMPARISONS})
    blocks.update(embedded_files(results))
    blocks.update(code_blocks(parser))
    return files, blocks


def write_reports(results: Path, pages: Path | list[Path], parser=None) -> list[Path]:
    """Write results/reproduction.md, ablation.md and rejection.md, and refresh every generated block in `pages`
    (a page or a list of them: README.md and docs/*.md by default on the command line; with `parser`, the
    `lenet5` command's, its reference of every command too); the files written or refreshed, in order."""
    results = Path(results)
    pages = [Path(pages)] if isinstance(pages, (str, Path)) else [Path(p) for p in pages]
    files, blocks = reports(results, parser)
    written = []
    for name, text in files.items():
        atomic.write_text(results / name, text)
        written.append(results / name)
    return written + refresh_pages([p for p in pages if p.exists()], blocks)
