"""The README and docs/ as a reader uses them: every link leads somewhere, and every command they present as
runnable runs.

The convention the pages follow (and these tests hold them to): a command a reader may paste lies in a ```sh
block; a block that takes minutes or hours (training, a grid, the bench) or that rewrites committed files is
preceded by `<!-- long-running -->` and is not run here; usage lines and transcripts lie in ```text blocks; an
indented code block shows output, never a command to run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from repro.study.docs import documents, generated_pages

ROOT = Path(__file__).resolve().parents[1]
PAGES = documents(ROOT)
LONG_RUNNING = "<!-- long-running -->"
COMMAND_START = re.compile(r"^(\$ )?(lenet5|python3?|pip|setsid|torchrun) ")
GENERATED = re.compile(r"<!-- ([\w:-]+):begin \(lenet5 report\) -->.*?<!-- \1:end -->", re.S)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The page without its code (fenced blocks, inline code spans), where a link is a link."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen, out = {}, set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose(page.read_text()))


def test_the_pages_exist_and_the_readme_reaches_each():
    names = {page_id(p) for p in PAGES}
    for page in ["reproduction", "ablation", "fashion-mnist", "speed", "cli", "using-a-model", "troubleshooting",
                 "model_card", "figures", "layout"]:
        assert f"docs/{page}.md" in names
    reached = {(ROOT / target.split("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert {p.resolve() for p in PAGES if p.parent.name == "docs"} <= reached, "link every docs/ page from the README"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_link_resolves_to_a_file_or_an_anchor(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:: not followed offline
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with that anchor in {file.name}")
    assert not broken, f"{page_id(page)}: " + "; ".join(broken)


def test_slugs_follow_github():
    assert slug("one_at_a_time: one modern component at the paper's protocol") == \
        "one_at_a_time-one-modern-component-at-the-papers-protocol"
    assert slug("Every command's flags") == "every-commands-flags"
    assert slug("The `lenet5` command") == "the-lenet5-command"


def command_blocks(page: Path) -> list[tuple[bool, list[str]]]:
    """Each ```sh block of the page: (marked long-running, its command lines)."""
    text = page.read_text()
    out = []
    for match in FENCE.finditer(text):
        if match.group(1) != "sh":
            continue
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        lines = [line for line in match.group(2).splitlines() if line.strip() and not line.startswith("#")]
        out.append((before.strip() == LONG_RUNNING, lines))
    return out


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_commands_lie_in_sh_blocks_only(page):
    """An indented block or an untyped fence with a command in it would be a runnable command the tests skip."""
    text = GENERATED.sub("", page.read_text())  # generated blocks hold output, such as verify's report
    stray = [m.group(2).splitlines()[0] for m in FENCE.finditer(text) if m.group(1) == ""
             and any(COMMAND_START.match(line) for line in m.group(2).splitlines())]
    indented = FENCE.sub("", text)
    stray += [line.strip() for line in indented.splitlines()
              if line.startswith("    ") and COMMAND_START.match(line.strip())]
    assert not stray, f"{page_id(page)}: put these in a ```sh block (or ```text if not meant to run): {stray}"


def runnable() -> list[tuple[str, str]]:
    return [(page_id(page), line) for page in PAGES for long, lines in command_blocks(page) if not long
            for line in lines]


def test_the_readme_presents_its_two_commands_and_ci_runs_the_test_one():
    blocks = command_blocks(ROOT / "README.md")
    assert [long for long, _ in blocks[:2]] == [True, True]
    main, tests = blocks[0][1], blocks[1][1]
    assert "lenet5 train --preset paper" in main[0] and tests[0].endswith("python -m pytest -q")
    assert tests[0] in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow  # subprocesses; the commands need MNIST
@pytest.mark.parametrize("page,command", runnable(), ids=[f"{p}: {c}" for p, c in runnable()])
def test_every_runnable_command_runs(page, command, tmp_path):
    if not os.environ.get("LENET5_DATA"):
        pytest.skip("the docs' commands read MNIST: set LENET5_DATA")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # as from the repository root, which the pages assume, but writing nothing into it: the committed results
    # are seen through a link, and what a command writes (runs/...) stays in the temporary folder
    (tmp_path / "results").symlink_to(ROOT / "results")
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{page}: `{command}` exited {result.returncode}: {result.stderr[-2000:]}"


@pytest.mark.slow  # reads every committed grid (~15 s)
def test_the_committed_pages_are_what_lenet5_report_writes():
    """README.md, docs/, paper_notes/ and results/*.md hold exactly what `lenet5 report` makes from the committed results and
    the code: run it and commit after a change (a grid's new rows, a new flag, a new exit code)."""
    from repro.cli import build_parser
    from repro.study.report import reports

    files, blocks = reports(ROOT / "results", build_parser())
    stale = [name for name, text in files.items() if (ROOT / "results" / name).read_text() != text]
    for page in generated_pages(ROOT):
        text = page.read_text()
        for (begin, end), block in blocks.items():
            if begin in text and text.split(begin, 1)[1].split(end, 1)[0] != f"\n{block}\n":
                stale.append(f"{page_id(page)}: {begin}")
    assert not stale, f"run `lenet5 report` and commit: {stale}"
