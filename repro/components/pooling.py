"""The `pooling` switch for S2 and S4: the paper's trainable subsampling (Sec. II-B) vs max- and average pooling.

Each layer halves its maps with non-overlapping 2x2 blocks. Online tensors are (S runs, B patterns, maps, H, W);
a run's per-map parameters are (S, maps).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .activation import ACTIVATIONS
from .base import Component, blocks_2x2, per_map, spread_2x2, sum_2x2, unblock_2x2


class TrainableSubsampling(Component, nn.Module):
    """S2/S4 (Sec. II-B): the sum of each non-overlapping 2x2 block, times one coefficient per map, plus one
    bias per map. The squashing function that follows is a separate module, so that it follows the config."""

    fan_in = 4  # inputs per unit, for LeCun's init and the connection count

    def __init__(self, channels: int):
        super().__init__()
        self.coefficient = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        block_sum = F.avg_pool2d(x, 2) * 4.0
        return block_sum * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def online_forward(self, p, x):
        block_sum = sum_2x2(x)
        return torch.addcmul(per_map(p["bias"]), per_map(p["coefficient"]), block_sum), block_sum

    def online_backward(self, p, block_sum, dy, grads, need_dx=True):
        grads["coefficient"] = (dy * block_sum).sum(dim=(1, 3, 4))
        grads["bias"] = dy.sum(dim=(1, 3, 4))
        return spread_2x2(dy * per_map(p["coefficient"])) if need_dx else None

    def curvature(self, x, y, h_y, hessian, need_input=True):
        # each of a unit's 4 inputs is a connection that uses the map's coefficient
        hessian[self.coefficient] += (sum_2x2(x.pow(2)) * h_y).sum(dim=(0, 2, 3))
        hessian[self.bias] += h_y.sum(dim=(0, 2, 3))
        return spread_2x2(h_y) * self.coefficient.pow(2).view(1, -1, 1, 1)

    def connections(self, y):
        return y[0].numel() * (self.fan_in + 1)


class MaxPool(Component, nn.MaxPool2d):
    """2x2 max-pooling, stride 2 (the seed blog's); the gradient goes to each block's (first) maximum."""

    def __init__(self):
        super().__init__(2)

    def online_forward(self, p, x):
        values, index = blocks_2x2(x).max(dim=-1)  # max returns the first maximum, as max_pool2d does
        return values, index

    def online_backward(self, p, index, dy, grads, need_dx=True):
        if not need_dx:
            return None
        route = F.one_hot(index, 4).to(dy.dtype)
        return unblock_2x2(route * dy[..., None])

    def curvature(self, x, y, h_y, hessian, need_input=True):
        _, indices = F.max_pool2d(x, 2, return_indices=True)
        return F.max_unpool2d(h_y, indices, 2, output_size=x.shape[-2:])

    def connections(self, y):
        return y[0].numel() * 4


class AvgPool(Component, nn.AvgPool2d):
    """2x2 average pooling, stride 2: the trainable subsampling with its coefficient fixed at 1/4, no bias."""

    def __init__(self):
        super().__init__(2)

    def online_forward(self, p, x):
        return sum_2x2(x) * 0.25, None

    def online_backward(self, p, ctx, dy, grads, need_dx=True):
        return spread_2x2(dy * 0.25) if need_dx else None

    def curvature(self, x, y, h_y, hessian, need_input=True):
        return spread_2x2(h_y) / 16.0

    def connections(self, y):
        return y[0].numel() * 4


def _trainable(channels: int, activation: str) -> nn.Module:
    # the paper's subsampling units are squashed like every other unit (Sec. II-B)
    return nn.Sequential(TrainableSubsampling(channels), ACTIVATIONS[activation]())


# pooling value -> factory(channels, activation) of S2/S4
POOLINGS: dict[str, Callable[[int, str], nn.Module]] = {
    "trainable": _trainable,
    "max": lambda channels, activation: MaxPool(),
    "avg": lambda channels, activation: AvgPool(),
}
