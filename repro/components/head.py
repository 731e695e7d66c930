"""The `head` switch with its losses (Sec. II-B, II-C): the Euclidean RBF output with MAP or MLE, or a linear
layer with softmax cross-entropy.

For the RBF head the outputs are penalties y_i = sum_j (x_j - w_ij)^2 (Eq. 7), lower is better:
- MLE (Eq. 8): E = y_D, the penalty of the correct class D.
- MAP (Eq. 9): E = y_D + log(e^{-j} + sum_i e^{-y_i}): the second term pushes up the penalties of the wrong
  classes, and e^{-j} keeps it from pushing up those already large (j > 0) [unsure: j].
For the linear head the outputs are logits and the criterion is softmax cross-entropy.

Each loss gives its value (the mean over a batch, for the autograd model and for evaluation) and, per pattern,
its value and its gradient with respect to the head's outputs (for the online engine). SDLM's curvature of the
loss starts at the head (`loss_curvature`, App. C).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..prototypes import rbf_prototypes
from .base import Component
from .linear import Linear

# d^2 y_i / dx_j^2 = 2 for y_i = sum_j (x_j - w_ij)^2 (Eq. 7).
RBF_CURVATURE = 2.0


def _competition(penalties: torch.Tensor, j: float) -> torch.Tensor:
    """log(e^{-j} + sum_i e^{-y_i}), as one stable logsumexp over the last dimension."""
    junk = torch.full_like(penalties[..., :1], -j)
    return torch.logsumexp(torch.cat([junk, -penalties], dim=-1), dim=-1)


def map_per_pattern(penalties: torch.Tensor, targets: torch.Tensor, j: float):
    """Eq. 9 per pattern and dE/dy_i = [i = D] - e^{-y_i} / (e^{-j} + sum_k e^{-y_k})."""
    onehot = F.one_hot(targets, penalties.shape[-1]).to(penalties.dtype)
    competition = _competition(penalties, j)
    loss = (penalties * onehot).sum(-1) + competition
    return loss, onehot - (-penalties - competition[..., None]).exp()


def mle_per_pattern(penalties: torch.Tensor, targets: torch.Tensor, j: float):
    """Eq. 8 per pattern and its gradient, the one-hot vector of the correct class."""
    onehot = F.one_hot(targets, penalties.shape[-1]).to(penalties.dtype)
    return (penalties * onehot).sum(-1), onehot


def cross_entropy_per_pattern(logits: torch.Tensor, targets: torch.Tensor, j: float):
    """Softmax cross-entropy per pattern and its gradient, softmax - one-hot."""
    onehot = F.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    logp = logits.log_softmax(dim=-1)
    return -(logp * onehot).sum(-1), logp.exp() - onehot


def mle_loss(penalties: torch.Tensor, targets: torch.Tensor, j: float = 0.0) -> torch.Tensor:
    """Eq. 8, averaged over the batch."""
    return penalties.gather(1, targets[:, None]).mean()


def map_loss(penalties: torch.Tensor, targets: torch.Tensor, j: float = 0.1) -> torch.Tensor:
    """Eq. 9, averaged over the batch."""
    return (penalties.gather(1, targets[:, None]).squeeze(1) + _competition(penalties, j)).mean()


def cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor, j: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits, targets)


@dataclass(frozen=True)
class Loss:
    """A training criterion: `value` (batch mean, autograd) and `per_pattern` (values and output gradients)."""

    value: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    per_pattern: Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]

    def __call__(self, outputs, targets, j):
        return self.value(outputs, targets, j)

    def online(self, outputs: torch.Tensor, targets: torch.Tensor, j: float):
        """outputs (S, B, classes), targets (S, B) -> each run's mean loss (S,) and its gradient (S, B, classes)."""
        loss, grad = self.per_pattern(outputs, targets, j)
        batch = outputs.shape[1]
        return loss.mean(dim=1), grad / batch


LOSSES: dict[str, Loss] = {"map": Loss(map_loss, map_per_pattern), "mle": Loss(mle_loss, mle_per_pattern),
                           "cross_entropy": Loss(cross_entropy_loss, cross_entropy_per_pattern)}


def output_curvature(loss: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Diagonal Gauss-Newton curvature of each pattern's loss with respect to a network's outputs.

    MAP and MLE: 2 per output unit, the exact second derivative of MLE's E_p = y_D w.r.t. the RBF's input x;
    see EuclideanRBF.loss_curvature for why MAP takes the same [assumption, paper_notes/sdlm.md].
    Cross-entropy: with respect to the logits, softmax's diagonal p (1 - p), the exact Gauss-Newton."""
    if loss in ("map", "mle"):
        return torch.full_like(outputs, RBF_CURVATURE)
    p = outputs.softmax(dim=1)
    return p * (1 - p)


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
