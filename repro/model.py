"""LeNet-5 (LeCun et al. 1998, Sec. II-B, Fig. 2) as one class whose components a ModelConfig switches.

Stages keep the paper's names: C1 -> S2 -> C3 -> S4 -> C5 -> F6 -> output. Shapes for a batch of N:
input (N, 1, 32, 32) [or (N, 1, 28, 28) with C1 padded by 2], C1 (N, 6, 28, 28), S2 (N, 6, 14, 14),
C3 (N, 16, 10, 10), S4 (N, 16, 5, 5), C5 (N, 120, 1, 1), F6 (N, 84), output (N, 10).
"""
from __future__ import annotations

import torch
from torch import nn

from .components import (ACTIVATIONS, EuclideanRBF, FullFieldConv2d, TableConv2d, TrainableSubsampling,
                         c3_connection_mask, lecun_uniform_, make_pooling)
from .config import ModelConfig
from .prototypes import rbf_prototypes

INPUT_SIZE = {"32": 32, "28": 28}


class LeNet5(nn.Module):
    """LeNet-5 with switchable 1998 / modern components; see repro.config.CHOICES."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        act = ACTIVATIONS[config.activation]

        def norm(channels: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(channels)] if config.norm == "batch" else []

        # 28x28 input: pad by 2 so that C1 still gives 28x28 maps and every later shape is the paper's.
        c1_padding = 2 if config.input == "28" else 0
        self.c1 = nn.Sequential(nn.Conv2d(1, 6, 5, padding=c1_padding), *norm(6), act())
        self.s2 = make_pooling(config.pooling, 6, config.activation)
        c3_conv = TableConv2d(c3_connection_mask(), 5) if config.c3 == "table" else nn.Conv2d(6, 16, 5)
        self.c3 = nn.Sequential(c3_conv, *norm(16), act())
        self.s4 = make_pooling(config.pooling, 16, config.activation)
        self.c5 = nn.Sequential(FullFieldConv2d(16, 120, 5), act())
        self.f6 = nn.Sequential(nn.Linear(120, 84), act())
        self.output = EuclideanRBF(rbf_prototypes()) if config.head == "rbf" else nn.Linear(84, 10)
        if config.init == "lecun":
            init_lecun_(self)
        else:
            init_default_subsampling_(self)

    @property
    def input_size(self) -> int:
        return INPUT_SIZE[self.config.input]

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
        return outputs.argmin(dim=1) if self.config.head == "rbf" else outputs.argmax(dim=1)


def unit_fan_in(module: nn.Module) -> torch.Tensor | float:
    """Number of inputs to one unit that `module`'s weights feed (per output map for a Table I conv)."""
    if isinstance(module, TableConv2d):
        return module.fan_in_per_map()
    if isinstance(module, nn.Conv2d):
        return module.in_channels * module.kernel_size[0] * module.kernel_size[1]
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, TrainableSubsampling):
        return module.fan_in
    raise TypeError(f"no fan-in rule for {type(module).__name__}")


def init_lecun_(model: LeNet5) -> None:
    """App. A: every weight and bias uniform in +-2.4/F_i, F_i the fan-in of its unit.

    [assumption] Biases follow the same rule (the paper treats a bias as a weight on a constant input), and the
    subsampling coefficient's fan-in is its 4 inputs. BatchNorm, not in the paper, keeps PyTorch's init."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = unit_fan_in(module)
            lecun_uniform_(module.weight, fan_in)
            lecun_uniform_(module.bias, fan_in)
            if isinstance(module, TableConv2d):
                with torch.no_grad():
                    module.weight.mul_(module.weight_mask)
        elif isinstance(module, TrainableSubsampling):
            lecun_uniform_(module.coefficient, module.fan_in)
            lecun_uniform_(module.bias, module.fan_in)


def init_default_subsampling_(model: LeNet5) -> None:
    """PyTorch has no default for the trainable subsampling; [assumption] start it as average pooling
    (coefficient 1/4, bias 0), its nearest modern counterpart. Conv and Linear keep PyTorch's init."""
    for module in model.modules():
        if isinstance(module, TrainableSubsampling):
            with torch.no_grad():
                module.coefficient.fill_(0.25)
                module.bias.zero_()
