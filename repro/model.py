"""LeNet-5 (LeCun et al. 1998, Sec. II-B, Fig. 2) as one class whose components a ModelConfig switches.

Stages keep the paper's names: C1 -> S2 -> C3 -> S4 -> C5 -> F6 -> output. Shapes for a batch of N:
input (N, 1, 32, 32) [or (N, 1, 28, 28) with C1 padded by 2], C1 (N, 6, 28, 28), S2 (N, 6, 14, 14),
C3 (N, 16, 10, 10), S4 (N, 16, 5, 5), C5 (N, 120, 1, 1), F6 (N, 84), output (N, 10).
"""
from __future__ import annotations

import torch
from torch import nn

from .components import (ACTIVATIONS, C3_CONNECTIONS, HEADS, INITS, INPUTS, NORMS, POOLINGS, Conv2d,
                         FullFieldConv2d, Linear, set_evaluation_statistics)
from .config import ModelConfig, RunConfig


class LeNet5(nn.Module):
    """LeNet-5 with switchable 1998 / modern components; see repro.config.CHOICES."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        act, norm, pool = ACTIVATIONS[config.activation], NORMS[config.norm], POOLINGS[config.pooling]
        # 28x28 input: C1 is padded by 2 so that it still gives 28x28 maps and every later shape is the paper's.
        bias = not norm.replaces_bias
        self.c1 = nn.Sequential(Conv2d(1, 6, 5, padding=INPUTS[config.input].c1_padding, bias=bias),
                                *norm.layers(6), act())
        self.s2 = pool(6, config.activation)
        self.c3 = nn.Sequential(C3_CONNECTIONS[config.c3](bias), *norm.layers(16), act())
        self.s4 = pool(16, config.activation)
        self.c5 = nn.Sequential(FullFieldConv2d(16, 120, 5), act())
        self.f6 = nn.Sequential(Linear(120, 84), act())
        self.output = HEADS[config.head].make()
        INITS[config.init](self)

    @property
    def input_size(self) -> int:
        return INPUTS[self.config.input].size

    def stages(self) -> dict[str, nn.Module]:
        """The paper's layers in order, by their paper names."""
        return {"C1": self.c1, "S2": self.s2, "C3": self.c3, "S4": self.s4, "C5": self.c5, "F6": self.f6,
                "output": self.output}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> F6 output, (N, 84)."""
        if x.dim() != 4 or x.shape[1:] != (1, self.input_size, self.input_size):
            raise ValueError(f"expected input of shape (N, 1, {self.input_size}, {self.input_size}) for "
                             f"input={self.config.input}, got {tuple(x.shape)}")
        x = self.s2(self.c1(x))
        x = self.s4(self.c3(x))
        x = self.c5(x).flatten(1)
        return self.f6(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 10): RBF penalties (lower is better) for head=rbf, logits for head=linear."""
        return self.output(self.features(x))

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class labels from forward's outputs: argmin of penalties (Sec. II-B) or argmax of logits."""
        return outputs.argmin(dim=1) if HEADS[self.config.head].lower_is_better else outputs.argmax(dim=1)


def build_model(config: RunConfig) -> LeNet5:
    """The network of a run: LeNet5(config.model), its BatchNorm evaluating as the run's bn_eval says. Training
    and loading a saved run both build it here, so that a reloaded model measures what the run measured."""
    return set_evaluation_statistics(LeNet5(config.model), config.train.bn_eval)
