"""The switchable building blocks of LeNet-5 and their registries (LeCun et al. 1998, Sec. II-B, App. A).

Each registry maps a config value to a factory, so `config.CHOICES` and the code cannot drift apart
(tests/test_model.py checks that every choice has an entry).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# App. A: f(a) = A tanh(S a) with A = 1.7159 and S = 2/3, chosen so that f(+-1) = +-1 and the gain is
# close to 1 over the normal operating range.
TANH_AMPLITUDE = 1.7159
TANH_SLOPE = 2.0 / 3.0


class ScaledTanh(nn.Module):
    """LeCun's squashing function f(a) = 1.7159 tanh(2a/3) (Sec. II-B, App. A)."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return TANH_AMPLITUDE * torch.tanh(TANH_SLOPE * a)


ACTIVATIONS: dict[str, type[nn.Module]] = {"scaled_tanh": ScaledTanh, "relu": nn.ReLU, "tanh": nn.Tanh}


class TrainableSubsampling(nn.Module):
    """S2/S4 (Sec. II-B): the sum of each non-overlapping 2x2 block, times one coefficient per map, plus one
    bias per map. The squashing function that follows is a separate module, so that it follows the config."""

    fan_in = 4  # inputs per unit, for LeCun's init and the connection count

    def __init__(self, channels: int):
        super().__init__()
        self.coefficient = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_sum = F.avg_pool2d(x, 2) * 4.0
        return block_sum * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def make_pooling(kind: str, channels: int, activation: str) -> nn.Module:
    """S2/S4 for a config value: the paper's trainable subsampling is squashed; pooling is not."""
    if kind == "trainable":
        return nn.Sequential(TrainableSubsampling(channels), ACTIVATIONS[activation]())
    return POOLINGS[kind]()


POOLINGS: dict[str, type[nn.Module] | None] = {
    "trainable": None,  # built by make_pooling, since it needs the channel count and the activation
    "max": lambda: nn.MaxPool2d(2),
    "avg": lambda: nn.AvgPool2d(2),
}

# Table I: the S2 feature maps (columns) that feed each of the 16 C3 maps. Sec. II-B gives the reasons:
# fewer connections, and broken symmetry so that different C3 maps extract different features.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def c3_connection_mask(table=C3_TABLE, in_maps: int = 6) -> torch.Tensor:
    """(out_maps, in_maps) bool matrix, True where Table I connects an S2 map to a C3 map."""
    mask = torch.zeros(len(table), in_maps, dtype=torch.bool)
    for out_map, in_maps_used in enumerate(table):
        mask[out_map, list(in_maps_used)] = True
    return mask


class TableConv2d(nn.Conv2d):
    """A convolution whose output map o sees only the input maps `connections[o]` (C3 under Table I).

    The weight is stored full-size, but entries outside the table are zero and are multiplied by the mask in
    forward, so they contribute nothing and receive zero gradient whatever the optimizer does.
    """

    def __init__(self, connections: torch.Tensor, kernel_size: int):
        out_maps, in_maps = connections.shape
        super().__init__(in_maps, out_maps, kernel_size)
        self.register_buffer("weight_mask", connections.to(self.weight.dtype)[:, :, None, None].clone())
        with torch.no_grad():
            self.weight.mul_(self.weight_mask)

    def fan_in_per_map(self) -> torch.Tensor:
        """Inputs to one unit of each output map (without the bias)."""
        return self.weight_mask[:, :, 0, 0].sum(dim=1) * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.weight_mask, self.bias)


class FullFieldConv2d(nn.Conv2d):
    """A convolution whose kernel covers its whole input, as C5's 5x5 kernels on S4's 5x5 maps (Sec. II-B):
    each output is one weighted sum, computed as a matrix product, which costs less than half a convolution
    call at batch size 1. On a larger input it is an ordinary convolution (the paper's point about C5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.weight.shape[-2:]:
            return super().forward(x)
        return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]


class EuclideanRBF(nn.Module):
    """The output layer (Sec. II-B, Eq. 7): y_i = sum_j (x_j - w_ij)^2, with w_i fixed (a buffer, never
    trained). The output is a penalty: the predicted class is argmin_i y_i."""

    def __init__(self, prototypes: torch.Tensor):
        super().__init__()
        self.register_buffer("prototypes", prototypes.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 84), prototypes: (10, 84) -> (N, 10)
        return (x.unsqueeze(1) - self.prototypes.unsqueeze(0)).pow(2).sum(dim=-1)


def lecun_uniform_(weight: torch.Tensor, fan_in: torch.Tensor | float) -> None:
    """App. A: uniform in [-2.4/F_i, +2.4/F_i], F_i the fan-in of the unit the weight feeds.

    `fan_in` is a scalar or one value per output unit (first dimension of `weight`)."""
    with torch.no_grad():
        bound = 2.4 / torch.as_tensor(fan_in, dtype=weight.dtype)
        bound = bound.reshape(-1, *([1] * (weight.dim() - 1))) if bound.dim() else bound
        weight.uniform_(-1.0, 1.0).mul_(bound)
