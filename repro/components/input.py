"""The `input` switch: the paper's 32x32 field in [-0.1, 1.175] (Sec. II-B) or ToTensor's 28x28 in [0, 1].

An input value fixes the size the network sees, the padding C1 needs so that every later map keeps the paper's
shape, and how MNIST's uint8 images become that input (used by repro/data.py and by anyone calling the model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

# Sec. II-B: background (white) -> -0.1, foreground (black) -> 1.175, which makes the mean input roughly 0
# and the variance roughly 1. MNIST stores background as 0 and ink as 255.
BACKGROUND_LEVEL = -0.1
FOREGROUND_LEVEL = 1.175


def _paper_field(images: torch.Tensor) -> torch.Tensor:
    """Padded with 2 pixels of background to 32x32 and mapped linearly to [-0.1, 1.175]."""
    x = F.pad(images.to(torch.float32).div_(255.0).unsqueeze(1), (2, 2, 2, 2), value=0.0)
    return x.mul_(FOREGROUND_LEVEL - BACKGROUND_LEVEL).add_(BACKGROUND_LEVEL)


def _to_tensor(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ToTensor: [0, 1], as in the seed blog."""
    return images.to(torch.float32).div_(255.0).unsqueeze(1)


@dataclass(frozen=True)
class InputField:
    size: int  # the network's input is (N, 1, size, size)
    c1_padding: int  # C1's padding, so that C1's maps are 28x28 either way
    preprocess: Callable[[torch.Tensor], torch.Tensor]  # uint8 (N, 28, 28) -> float32 (N, 1, size, size)


INPUTS: dict[str, InputField] = {"32": InputField(32, 0, _paper_field), "28": InputField(28, 2, _to_tensor)}
