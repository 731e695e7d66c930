"""What every building block of LeNet-5 defines, in one class per switch value.

A component is an `nn.Module` (its `forward` is the definition: the autograd model `LeNet5` is built from these
modules and every engine is tested against it) plus four things the rest of the project asks of it:

- `online_forward(p, x) -> (y, ctx)` and `online_backward(p, ctx, dy, grads, need_dx) -> dx`: the same map and
  its hand-written gradient on *stacked* tensors, for the online engine (repro/online.py). `p` holds this
  module's parameters (and running statistics) with a leading run dimension S; activations are (S, B, ...), B
  patterns per run. Parameter gradients are written into `grads` under the local parameter name, summed over B
  (the engine's loss is already a mean over B).
- `curvature(x, y, h_y, hessian, need_input) -> h_x`: App. C's diagonal Gauss-Newton rule on a batch (N, ...)
  of this module's inputs and outputs, adding d2E/dw2 of its own parameters into `hessian` (keyed by
  parameter); the first layer is told its h_x is not needed (it may return None);
- `connections(y) -> int`: multiply-accumulates per pattern, as the paper counts them (Sec. II-B), given the
  module's output for one pattern;
- `loss_curvature(loss, x, y, targets, hessian)`, for the last layer only: where App. C's backward pass starts.

A component that lacks one of them raises NotImplementedError naming itself. tests/test_components.py is
generated over every registry: each leaf of each switch value must define these methods itself, and its curvature
and connection count must be sound; tests/test_online.py checks its online forward and backward against
autograd, generated the same way. So a new switch value cannot ship half-defined.
"""
from __future__ import annotations

import torch

from .losses import output_curvature


class Component:
    """Mixin for the project's nn.Modules; see the module docstring for the contract."""

    # buffers that change during training (BatchNorm's running statistics) and travel with the parameters
    online_state: tuple[str, ...] = ()

    def online_forward(self, p: dict, x: torch.Tensor) -> tuple[torch.Tensor, object]:
        raise NotImplementedError(f"{type(self).__name__} has no online forward")

    def online_backward(self, p: dict, ctx, dy: torch.Tensor, grads: dict, need_dx: bool = True):
        raise NotImplementedError(f"{type(self).__name__} has no online backward")

    def curvature(self, x: torch.Tensor, y: torch.Tensor, h_y: torch.Tensor, hessian: dict,
                  need_input: bool = True) -> torch.Tensor | None:
        raise NotImplementedError(f"{type(self).__name__} has no Gauss-Newton curvature rule (App. C)")

    def connections(self, y: torch.Tensor) -> int:
        raise NotImplementedError(f"{type(self).__name__} has no connection count")

    def loss_curvature(self, loss: str, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor,
                       hessian: dict) -> torch.Tensor:
        """App. C's start: the curvature of the loss w.r.t. this module's input, when it is the last layer
        (the loss's curvature at the outputs, through `curvature`). The RBF head overrides it."""
        return self.curvature(x, y, output_curvature(loss, y, targets), hessian)


def per_map(v: torch.Tensor) -> torch.Tensor:
    """(S, maps) -> (S, 1, maps, 1, 1): one value per run and map, to broadcast over (S, B, maps, H, W)."""
    return v[:, None, :, None, None]


def sum_2x2(x: torch.Tensor) -> torch.Tensor:
    """(..., 2n, 2m) -> (..., n, m): the sum of each non-overlapping 2x2 block."""
    *lead, h, w = x.shape
    return x.reshape(*lead, h // 2, 2, w // 2, 2).sum(dim=(-3, -1))


def spread_2x2(g: torch.Tensor) -> torch.Tensor:
    """(..., n, m) -> (..., 2n, 2m): each value copied to its 2x2 block (the gradient of `sum_2x2`)."""
    *lead, n, m = g.shape
    return g[..., :, None, :, None].expand(*lead, n, 2, m, 2).reshape(*lead, 2 * n, 2 * m)


def blocks_2x2(x: torch.Tensor) -> torch.Tensor:
    """(..., 2n, 2m) -> (..., n, m, 4): each 2x2 block's values in row-major order (max-pooling's scan order)."""
    *lead, h, w = x.shape
    return x.reshape(*lead, h // 2, 2, w // 2, 2).transpose(-3, -2).reshape(*lead, h // 2, w // 2, 4)


def unblock_2x2(b: torch.Tensor) -> torch.Tensor:
    """The inverse of `blocks_2x2`: (..., n, m, 4) -> (..., 2n, 2m)."""
    *lead, n, m, _ = b.shape
    return b.reshape(*lead, n, m, 2, 2).transpose(-3, -2).reshape(*lead, 2 * n, 2 * m)


def trace_leaves(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]:
    """Run the model once on x, returning (leaf module, its input, its output) in execution order."""
    records = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: records.append((mod, inp[0], out)))
             for m in model.modules() if len(list(m.children())) == 0]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return records
