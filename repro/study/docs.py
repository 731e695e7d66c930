"""The generated blocks of the README and docs/: what `lenet5 report` writes into them, and where.

A generated block lies between two markers, `<!-- NAME:begin (lenet5 report) -->` and `<!-- NAME:end -->`, in
whichever page shows it (README.md or a page of docs/); `lenet5 report` rewrites the text between them from
committed files and the code, so a page can move a table without the code knowing. Besides the result tables
(repro/study/report.py, ablation.py, comparison.py) the blocks here are made from the code itself (every
command's flags, the exit codes) and from committed reports (the verify report, the whole-run bench).
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Iterable

from .. import atomic

HELP_WIDTH = 110  # the width argparse wraps to in docs/cli.md (not the terminal's, so the page is the same everywhere)
DOCS_FOLDER = "docs"
NOTES_FOLDER = "paper_notes"  # the departures from the paper and what we measured about them

# results file -> the marked block that shows it verbatim (indented as a code block)
EMBEDDED_FILES = {
    "verify-paper-final": "verify_paper_final.txt",
    "bench-whole-run": "bench_whole_run_threads1.txt",
    "profile-curvature": "profile_curvature_threads1.txt",
}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin (lenet5 report) -->", f"<!-- {name}:end -->"


def documents(root: Path) -> list[Path]:
    """The pages that may hold generated blocks: root/README.md and root/docs/*.md (those that exist)."""
    root = Path(root)
    return [p for p in [root / "README.md", *sorted((root / DOCS_FOLDER).glob("*.md"))] if p.exists()]


def generated_pages(root: Path) -> list[Path]:
    """The pages `lenet5 report` refreshes by default: the `documents` and root/paper_notes/*.md, whose notes quote
    measured numbers from the same blocks."""
    return documents(root) + sorted((Path(root) / NOTES_FOLDER).glob("*.md"))


def refresh(page: Path, text: str, begin: str, end: str) -> bool:
    """Replace the text between `begin` and `end` in `page`; False if the page lacks the markers (it is left as
    it is). The page is rewritten only when the text changed, atomically."""
    content = page.read_text()
    if begin not in content or end not in content:
        return False
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{begin}\n{text}\n{end}{tail}"
    if new != content:
        atomic.write_text(page, new)
    return True


def refresh_pages(pages: Iterable[Path], blocks: dict[tuple[str, str], str]) -> list[Path]:
    """Write each block into every page that has its markers; the pages that hold any block, in order."""
    held = []
    for page in pages:
        found = [refresh(page, text, begin, end) for (begin, end), text in blocks.items()]
        if any(found):
            held.append(page)
    return held


def indented(text: str) -> str:
    """`text` as a Markdown code block (four spaces), trailing blank lines dropped."""
    return "\n".join(f"    {line}" if line else "" for line in text.rstrip("\n").splitlines())


def embedded_files(results: Path) -> dict[tuple[str, str], str]:
    """The committed reports shown verbatim (EMBEDDED_FILES), for those that exist."""
    return {markers(name): indented((Path(results) / file).read_text())
            for name, file in EMBEDDED_FILES.items() if (Path(results) / file).exists()}


def command_reference(parser: argparse.ArgumentParser) -> str:
    """Every command's --help (`parser`: the `lenet5` parser, repro.cli.build_parser()), as docs/cli.md shows it:
    one sub-heading and code block per command."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = []
    for name, command in sub.choices.items():
        command.formatter_class = functools.partial(argparse.HelpFormatter, width=HELP_WIDTH)
        parts.append(f"### lenet5 {name}\n\n{indented(command.format_help())}\n")
    return "\n".join(parts).rstrip("\n")


def code_blocks(parser: argparse.ArgumentParser | None = None) -> dict[tuple[str, str], str]:
    """The blocks made from the code alone: the exit codes, and with the `lenet5` parser every command's flags."""
    from ..errors import exit_code_table

    blocks = {markers("exit-codes"): exit_code_table()}
    if parser is not None:
        blocks[markers("command-reference")] = command_reference(parser)
    return blocks
