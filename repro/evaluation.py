"""Evaluation after each pass (Sec. III-B's per-pass error curves): a model's outputs, error rate and loss on a
whole set, at inference speed.

A paper-protocol run evaluates the 60,000 training and 10,000 test patterns after each of its 20 passes: 1.4
million forward passes, as many as a pass of updates has. So they run without autograd, in large batches, and,
for runs whose engine is compiled, through torch.compile at one fixed batch shape (the last batch is padded
and its padding dropped): one compilation per run, the elementwise work fused into the convolutions' neighbours.
There, C1 and S2 run in C where the kernel covers the network (repro/kernels/c1s2.py), as in the curvature estimate.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .components import LOSSES
from .kernels.c1s2 import C1S2Block
from .layers import network_layers
from .phases import CompileTimer

EVAL_BATCH = 1000


class Evaluator:
    """`evaluator(x, y)` -> {"error_pct", "loss", "predictions", "outputs"} for one model, in eval mode.

    `outputs` are the network's (N, 10) outputs (RBF penalties or logits); `compiled` compiles the forward pass
    once, for batches of `batch` patterns."""

    def __init__(self, model: nn.Module, loss: str, j: float, compiled: bool = False, batch: int = EVAL_BATCH):
        self.model, self.loss, self.j, self.batch, self.compiled = model, loss, j, batch, compiled
        self.block = None
        if compiled:  # C1-S2 in C where the kernel covers the network (repro/kernels/c1s2.py), the rest compiled
            self.layers = network_layers(model, "the compiled evaluation")
            self.block = C1S2Block.match(self.layers)
        if self.block is None:
            self._forward = CompileTimer(torch.compile(model, dynamic=False) if compiled else model, compiled)
        else:
            self._after_block = CompileTimer(torch.compile(self.block.after, dynamic=False), True)
            self._forward = lambda x: self._after_block(self.layers, self.block.forward(x, keep_c1=False)[2])

    @property
    def compile_s(self) -> float:
        return (self._forward if self.block is None else self._after_block).compile_s

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                parts = []
                for i in range(0, len(x), self.batch):
                    chunk = x[i:i + self.batch]
                    short = self.batch - len(chunk)
                    if self.compiled and short:  # one shape, one compiled graph: pad, then drop the padding
                        chunk = F.pad(chunk, (0, 0, 0, 0, 0, 0, 0, short))
                    parts.append(self._forward(chunk)[:len(chunk) - short if self.compiled else None])
                return torch.cat(parts).clone()  # a normal tensor, usable outside inference mode
        finally:
            self.model.train(was_training)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        outputs = self.outputs(x)
        predictions = self.model.predict(outputs)
        return {"error_pct": 100.0 * (predictions != y).double().mean().item(),
                "loss": LOSSES[self.loss](outputs, y, self.j).item(), "predictions": predictions,
                "outputs": outputs}


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, j: float) -> dict:
    """Error rate (%), mean loss, predictions and outputs of `model` on (x, y), eagerly."""
    return Evaluator(model, loss, j)(x, y)
