"""Training criteria, owned by the output head (Sec. II-C).

For the RBF head the network's outputs are penalties y_i (Eq. 7), lower is better:
- MLE (Eq. 8): E = mean_p y_{D_p}, the penalty of the correct class.
- MAP (Eq. 9): E = mean_p [ y_{D_p} + log(e^{-j} + sum_i e^{-y_i}) ]: the second term pushes up the penalties
  of the wrong classes, and e^{-j} keeps it from pushing up those already large (j > 0) [unsure: j].
For the linear head the outputs are logits and the criterion is softmax cross-entropy.

Each loss also gives the diagonal Gauss-Newton curvature of a pattern's loss with respect to the head's input
(the F6 outputs, for RBF) or its outputs (logits), which SDLM back-propagates (App. C).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F


def mle_loss(penalties: torch.Tensor, targets: torch.Tensor, j: float = 0.0) -> torch.Tensor:
    """Eq. 8, averaged over the batch."""
    return penalties.gather(1, targets[:, None]).mean()


def map_loss(penalties: torch.Tensor, targets: torch.Tensor, j: float = 0.1) -> torch.Tensor:
    """Eq. 9, averaged over the batch; log(e^{-j} + sum_i e^{-y_i}) computed as one stable logsumexp."""
    junk = torch.full_like(penalties[:, :1], -j)
    competition = torch.logsumexp(torch.cat([junk, -penalties], dim=1), dim=1)
    return (penalties.gather(1, targets[:, None]).squeeze(1) + competition).mean()


def cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor, j: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits, targets)


LOSSES = {"map": map_loss, "mle": mle_loss, "cross_entropy": cross_entropy_loss}

# d^2 y_i / dx_j^2 = 2 for y_i = sum_j (x_j - w_ij)^2 (Eq. 7).
RBF_CURVATURE = 2.0


def output_curvature(loss: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Diagonal Gauss-Newton curvature of each pattern's loss, for SDLM's backward pass (App. C).

    RBF losses: curvature with respect to `outputs` = the F6 outputs x, (N, 84). For MLE, E_p = y_D is quadratic in x and
    its exact second derivative is 2 per unit. For MAP we take the same value [assumption, see
    paper_notes/sdlm.md]: the competitive term's curvature vanishes once the correct class wins, and its
    Gauss-Newton part goes to 0 as x approaches the target prototype, which would make the steps blow up.
    Cross-entropy: with respect to the logits, softmax's diagonal p (1 - p), (N, 10), exact Gauss-Newton."""
    if loss in ("map", "mle"):
        return torch.full_like(outputs, RBF_CURVATURE)
    p = outputs.softmax(dim=1)
    return p * (1 - p)
