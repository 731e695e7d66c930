"""Stochastic Diagonal Levenberg-Marquardt (Sec. III-B, App. C; Becker & LeCun 1989).

Each parameter w_k gets its own step eps_k = eta / (mu + h_kk), where h_kk is the diagonal Gauss-Newton second
derivative of the per-pattern loss, averaged over `hessian_samples` training patterns before each pass and kept
fixed during the pass. h_kk is back-propagated like a gradient, with every factor squared (App. C):

    d2E/da_i^2 = f'(a_i)^2 d2E/dx_i^2                 (through a squashing function; the f'' term is dropped)
    d2E/dx_j^2 = sum_i w_ij^2 d2E/da_i^2               (through a weighted sum)
    d2E/dw_ij^2 = sum_connections x_j^2 d2E/da_i^2     (a shared weight sums over every connection using it)

so h is a sum of non-negative terms and is never negative. `gauss_newton_diagonal` implements these rules for
each kind of layer the model can contain, starting from the loss's curvature (repro.losses.output_curvature).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input, conv2d_weight

from .components import TANH_AMPLITUDE, TANH_SLOPE, EuclideanRBF, ScaledTanh, TableConv2d, TrainableSubsampling
from .losses import output_curvature


def _record_leaves(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """Run the model once, returning (leaf module, its input, its output) in execution order."""
    records = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: records.append((mod, inp[0], out)))
             for m in model.modules() if len(list(m.children())) == 0]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return records


def _backprop_curvature(module: nn.Module, x: torch.Tensor, out: torch.Tensor, h_out: torch.Tensor,
                        hessian: dict[nn.Parameter, torch.Tensor]) -> torch.Tensor:
    """One layer of App. C: add this layer's parameters' d2E/dw^2 to `hessian`; return d2E/dx^2 for its input."""
    if isinstance(module, nn.Conv2d):
        weight = module.weight * module.weight_mask if isinstance(module, TableConv2d) else module.weight
        h_w = conv2d_weight(x.pow(2), weight.shape, h_out, module.stride, module.padding)
        if isinstance(module, TableConv2d):
            h_w = h_w * module.weight_mask
        hessian[module.weight] += h_w
        hessian[module.bias] += h_out.sum(dim=(0, 2, 3))
        return conv2d_input(x.shape, weight.pow(2), h_out, module.stride, module.padding)
    if isinstance(module, nn.Linear):
        hessian[module.weight] += h_out.t() @ x.pow(2)
        hessian[module.bias] += h_out.sum(dim=0)
        return h_out @ module.weight.pow(2)
    if isinstance(module, TrainableSubsampling):
        # each of a unit's 4 inputs is a connection that uses the map's coefficient
        sum_sq_inputs = F.avg_pool2d(x.pow(2), 2) * 4.0
        hessian[module.coefficient] += (sum_sq_inputs * h_out).sum(dim=(0, 2, 3))
        hessian[module.bias] += h_out.sum(dim=(0, 2, 3))
        return _upsample2(h_out) * module.coefficient.pow(2).view(1, -1, 1, 1)
    if isinstance(module, ScaledTanh):
        slope = TANH_AMPLITUDE * TANH_SLOPE * (1 - torch.tanh(TANH_SLOPE * x).pow(2))
        return slope.pow(2) * h_out
    if isinstance(module, nn.Tanh):
        return (1 - out.pow(2)).pow(2) * h_out
    if isinstance(module, nn.ReLU):
        return (x > 0).to(h_out.dtype) * h_out
    if isinstance(module, nn.MaxPool2d):
        _, indices = F.max_pool2d(x, 2, return_indices=True)
        return F.max_unpool2d(h_out, indices, 2, output_size=x.shape[-2:])
    if isinstance(module, nn.AvgPool2d):
        return _upsample2(h_out) / 16.0
    if isinstance(module, (nn.Flatten, nn.Identity)):
        return h_out.reshape(x.shape)
    if isinstance(module, nn.BatchNorm2d):
        # [approximation] in eval mode BatchNorm is a per-map affine map; the batch statistics' own
        # dependence on x is ignored, as for any diagonal estimate.
        inv_std = (module.running_var + module.eps).rsqrt().view(1, -1, 1, 1)
        x_hat = (x - module.running_mean.view(1, -1, 1, 1)) * inv_std
        hessian[module.weight] += (x_hat.pow(2) * h_out).sum(dim=(0, 2, 3))
        hessian[module.bias] += h_out.sum(dim=(0, 2, 3))
        return (module.weight.view(1, -1, 1, 1) * inv_std).pow(2) * h_out
    raise TypeError(f"SDLM has no curvature rule for {type(module).__name__}")


def _upsample2(h: torch.Tensor) -> torch.Tensor:
    return h.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


@torch.no_grad()
def gauss_newton_diagonal(model: nn.Module, x: torch.Tensor, targets: torch.Tensor,
                          loss: str) -> dict[nn.Parameter, torch.Tensor]:
    """App. C: the per-pattern diagonal Gauss-Newton second derivative of the loss for every trainable
    parameter, averaged over the patterns in `x`. Runs the model in eval mode (BatchNorm uses running stats)."""
    was_training = model.training
    model.eval()
    try:
        records = _record_leaves(model, x)
    finally:
        model.train(was_training)
    hessian = {p: torch.zeros_like(p) for p in model.parameters() if p.requires_grad}
    if isinstance(records[-1][0], EuclideanRBF):
        records = records[:-1]  # fixed prototypes: the loss's curvature is taken w.r.t. the F6 outputs
    h = output_curvature(loss, records[-1][2], targets)
    for i in range(len(records) - 1, -1, -1):
        module, inp, out = records[i]
        h = _backprop_curvature(module, inp, out, h.reshape(out.shape), hessian)
    n = x.shape[0]
    return {p: h_p / n for p, h_p in hessian.items()}


class SDLM(torch.optim.Optimizer):
    """Per-parameter steps eta / (mu + h_kk) applied to the gradient (Sec. III-B).

    `prepare(model, x, y, loss)` must be called before each pass: it re-estimates h_kk on the given patterns.
    With mini-batches of B patterns the step is multiplied by B (`batch_size`), so that one update with the
    batch's mean gradient moves as far as B online updates would (paper_notes/sdlm.md)."""

    def __init__(self, params, lr: float = 0.0005, mu: float = 0.02, batch_size: int = 1):
        super().__init__(params, dict(lr=lr, mu=mu, batch_size=batch_size))

    def prepare(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str) -> dict:
        """Re-estimate h_kk on (x, y); return the per-layer min/median/max of the effective step."""
        hessian = gauss_newton_diagonal(model, x, y, loss)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["hessian"] = hessian[p]
                self.state[p]["step_lr"] = None  # forces the step sizes to be recomputed
        return effective_step_summary(model, self.effective_steps())

    def effective_steps(self) -> dict[nn.Parameter, torch.Tensor]:
        """eps_k = eta / (mu + h_kk) per parameter, for the current eta (without the batch factor)."""
        return {p: group["lr"] / (group["mu"] + self.state[p]["hessian"])
                for group in self.param_groups for p in group["params"]}

    def step_size(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        """The step applied to p's gradient: batch_size * eta / (mu + h), cached until eta or h changes."""
        state = self.state[p]
        if "hessian" not in state:
            raise RuntimeError("SDLM.step() before prepare(): estimate the Hessian first")
        if state["step_lr"] != group["lr"]:  # eta changes once per pass; cache its steps until then
            state["step_size"] = group["lr"] * group["batch_size"] / (group["mu"] + state["hessian"])
            state["step_lr"] = group["lr"]
        return state["step_size"]

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            steps = [self.step_size(p, group) for p in params]
            torch._foreach_addcmul_(params, [p.grad for p in params], steps, value=-1.0)


def effective_step_summary(model: nn.Module, steps: dict[nn.Parameter, torch.Tensor]) -> dict:
    """{layer: [min, median, max]} of the per-parameter steps, over the parameters that exist (Table I)."""
    summary = {}
    for layer, stage in model.stages().items():
        values = []
        for module in stage.modules():
            for name, p in module.named_parameters(recurse=False):
                if p in steps:
                    s = steps[p]
                    if isinstance(module, TableConv2d) and name == "weight":
                        s = s[module.weight_mask.expand_as(s).bool()]
                    values.append(s.flatten())
        if values:
            v = torch.cat(values)
            summary[layer] = [v.min().item(), v.median().item(), v.max().item()]
    return summary
