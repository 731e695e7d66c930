"""Stochastic Diagonal Levenberg-Marquardt (Sec. III-B, App. C; Becker & LeCun 1989).

Each parameter w_k gets its own step eps_k = eta / (mu + h_kk), where h_kk is the diagonal Gauss-Newton second
derivative of the per-pattern loss, averaged over `hessian_samples` training patterns before each pass and kept
fixed during the pass. h_kk is back-propagated like a gradient, with every factor squared (App. C):

    d2E/da_i^2 = f'(a_i)^2 d2E/dx_i^2                 (through a squashing function; the f'' term is dropped)
    d2E/dx_j^2 = sum_i w_ij^2 d2E/da_i^2               (through a weighted sum)
    d2E/dw_ij^2 = sum_connections x_j^2 d2E/da_i^2     (a shared weight sums over every connection using it)

so h is a sum of non-negative terms and is never negative. Each component carries its own rule
(`Component.curvature`, repro/components/); `gauss_newton_diagonal` chains them, starting where the last layer
says the loss's curvature starts (`Component.loss_curvature`). It is the definition, traced with hooks on every
call; `CurvatureEstimator` is what training calls 2,420 times a paper-preset run: the same rules over the layers
traced once (repro/layers.py), as one function that torch.compile fuses when the run's engine is compiled
(tests/test_curvature.py holds the two equal for every switch value).
"""
from __future__ import annotations

import torch
from torch import nn

from .components import Component, TableConv2d, using_running_statistics
from .components.base import trace_leaves
from .kernels.c1s2 import C1S2Block
from .layers import network_layers
from .phases import CompileTimer


@torch.no_grad()
def gauss_newton_diagonal(model: nn.Module, x: torch.Tensor, targets: torch.Tensor,
                          loss: str) -> dict[nn.Parameter, torch.Tensor]:
    """App. C: the per-pattern diagonal Gauss-Newton second derivative of the loss for every trainable
    parameter, averaged over the patterns in `x`. Runs the model in eval mode (BatchNorm uses running stats,
    whatever the run's bn_eval)."""
    was_training = model.training
    model.eval()
    try:
        with using_running_statistics(model):
            records = trace_leaves(model, x)
    finally:
        model.train(was_training)
    hessian = {p: torch.zeros_like(p) for p in model.parameters() if p.requires_grad}
    for module, _, _ in records:
        if not isinstance(module, Component):
            raise TypeError(f"SDLM has no curvature rule for {type(module).__name__}: build the model from "
                            f"repro.components")
    head, head_in, head_out = records[-1]
    h = head.loss_curvature(loss, head_in, head_out, targets, hessian)
    for i in range(len(records) - 2, -1, -1):
        module, inp, out = records[i]
        h = module.curvature(inp, out, h.reshape(out.shape), hessian, need_input=i > 0)
    n = x.shape[0]
    return {p: h_p / n for p, h_p in hessian.items()}


