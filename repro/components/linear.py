"""Weighted sums: convolutions (C1, C3 full or under Table I, C5) and fully connected layers (F6, the linear head).

Online, a convolution is an unfold (im2col) and one batched matrix product per run; C5, whose 5x5 kernels
cover S4's whole 5x5 maps (Sec. II-B), is a plain matrix product. App. C's rules for a weighted sum:
d2E/dx_j^2 = sum_i w_ij^2 d2E/da_i^2 and d2E/dw_ij^2 = sum over the connections that share w_ij of x_j^2 d2E/da_i^2.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input, conv2d_weight

from .base import Component

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


class Conv2d(Component, nn.Conv2d):
    """A convolution with a bias per map (C1; C3 with c3=full). Stride 1, as every LeNet-5 convolution."""

    def effective_weight(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def fan_in_per_map(self) -> torch.Tensor:
        """Inputs to one unit of each output map (without the bias)."""
        k = self.kernel_size[0] * self.kernel_size[1]
        return torch.full((self.out_channels,), float(self.in_channels * k))

    def online_forward(self, p, x):
        s, b, c, h, w = x.shape
        cols = F.unfold(x.reshape(s * b, c, h, w), self.kernel_size, padding=self.padding)
        cols = cols.view(s, b, cols.shape[1], cols.shape[2])  # (S, B, C*k*k, L)
        weight = self.effective_weight(p["weight"]).reshape(s, 1, self.out_channels, -1)
        y = torch.matmul(weight, cols)  # (S, B, O, L)
        if "bias" in p:
            y = y + p["bias"][:, None, :, None]
        out_h = h + 2 * self.padding[0] - self.kernel_size[0] + 1
        return y.view(s, b, self.out_channels, out_h, -1), (cols, (h, w))

    def online_backward(self, p, ctx, dy, grads, need_dx=True):
        cols, in_size = ctx
        s, b, o = dy.shape[:3]
        d = dy.reshape(s, b, o, -1)  # (S, B, O, L)
        # sum over the B patterns and L positions that share each weight
        d_flat = d.transpose(1, 2).reshape(s, o, -1)  # (S, O, B*L)
        cols_flat = cols.transpose(1, 2).reshape(s, cols.shape[2], -1)  # (S, C*k*k, B*L)
        grads["weight"] = self.effective_weight(torch.bmm(d_flat, cols_flat.transpose(1, 2)).view_as(p["weight"]))
        if "bias" in p:
            grads["bias"] = d.sum(dim=(1, 3))
        if not need_dx:
            return None
        weight = self.effective_weight(p["weight"]).reshape(s, 1, o, -1)
        dcols = torch.matmul(weight.transpose(-1, -2), d)  # (S, B, C*k*k, L)
        dx = F.fold(dcols.reshape(s * b, dcols.shape[2], -1), in_size, self.kernel_size, padding=self.padding)
        return dx.view(s, b, self.in_channels, *in_size)

    def curvature(self, x, y, h_y, hessian, need_input=True):
        weight = self.effective_weight(self.weight)
        if self.in_channels == 1:
            # the same sum as a forward convolution with batch and channels swapped: oneDNN's weight-gradient
            # kernel is slow for a single input map (C1's 500-pattern curvature: 2.3x faster this way)
            h_w = F.conv2d(x.pow(2).transpose(0, 1), h_y.transpose(0, 1), padding=self.padding).transpose(0, 1)
        else:
            h_w = conv2d_weight(x.pow(2), weight.shape, h_y, self.stride, self.padding)
        hessian[self.weight] += self.effective_weight(h_w)
        if self.bias is not None:
            hessian[self.bias] += h_y.sum(dim=(0, 2, 3))
        if not need_input:  # the first layer: its input's curvature would be thrown away
            return None
        return conv2d_input(x.shape, weight.pow(2), h_y, self.stride, self.padding)

    def connections(self, y):
        positions = y.shape[-2] * y.shape[-1]
        return int(positions * (self.fan_in_per_map() + (self.bias is not None)).sum())


class TableConv2d(Conv2d):
    """A convolution whose output map o sees only the input maps `connections[o]` (C3 under Table I).

    The weight is stored full-size, but entries outside the table are zero and are multiplied by the mask in
    forward, so they contribute nothing and receive zero gradient whatever the optimizer does.
    """

    def __init__(self, connections: torch.Tensor, kernel_size: int, bias: bool = True):
        out_maps, in_maps = connections.shape
        super().__init__(in_maps, out_maps, kernel_size, bias=bias)
        self.register_buffer("weight_mask", connections.to(self.weight.dtype)[:, :, None, None].clone())
        with torch.no_grad():
            self.weight.mul_(self.weight_mask)

    def effective_weight(self, w):
        # w is (O, C, k, k) or stacked (S, O, C, k, k): the mask broadcasts over the leading dimension
        return w * self.weight_mask

    def fan_in_per_map(self):
        return self.weight_mask[:, :, 0, 0].sum(dim=1) * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.weight_mask, self.bias)


class FullFieldConv2d(Conv2d):
    """A convolution whose kernel covers its whole input, as C5's 5x5 kernels on S4's 5x5 maps (Sec. II-B):
    each output is one weighted sum, computed as a matrix product, which costs less than half a convolution
    call at batch size 1. On a larger input it is an ordinary convolution (the paper's point about C5)."""

    def _covers(self, x: torch.Tensor) -> bool:
        return tuple(x.shape[-2:]) == tuple(self.kernel_size) and self.padding == (0, 0)

    def forward(self, x):
        if not self._covers(x):
            return super().forward(x)
        return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]

    def curvature(self, x, y, h_y, hessian, need_input=True):
        if not self._covers(x):
            return super().curvature(x, y, h_y, hessian, need_input)
        # one weighted sum per output: Linear's rule, as matrix products
        h = h_y.flatten(1)  # (N, out)
        hessian[self.weight] += (h.t() @ x.flatten(1).pow(2)).view_as(self.weight)
        hessian[self.bias] += h.sum(dim=0)
        return (h @ self.weight.flatten(1).pow(2)).view_as(x) if need_input else None

    def online_forward(self, p, x):
        if not self._covers(x):
            return super().online_forward(p, x)
        s, b = x.shape[:2]
        flat = x.reshape(s, b, -1)
        y = torch.baddbmm(p["bias"][:, None, :], flat, p["weight"].view(s, self.out_channels, -1).transpose(1, 2))
        return y.view(s, b, self.out_channels, 1, 1), (flat, None)

    def online_backward(self, p, ctx, dy, grads, need_dx=True):
        flat, in_size = ctx
        if in_size is not None:
            return super().online_backward(p, ctx, dy, grads, need_dx)
        s, b = dy.shape[:2]
        d = dy.reshape(s, b, self.out_channels)
        weight = p["weight"].view(s, self.out_channels, -1)
        grads["weight"] = torch.bmm(d.transpose(1, 2), flat).view_as(p["weight"])
        grads["bias"] = d.sum(dim=1)
        if not need_dx:
            return None
        return torch.bmm(d, weight).view(s, b, self.in_channels, *self.kernel_size)


class Linear(Component, nn.Linear):
    """A fully connected layer (F6, and the modern head's 84 -> 10)."""

    def online_forward(self, p, x):
        y = torch.baddbmm(p["bias"][:, None, :], x, p["weight"].transpose(1, 2))  # (S, B, out)
        return y, x

    def online_backward(self, p, x, dy, grads, need_dx=True):
        grads["weight"] = torch.bmm(dy.transpose(1, 2), x)
        grads["bias"] = dy.sum(dim=1)
        return torch.bmm(dy, p["weight"]) if need_dx else None

    def curvature(self, x, y, h_y, hessian, need_input=True):
        hessian[self.weight] += h_y.t() @ x.pow(2)
        hessian[self.bias] += h_y.sum(dim=0)
        return h_y @ self.weight.pow(2)

    def connections(self, y):
        return y[0].numel() * (self.in_features + 1)


# c3 value -> factory(bias) of C3's convolution (6 S2 maps -> 16 maps, 5x5)
C3_CONNECTIONS: dict[str, Callable[[bool], Conv2d]] = {
    "table": lambda bias: TableConv2d(c3_connection_mask(), 5, bias=bias),
    "full": lambda bias: Conv2d(6, 16, 5, bias=bias),
}
