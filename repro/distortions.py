"""Distorted training patterns (Sec. III-C, "results with distortions"): 540,000 patterns made from the 60,000
training patterns by random planar affine maps (horizontal and vertical translation, scaling, squeezing, i.e.
horizontal compression with vertical elongation or the reverse, and horizontal shearing), pooled with the
originals; each of the 20 passes draws 60,000 of the 600,000, so a pattern is seen about twice.

The paper gives no ranges: `AFFINE_RANGES` times the config's `distortion_strength` sets them, chosen on the
validation split (experiments/distortion_screen.py, paper_notes/distortions.md). Everything is a function of the
run's seed: the 9 x 60,000 maps are drawn once per run (`affine_parameters`), and each pass's draw from the pool
and its warping (`distorted_pass`) are a function of (seed, pass), so a resumed run sees the same patterns.
Warping is vectorised (torch's affine_grid + grid_sample over the whole pass, in blocks), never per sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .components import INPUTS

DISTORTED_COPIES = 9  # 9 x 60,000 = 540,000 distorted patterns (Sec. III-C)
WARP_BLOCK = 10_000  # patterns warped at once (bounds the sampling grid's memory)


@dataclass(frozen=True)
class AffineRanges:
    """Each parameter is drawn uniformly in [-range, +range] times the strength."""

    translate_px: float = 2.0  # horizontal and vertical shift, in pixels of the 28x28 image
    scale: float = 0.1  # relative size change, both axes
    squeeze: float = 0.1  # horizontal x (1 + q), vertical / (1 + q)
    shear: float = 0.15  # horizontal shift proportional to the vertical position


AFFINE_RANGES = AffineRanges()
N_PARAMS = 5  # tx, ty, scale, squeeze, shear


def _generator(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + 7_919 * stream + 17)


def affine_parameters(seed: int, n: int, strength: float, ranges: AffineRanges = AFFINE_RANGES) -> torch.Tensor:
    """(DISTORTED_COPIES, n, 5) parameters of the run's distorted copies: tx, ty (pixels), scale, squeeze, shear."""
    u = torch.rand(DISTORTED_COPIES, n, N_PARAMS, generator=_generator(seed, 1)) * 2 - 1
    bounds = torch.tensor([ranges.translate_px, ranges.translate_px, ranges.scale, ranges.squeeze, ranges.shear])
    return u * bounds * strength


def affine_matrices(params: torch.Tensor, size: int = 28) -> torch.Tensor:
    """(N, 5) parameters -> (N, 2, 3) matrices for F.affine_grid (output pixel -> where it samples the input,
    in [-1, 1] coordinates). The sampling map's parameters are drawn symmetrically, so its inverse, the
    distortion itself, has the same distribution."""
    tx, ty, scale, squeeze, shear = params.unbind(-1)
    sx = (1 + scale) * (1 + squeeze)
    sy = (1 + scale) / (1 + squeeze)
    theta = torch.zeros(params.shape[0], 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = sx, shear, 2 * tx / size
    theta[:, 1, 1], theta[:, 1, 2] = sy, 2 * ty / size
    return theta


def warp(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> uint8 (N, 28, 28) distorted (bilinear, background outside), so that every input
    mode's preprocessing applies to them unchanged."""
    out = torch.empty_like(images)
    for start in range(0, len(images), WARP_BLOCK):
        block = images[start:start + WARP_BLOCK].to(torch.float32).unsqueeze(1)
        theta = affine_matrices(params[start:start + WARP_BLOCK], images.shape[-1])
        grid = F.affine_grid(theta, list(block.shape), align_corners=False)
        warped = F.grid_sample(block, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[start:start + WARP_BLOCK] = warped.squeeze(1).round_().clamp_(0, 255).to(torch.uint8)
    return out


def distorted_pass(raw_images: torch.Tensor, labels: torch.Tensor, params: torch.Tensor, seed: int,
                   pass_index: int, input_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The pass's training patterns, in the order they are visited: len(labels) patterns drawn without
    replacement from the pool of originals and distorted copies, preprocessed for `input_mode`."""
    n = len(labels)
    pool = (DISTORTED_COPIES + 1) * n
    drawn = torch.randperm(pool, generator=_generator(seed, 1_000 + pass_index))[:n]
    copy, pattern = drawn // n, drawn % n  # copy 0: the original pattern
    images = raw_images[pattern].clone()
    distorted = copy > 0
    images[distorted] = warp(images[distorted], params[copy[distorted] - 1, pattern[distorted]])
    return INPUTS[input_mode].preprocess(images), labels[pattern]
