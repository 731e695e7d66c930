"""The `head` switch with its losses (Sec. II-B, II-C): the Euclidean RBF output with MAP or MLE, or a linear
layer with softmax cross-entropy.

For the RBF head the outputs are penalties y_i = sum_j (x_j - w_ij)^2 (Eq. 7), lower is better:
- MLE (Eq. 8): E = y_D, the penalty of the correct class D.
- MAP (Eq. 9): E = y_D + log(e^{-j} + sum_i e^{-y_i}): the second term pushes up the penalties of the wrong
  classes, and e^{-j} keeps it from pushing up those already large (j > 0) [unsure: j].
For the linear head the outputs are logits and the criterion is softmax cross-entropy.

The losses themselves (values, gradients, curvatures) are in losses.py; SDLM's curvature of the loss starts at the head (`loss_curvature`,
App. C), with the loss's own curvature at the outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..prototypes import rbf_prototypes
from .base import Component
from .linear import Linear
from .losses import output_curvature

class EuclideanRBF(Component, nn.Module):
    """The output layer (Sec. II-B, Eq. 7): y_i = sum_j (x_j - w_ij)^2, with w_i fixed (a buffer, never
    trained). The output is a penalty: the predicted class is argmin_i y_i."""

    def __init__(self, prototypes: torch.Tensor):
        super().__init__()
        self.register_buffer("prototypes", prototypes.clone())

    def forward(self, x):
        # x: (N, 84), prototypes: (10, 84) -> (N, 10)
        return (x.unsqueeze(1) - self.prototypes.unsqueeze(0)).pow(2).sum(dim=-1)

    def online_forward(self, p, x):
        diff = x[:, :, None, :] - self.prototypes  # (S, B, 10, 84)
        return diff.pow(2).sum(dim=-1), diff

    def online_backward(self, p, diff, dy, grads, need_dx=True):
        return 2 * torch.matmul(dy[:, :, None, :], diff)[:, :, 0] if need_dx else None

    def curvature(self, x, y, h_y, hessian, need_input=True):
        # the Gauss-Newton rule through y_i: dy_i/dx_j = 2 (x_j - w_ij); used only if a layer followed the RBF
        return torch.einsum("ni,nij->nj", h_y, (2 * (x[:, None, :] - self.prototypes)).pow(2))

    def loss_curvature(self, loss, x, y, targets, hessian):
        """[assumption] MAP and MLE alike: 2 per F6 output, MLE's exact curvature. MAP's competitive term's
        curvature vanishes once the correct class wins, and the Gauss-Newton part through the penalties goes
        to 0 as x approaches the target prototype, which would make SDLM's steps blow up (paper_notes/sdlm.md)."""
        return output_curvature(loss, x, targets)

    def connections(self, y):
        return self.prototypes.numel()


@dataclass(frozen=True)
class Head:
    """A head value: its factory (84 F6 outputs -> 10 classes), its losses (the first is loss=auto's), and how
    outputs become labels."""

    make: Callable[[], nn.Module]
    losses: tuple[str, ...]
    lower_is_better: bool


HEADS: dict[str, Head] = {
    "rbf": Head(lambda: EuclideanRBF(rbf_prototypes()), ("map", "mle"), lower_is_better=True),
    "linear": Head(lambda: Linear(84, 10), ("cross_entropy",), lower_is_better=False),
}
