"""Fixed RBF prototypes: a stylised 7x12 bitmap of each digit (Sec. II-B, Fig. 3).

The paper's exact bitmaps exist only as a figure and public transcriptions disagree, so these are our own
drawing in the same spirit: 7 columns by 12 rows, ink (#) = +1, background (.) = -1, with a blank top and
bottom row as in the paper's ASCII font. paper_notes/rbf_output.md says so.
"""
from __future__ import annotations

import torch

WIDTH, HEIGHT = 7, 12

DIGIT_BITMAPS: dict[int, tuple[str, ...]] = {
    0: (".......", "..###..", ".##.##.", "##...##", "##...##", "##...##",
        "##...##", "##...##", "##...##", ".##.##.", "..###..", "......."),
    1: (".......", "...##..", "..###..", ".####..", "...##..", "...##..",
        "...##..", "...##..", "...##..", "...##..", ".######", "......."),
    2: (".......", "..###..", ".##.##.", "##...##", ".....##", "....##.",
        "...##..", "..##...", ".##....", "##.....", "#######", "......."),
    3: (".......", ".#####.", "##...##", ".....##", "....##.", "..###..",
        "....##.", ".....##", ".....##", "##...##", ".#####.", "......."),
    4: (".......", "....##.", "...###.", "..####.", ".##.##.", "##..##.",
        "#######", "....##.", "....##.", "....##.", "....##.", "......."),
    5: (".......", "#######", "##.....", "##.....", "######.", ".....##",
        ".....##", ".....##", ".....##", "##...##", ".#####.", "......."),
    6: (".......", "...###.", "..##...", ".##....", "##.....", "######.",
        "###..##", "##...##", "##...##", "##...##", ".#####.", "......."),
    7: (".......", "#######", ".....##", "....##.", "....##.", "...##..",
        "...##..", "..##...", "..##...", "..##...", "..##...", "......."),
    8: (".......", ".#####.", "##...##", "##...##", "##...##", ".#####.",
        "##...##", "##...##", "##...##", "##...##", ".#####.", "......."),
    9: (".......", ".#####.", "##...##", "##...##", "##...##", "##...##",
        ".######", ".....##", ".....##", "....##.", ".####..", "......."),
}


def bitmap_to_vector(rows: tuple[str, ...]) -> torch.Tensor:
    """12 rows of 7 characters -> an 84-vector of +-1, read row by row."""
    if len(rows) != HEIGHT or any(len(r) != WIDTH or set(r) - {"#", "."} for r in rows):
        raise ValueError(f"a prototype must be {HEIGHT} rows of {WIDTH} '#'/'.' characters")
    return torch.tensor([1.0 if c == "#" else -1.0 for row in rows for c in row])


def rbf_prototypes() -> torch.Tensor:
    """The (10, 84) matrix of +-1 prototypes, row i for digit i."""
    return torch.stack([bitmap_to_vector(DIGIT_BITMAPS[d]) for d in range(10)])
