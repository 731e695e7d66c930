"""The `norm` switch: none (the paper) or BatchNorm (Ioffe & Szegedy, 2015) after C1 and C3 (the seed blog's
modern network).

BatchNorm is not in the paper. Trained online (one pattern per update) it normalises each map over that
pattern's positions: exactly what `nn.BatchNorm2d` does in training mode on a batch of one, and what the online
engine does (paper_notes/normalisation.md says what that means). How it evaluates is the run's `bn_eval`
(`EVALUATION_STATISTICS`, set by `set_evaluation_statistics`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .base import Component, per_map


class BatchNorm2d(Component, nn.BatchNorm2d):
    """nn.BatchNorm2d: in training, statistics over a batch's patterns and positions; in eval mode, the running
    statistics, or with `per_pattern_eval` each pattern's own over its positions (instance normalisation, Ulyanov
    et al. 2016, with BatchNorm's scale and shift), which is what training at batch 1 computed."""

    online_state = ("running_mean", "running_var", "num_batches_tracked")
    per_pattern_eval = False  # set_evaluation_statistics; a class default, so a state dict does not carry it

    def forward(self, x):
        if self.training or not self.per_pattern_eval:
            return super().forward(x)
        # each pattern over its own positions, as training at batch 1 normalised it: the function that was trained
        return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)

    def online_forward(self, p, x):
        dims = (1, 3, 4)  # each run's patterns and positions, per map
        n = x.shape[1] * x.shape[3] * x.shape[4]
        mean = x.mean(dim=dims)  # (S, maps)
        centred = x - per_map(mean)
        var = centred.pow(2).mean(dim=dims)  # biased, as used for normalising
        inv_std = torch.rsqrt(var + self.eps)
        x_hat = centred * per_map(inv_std)
        # running statistics as nn.BatchNorm2d keeps them: the unbiased variance, momentum 0.1
        m = self.momentum
        p["running_mean"].mul_(1 - m).add_(mean, alpha=m)
        p["running_var"].mul_(1 - m).add_(var * (n / (n - 1)), alpha=m)
        p["num_batches_tracked"].add_(1)
        y = torch.addcmul(per_map(p["bias"]), x_hat, per_map(p["weight"]))
        return y, (x_hat, inv_std, n)

    def online_backward(self, p, ctx, dy, grads, need_dx=True):
        x_hat, inv_std, n = ctx
        dims = (1, 3, 4)
        grads["weight"] = (dy * x_hat).sum(dim=dims)
        grads["bias"] = dy.sum(dim=dims)
        if not need_dx:
            return None
        # the gradient through the batch statistics: (1/n) inv_std gamma (n dy - sum dy - x_hat sum(dy x_hat))
        scale = per_map(p["weight"] * inv_std / n)
        return scale * (n * dy - per_map(grads["bias"]) - x_hat * per_map(grads["weight"]))

    def curvature(self, x, y, h_y, hessian, need_input=True):
        # [approximation] in eval mode BatchNorm is a per-map affine map; the batch statistics' own
        # dependence on x is ignored, as for any diagonal estimate.
        inv_std = (self.running_var + self.eps).rsqrt().view(1, -1, 1, 1)
        x_hat = (x - self.running_mean.view(1, -1, 1, 1)) * inv_std
        hessian[self.weight] += (x_hat.pow(2) * h_y).sum(dim=(0, 2, 3))
        hessian[self.bias] += h_y.sum(dim=(0, 2, 3))
        return (self.weight.view(1, -1, 1, 1) * inv_std).pow(2) * h_y

    def connections(self, y):
        return y[0].numel() * 2  # a scale and a shift per unit


@dataclass(frozen=True)
class Norm:
    """A norm value: the layers inserted after C1's and C3's convolution, and whether they replace its bias."""

    layers: Callable[[int], list[nn.Module]]
    # A bias before BatchNorm is subtracted again with the batch mean: its gradient is zero up to rounding, which
    # Adam divides by its own tiny magnitude into steps of size ~lr, a random walk that changes nothing the
    # network computes. BatchNorm's shift takes its place (as in most modern networks; the seed blog kept it).
    replaces_bias: bool


# bn_eval: the statistics BatchNorm normalises with in eval mode. running: nn.BatchNorm2d's running averages
# (momentum 0.1), the usual choice. per_pattern: each pattern's own, as it trains at batch 1; online, the running
# averages follow the last ~10 patterns' per-image statistics and no average of per-image statistics is the
# normalisation each image got in training (paper_notes/normalisation.md has the measurement).
EVALUATION_STATISTICS = ("running", "per_pattern")


def set_evaluation_statistics(model: nn.Module, bn_eval: str) -> nn.Module:
    """Make every BatchNorm2d of `model` evaluate with `bn_eval`'s statistics (EVALUATION_STATISTICS)."""
    if bn_eval not in EVALUATION_STATISTICS:
        raise ValueError(f"bn_eval {bn_eval!r} is not one of {EVALUATION_STATISTICS}")
    for module in model.modules():
        if isinstance(module, BatchNorm2d):
            module.per_pattern_eval = bn_eval == "per_pattern"
    return model


@contextmanager
def using_running_statistics(model: nn.Module) -> Iterator[None]:
    """Within the block, every BatchNorm2d of `model` evaluates with its running statistics, whatever bn_eval
    says: SDLM's curvature pass (repro/sdlm.py) uses them, so that bn_eval changes what is measured, not how the
    network trains."""
    layers = [m for m in model.modules() if isinstance(m, BatchNorm2d)]
    saved = [m.per_pattern_eval for m in layers]
    for m in layers:
        m.per_pattern_eval = False
    try:
        yield
    finally:
        for m, value in zip(layers, saved):
            m.per_pattern_eval = value


NORMS: dict[str, Norm] = {
    "none": Norm(lambda channels: [], replaces_bias=False),
    "batch": Norm(lambda channels: [BatchNorm2d(channels)], replaces_bias=True),
}
