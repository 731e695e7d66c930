import itertools

import pytest

from repro.study import figures
from repro.prototypes import DIGIT_BITMAPS, bitmap_to_vector, rbf_prototypes


def test_prototype_shape_and_values():
    p = rbf_prototypes()
    assert p.shape == (10, 84)
    assert set(p.unique().tolist()) == {-1.0, 1.0}


def test_every_pair_of_digits_differs_in_at_least_ten_pixels():
    p = rbf_prototypes()
    for a, b in itertools.combinations(range(10), 2):
        assert int((p[a] != p[b]).sum()) >= 10, (a, b)


def test_bitmap_rows_are_read_row_by_row():
    v = bitmap_to_vector(DIGIT_BITMAPS[7])
    assert v[7:14].tolist() == [1.0] * 7  # the 7's top bar is its second row


def test_malformed_bitmap_rejected():
    with pytest.raises(ValueError, match="12 rows of 7"):
        bitmap_to_vector(("###",) * 12)


def test_static_figures_render(tmp_path):
    paths = figures.make_static_figures(tmp_path)
    assert [p.name for p in paths] == ["rbf_prototypes.png", "c3_table.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
