"""The training criteria of the `head` switch (Sec. II-C): MAP (Eq. 9) and MLE (Eq. 8) on the RBF head's
penalties, softmax cross-entropy on the linear head's logits.

For the RBF head the outputs are penalties y_i = sum_j (x_j - w_ij)^2 (Eq. 7), lower is better:
- MLE (Eq. 8): E = y_D, the penalty of the correct class D.
- MAP (Eq. 9): E = y_D + log(e^{-j} + sum_i e^{-y_i}): the second term pushes up the penalties of the wrong
  classes, and e^{-j} keeps it from pushing up those already large (j > 0) [unsure: j].

Each loss gives its value (the mean over a batch, for the autograd model and for evaluation), per pattern its
value and its gradient with respect to the outputs (for the online engine), and its curvature at the outputs,
where SDLM's App. C backward pass starts. Nothing here imports another component, so any of them may use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

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
    """A training criterion: `value` (batch mean, autograd), `per_pattern` (values and output gradients) and
    `curvature` (SDLM's second derivatives at the outputs), so that a new loss brings its own curvature."""

    value: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    per_pattern: Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]
    # (outputs, targets) -> each pattern's diagonal Gauss-Newton curvature w.r.t. the outputs (App. C's start;
    # for the RBF losses, w.r.t. the head's input, see rbf_curvature)
    curvature: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def __call__(self, outputs, targets, j):
        return self.value(outputs, targets, j)

    def online(self, outputs: torch.Tensor, targets: torch.Tensor, j: float):
        """outputs (S, B, classes), targets (S, B) -> each run's mean loss (S,) and its gradient (S, B, classes)."""
        loss, grad = self.per_pattern(outputs, targets, j)
        batch = outputs.shape[1]
        return loss.mean(dim=1), grad / batch


def rbf_curvature(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MAP and MLE, taken at the RBF head's input x (F6's outputs, where EuclideanRBF.loss_curvature starts App.
    C): 2 per unit, the exact second derivative of MLE's E_p = y_D w.r.t. x; EuclideanRBF.loss_curvature says why
    MAP takes the same [assumption, paper_notes/sdlm.md]."""
    return torch.full_like(x, RBF_CURVATURE)


def softmax_curvature(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy w.r.t. the logits: softmax's diagonal p (1 - p), the exact Gauss-Newton."""
    p = logits.softmax(dim=1)
    return p * (1 - p)


LOSSES: dict[str, Loss] = {"map": Loss(map_loss, map_per_pattern, rbf_curvature),
                           "mle": Loss(mle_loss, mle_per_pattern, rbf_curvature),
                           "cross_entropy": Loss(cross_entropy_loss, cross_entropy_per_pattern, softmax_curvature)}


def output_curvature(loss: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Diagonal Gauss-Newton curvature of each pattern's loss `loss` (a LOSSES name) w.r.t. a network's outputs."""
    return LOSSES[loss].curvature(outputs, targets)