class CurvatureEstimator:
    """`gauss_newton_diagonal` for one model and loss, built once: the model's layers are traced here, not on
    every call, and with `compiled` the whole walk (forward, then App. C's backward) is one torch.compile'd
    function, its elementwise work fused (the estimate on 500 patterns costs a few convolutions' time).
    Call it with (x, targets); it returns {parameter: h averaged over the patterns}."""

    def __init__(self, model: nn.Module, loss: str, compiled: bool = False, kernel: bool | None = None):
        self.model, self.loss, self.compiled = model, loss, compiled
        # C1-S2 in C where the kernel covers the network (repro/kernels/c1s2.py): by default in compiled runs;
        # True or False to ask for it or not whatever `compiled` says (its tests, the bench's "no kernel" row)
        self.kernel = compiled if kernel is None else kernel
        self.layers = None  # traced at the first call, on its first pattern (any model of Components will do)
        self.block = None  # the C1-S2 block, matched when the layers are traced
        self.params = [p for p in model.parameters() if p.requires_grad]
        # dynamic=False: every call of a run has the same shapes (hessian_samples patterns)
        self._walk = CompileTimer(torch.compile(self.walk, dynamic=False) if compiled else self.walk, compiled)

    @property
    def compile_s(self) -> float:
        return self._walk.compile_s

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, targets: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        if self.layers is None:
            self.layers = network_layers(self.model, "SDLM's curvature estimate (App. C)", example=x[:1])
            if self.kernel:
                self.block = C1S2Block.match(self.layers)
        was_training = self.model.training
        self.model.eval()  # BatchNorm with its running statistics, as gauss_newton_diagonal
        try:
            with using_running_statistics(self.model):
                if self.block is None:
                    values, _ = self._walk(x, targets)
                else:
                    values = self._walk_after_block(x, targets)
        finally:
            self.model.train(was_training)
        return dict(zip(self.params, values))

    def _walk_after_block(self, x: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """C1-S2 forward in C, the rest of the walk compiled, then C1-S2's h in C from S2's output curvature."""
        block = self.block
        x, y1, y2 = block.forward(x)
        values, h_y2 = self._walk(y2, targets, block.LAYERS)
        for p, h_p in zip(block.params, block.curvature(x, y1, y2, h_y2)):
            i = next(i for i, q in enumerate(self.params) if q is p)
            values[i] = values[i] + h_p / x.shape[0]
        return values

    def walk(self, x: torch.Tensor, targets: torch.Tensor,
             first: int = 0) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """App. C on explicit tensors, from layer `first` on: the forward pass layer by layer, keeping each
        layer's input and output, then the curvature back from the loss. Returns h per parameter in
        `self.params`' order (zero for the layers before `first`) and, when `first` > 0, d2E/dx^2 at layer
        `first`'s input."""
        n, h, records = x.shape[0], x, []
        for layer in self.layers[first:]:
            inp = h.reshape(n, *layer.in_shape)
            h = layer.module(inp)
            records.append((layer.module, inp, h))
        hessian = {p: torch.zeros_like(p) for p in self.params}
        head, head_in, head_out = records[-1]
        g = head.loss_curvature(self.loss, head_in, head_out, targets, hessian)
        for i in range(len(records) - 2, -1, -1):
            module, inp, out = records[i]
            g = module.curvature(inp, out, g.reshape(out.shape), hessian, need_input=i > 0 or first > 0)
        return [hessian[p] / n for p in self.params], (g.reshape(x.shape) if first else None)


class SDLM(torch.optim.Optimizer):
    """Per-parameter steps eta / (mu + h_kk) applied to the gradient (Sec. III-B).

    `prepare(model, x, y, loss)` must be called before each pass: it re-estimates h_kk on the given patterns
    (with `compiled=True`, through a compiled `CurvatureEstimator`, built at the first call and kept).
    With mini-batches of B patterns the step is multiplied by B (`batch_size`), so that one update with the
    batch's mean gradient moves as far as B online updates would (paper_notes/sdlm.md)."""

    def __init__(self, params, lr: float = 0.0005, mu: float = 0.02, batch_size: int = 1):
        super().__init__(params, dict(lr=lr, mu=mu, batch_size=batch_size))
        self._estimator: CurvatureEstimator | None = None
        self._compiled_before = 0.0

    @property
    def compile_s(self) -> float:
        """Seconds its curvature estimators spent compiling (repro/phases.py)."""
        return self._compiled_before + (self._estimator.compile_s if self._estimator else 0.0)

    def prepare(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, compiled: bool = False) -> dict:
        """Re-estimate h_kk on (x, y); return the per-layer min/median/max of the effective step."""
        estimator = self._estimator
        if estimator is None or (estimator.model, estimator.loss, estimator.compiled) != (model, loss, compiled):
            self._compiled_before = self.compile_s
            estimator = self._estimator = CurvatureEstimator(model, loss, compiled)
        hessian = estimator(x, y)
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
