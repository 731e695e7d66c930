"""The `init` switch: LeCun's uniform +-2.4/F_i (App. A) or PyTorch's default initialisation."""
from __future__ import annotations

import torch
from torch import nn

from .linear import Conv2d, Linear, TableConv2d
from .pooling import TrainableSubsampling


def unit_fan_in(module: nn.Module) -> torch.Tensor | float:
    """Number of inputs to one unit that `module`'s weights feed (per output map for a Table I conv)."""
    if isinstance(module, Conv2d):
        return module.fan_in_per_map()
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, TrainableSubsampling):
        return module.fan_in
    raise TypeError(f"no fan-in rule for {type(module).__name__}")


def init_lecun_(model: nn.Module) -> None:
    """App. A: every weight and bias uniform in +-2.4/F_i, F_i the fan-in of its unit.

    [assumption] Biases follow the same rule (the paper treats a bias as a weight on a constant input), and the
    subsampling coefficient's fan-in is its 4 inputs. BatchNorm, not in the paper, keeps PyTorch's init."""
    for module in model.modules():
        if isinstance(module, (Conv2d, Linear)):
            fan_in = unit_fan_in(module)
            lecun_uniform_(module.weight, fan_in)
            if module.bias is not None:
                lecun_uniform_(module.bias, fan_in)
            if isinstance(module, TableConv2d):
                with torch.no_grad():
                    module.weight.mul_(module.weight_mask)
        elif isinstance(module, TrainableSubsampling):
            lecun_uniform_(module.coefficient, module.fan_in)
            lecun_uniform_(module.bias, module.fan_in)


def init_default_subsampling_(model: nn.Module) -> None:
    """PyTorch has no default for the trainable subsampling; [assumption] start it as average pooling
    (coefficient 1/4, bias 0), its nearest modern counterpart. Conv and Linear keep PyTorch's init."""
    for module in model.modules():
        if isinstance(module, TrainableSubsampling):
            with torch.no_grad():
                module.coefficient.fill_(0.25)
                module.bias.zero_()


def lecun_uniform_(weight: torch.Tensor, fan_in: torch.Tensor | float) -> None:
    """App. A: uniform in [-2.4/F_i, +2.4/F_i], F_i the fan-in of the unit the weight feeds.

    `fan_in` is a scalar or one value per output unit (first dimension of `weight`)."""
    with torch.no_grad():
        bound = 2.4 / torch.as_tensor(fan_in, dtype=weight.dtype)
        bound = bound.reshape(-1, *([1] * (weight.dim() - 1))) if bound.dim() else bound
        weight.uniform_(-1.0, 1.0).mul_(bound)


# init value -> what it does to a freshly built model
INITS = {"lecun": init_lecun_, "default": init_default_subsampling_}
