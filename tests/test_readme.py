"""The docs' lists that must follow the tree: docs/figures.md shows every committed figure, and docs/layout.md
names every module, so that a newcomer who reads them finds everything there is."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def page(name: str) -> str:
    return (ROOT / "docs" / name).read_text()


def test_the_figures_table_shows_every_figure():
    shown = set(re.findall(r"!\[\]\(\.\./figures/([\w.-]+\.png)\)", page("figures.md")))
    committed = {p.name for p in (ROOT / "figures").glob("*.png")}
    assert committed, "no figures found"
    assert committed - shown == set(), "add these to docs/figures.md"
    assert shown - committed == set(), "docs/figures.md shows figures that do not exist"


def test_the_layout_names_every_module():
    layout = page("layout.md")
    named = set()
    folder = None
    for line in layout.splitlines():
        top = re.match(r"    (repro/[\w/]*?)(\w+\.py)?\s", line)
        if top:
            folder = top.group(1) if top.group(2) is None else None
            if top.group(2):
                named.add(top.group(1) + top.group(2))
            continue
        nested = re.match(r"      (\w+\.py)\s", line)
        if nested and folder:
            named.add(folder + nested.group(1))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "repro").rglob("*.py")
               if not p.name.startswith("__")}
    assert modules - named == set(), "add these to docs/layout.md"
    assert named - modules == set(), "docs/layout.md names modules that do not exist"
