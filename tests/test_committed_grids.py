"""The committed grid results (results/grids/) against the declarations: every folder is a declared grid, and
every row still carries the digest its variant's config has now. These tests read the committed folder on purpose;
every other grid test writes its own results under tmp_path."""
from pathlib import Path

import pytest

from repro.study.grid import RUNS_FILE, grid_cells, read_rows
from repro.study.grids import GRIDS


COMMITTED_GRIDS = Path(__file__).parent.parent / "results" / "grids"


@pytest.mark.parametrize("name", sorted(n for n in GRIDS if (COMMITTED_GRIDS / n / RUNS_FILE).exists()))
def test_committed_rows_keep_their_names(name):
    """Config fields added since the grids ran leave their digests unchanged (RunConfig.digest)."""
    rows, _ = read_rows(COMMITTED_GRIDS / name / RUNS_FILE)
    declared = {c.key: c.config.digest() for c in grid_cells(GRIDS[name], sorted({r["seed"] for r in rows}))}
    assert rows and all(declared[(r["variant"], r["seed"])] == r["digest"] for r in rows)


def test_every_committed_grid_folder_is_a_declared_grid():
    folders = {p.parent.name for p in COMMITTED_GRIDS.glob(f"*/{RUNS_FILE}")}
    assert {"leave_one_in"} <= folders <= set(GRIDS)
