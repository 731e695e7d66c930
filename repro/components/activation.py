"""The `activation` switch: LeCun's scaled tanh (Sec. II-B, App. A) and its modern counterparts.

Each activation is defined by its function f and its derivative written through its output y = f(a), which
is all the online backward (dE/da = f'(a) dE/dy) and App. C's curvature rule (d2E/da2 = f'(a)^2 d2E/dy2,
the f'' term dropped) need. An activation has no weights and no connections of its own: the paper counts a
unit's squashing as part of the unit.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Component

# App. A: f(a) = A tanh(S a) with A = 1.7159 and S = 2/3, chosen so that f(+-1) = +-1 and the gain is
# close to 1 over the normal operating range.
TANH_AMPLITUDE = 1.7159
TANH_SLOPE = 2.0 / 3.0


def tanh(a: torch.Tensor) -> torch.Tensor:
    """torch.tanh, except inside torch.compile, where it is (1 - e) / (1 + e) with e = exp(-2|a|), sign restored:
    the same function to within 3e-7 (torch.tanh's own error is 2e-7) for a third of the time on one core,
    since compiled code gets a fast vectorised exp but a slow vectorised tanh. Compiled engines round
    differently from eager ones in any case (docs/speed.md); tests/test_online.py holds them together."""
    if not torch.compiler.is_compiling():
        return torch.tanh(a)
    e = torch.exp(-2.0 * a.abs())
    return torch.copysign((1.0 - e) / (1.0 + e), a)


class Activation(Component, nn.Module):
    """An elementwise squashing function; subclasses define `forward` and `derivative_from_output`."""

    def derivative_from_output(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def online_forward(self, p, x):
        y = self(x)
        return y, y

    def online_backward(self, p, y, dy, grads, need_dx=True):
        return dy * self.derivative_from_output(y)

    def curvature(self, x, y, h_y, hessian, need_input=True):
        return self.derivative_from_output(y).pow(2) * h_y

    def connections(self, y):
        return 0


class ScaledTanh(Activation):
    """LeCun's squashing function f(a) = 1.7159 tanh(2a/3) (Sec. II-B, App. A)."""

    def forward(self, a):
        return TANH_AMPLITUDE * tanh(TANH_SLOPE * a)

    def derivative_from_output(self, y):
        # f'(a) = A S (1 - tanh(S a)^2) = A S (1 - (y / A)^2)
        return (TANH_AMPLITUDE * TANH_SLOPE) * (1 - (y / TANH_AMPLITUDE).pow(2))


class Tanh(Activation):
    def forward(self, a):
        return tanh(a)

    def derivative_from_output(self, y):
        return 1 - y.pow(2)


class ReLU(Activation):
    def forward(self, a):
        return torch.relu(a)

    def derivative_from_output(self, y):
        # autograd's convention: the derivative at 0 is 0
        return (y > 0).to(y.dtype)


ACTIVATIONS: dict[str, type[Activation]] = {"scaled_tanh": ScaledTanh, "relu": ReLU, "tanh": Tanh}
