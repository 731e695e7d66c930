"""A fast online (batch-1) SDLM step, for S seeds of one config in lockstep.

At batch size 1 the reference step (autograd over nn.Conv2d) is dominated by per-call overhead: each tiny
convolution costs ~100-300 us of dispatch while its arithmetic takes ~1 us. Here the forward and backward pass
of LeNet-5 are written out by hand as ~70 tensor operations with no autograd: convolutions as unfold + batched
matrix products, subsampling as reshapes and sums, the RBF loss's gradient in closed form (Eq. 7 and 9). Every
tensor carries a leading seed dimension S, so S seeds, each with its own weights, data order and SDLM steps,
advance together for about the cost of one. The reference path (repro.train's autograd loop) stays the
definition; tests/test_fast.py checks that both give the same weights and losses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .components import TANH_AMPLITUDE, TANH_SLOPE
from .config import RunConfig, fast_path_unsupported
from .model import LeNet5
from .sdlm import SDLM

unsupported_reason = fast_path_unsupported


def _activation(name: str):
    """(f, f' expressed through f's output) for each supported activation."""
    if name == "scaled_tanh":
        gain = TANH_AMPLITUDE * TANH_SLOPE
        return (lambda a: torch.tanh(a.mul_(TANH_SLOPE)).mul_(TANH_AMPLITUDE),
                lambda y: (1 - (y / TANH_AMPLITUDE).pow(2)).mul_(gain))
    if name == "tanh":
        return torch.tanh, lambda y: 1 - y.pow(2)
    return torch.relu, lambda y: (y > 0).to(y.dtype)


def _sum_2x2(x: torch.Tensor, maps: int, size: int) -> torch.Tensor:
    """(S, maps, 2*size, 2*size) -> (S, maps, size, size): sum of each non-overlapping 2x2 block."""
    return x.reshape(x.shape[0], maps, size, 2, size, 2).sum(dim=(3, 5))


def _spread_2x2(g: torch.Tensor) -> torch.Tensor:
    """(S, maps, n, n) -> (S, maps, 2n, 2n): each value copied to its 2x2 block (the sum's gradient)."""
    s, m, n, _ = g.shape
    return g[:, :, :, None, :, None].expand(s, m, n, 2, n, 2).reshape(s, m, 2 * n, 2 * n)


class LockstepSDLM:
    """S LeNet-5 models of one config with their SDLM optimizers, stepped together on one pattern each."""

    def __init__(self, config: RunConfig, models: list[LeNet5], optimizers: list[SDLM]):
        reason = unsupported_reason(config)
        if reason:
            raise ValueError(f"the fast path does not support {reason}; use the reference engine")
        self.config, self.models, self.optimizers = config, models, optimizers
        self.act, self.dact = _activation(config.model.activation)
        self.trainable_pool = config.model.pooling == "trainable"
        self.rbf = config.model.head == "rbf"
        self.loss, self.j = config.loss, config.train.map_j
        self.padding = 2 if config.model.input == "28" else 0
        self.names = [n for n, _ in models[0].named_parameters()]
        conv3 = models[0].c3[0]
        mask = getattr(conv3, "weight_mask", torch.ones(16, 6, 1, 1))
        self.c3_mask = mask.expand(16, 6, 5, 5).reshape(16, 150)
        if self.rbf:
            self.prototypes = models[0].output.prototypes

    def pack(self) -> None:
        """Copy the models' weights and the optimizers' current steps into stacked (S, ...) tensors."""
        params = [dict(m.named_parameters()) for m in self.models]
        self.w = {n: torch.stack([p[n].detach() for p in params]).contiguous() for n in self.names}
        steps = []
        for model, opt in zip(self.models, self.optimizers):
            group = opt.param_groups[0]
            steps.append({n: opt.step_size(p, group) for n, p in model.named_parameters()})
        self.steps = {n: torch.stack([s[n] for s in steps]).contiguous() for n in self.names}

    def unpack(self) -> None:
        """Write the stacked weights back into the models."""
        with torch.no_grad():
            for i, model in enumerate(self.models):
                for n, p in model.named_parameters():
                    p.copy_(self.w[n][i])

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SDLM update per seed on its pattern: x (S, 1, H, W), y (S,). Returns each seed's loss (S,)."""
        return self.step_weights(self.w, self.steps, x, y)

    @torch.no_grad()
    def step_weights(self, w: dict, steps: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`step` with the stacked weights and step sizes as arguments, updated in place (so that a
        torch.compile'd version is reused when they are re-packed)."""
        act, dact = self.act, self.dact
        s = x.shape[0]
        # forward; shapes for S seeds: C1 (S, 6, 784) -> S2 (S, 6, 14, 14) -> C3 (S, 16, 100) -> S4 (S, 16, 5, 5)
        cols1 = F.unfold(x, 5, padding=self.padding)  # (S, 25, 784)
        x1 = act(torch.baddbmm(w["c1.0.bias"][:, :, None], w["c1.0.weight"].view(s, 6, 25), cols1))
        sum2 = _sum_2x2(x1, 6, 14)
        x2 = self._pool(w, sum2, "s2")
        cols3 = F.unfold(x2, 5)  # (S, 150, 100)
        x3 = act(torch.baddbmm(w["c3.0.bias"][:, :, None], w["c3.0.weight"].view(s, 16, 150), cols3))
        sum4 = _sum_2x2(x3, 16, 5)
        x4 = self._pool(w, sum4, "s4").reshape(s, 400)
        x5 = act(torch.baddbmm(w["c5.0.bias"][:, :, None], w["c5.0.weight"].view(s, 120, 400), x4[:, :, None]))
        x6 = act(torch.baddbmm(w["f6.0.bias"][:, :, None], w["f6.0.weight"], x5))  # (S, 84, 1)
        grads = {}
        loss, dx6 = self._head(w, x6[:, :, 0], y, grads)
        # backward: d = dE/d(pre-activation) of each layer
        d6 = dx6 * dact(x6[:, :, 0])  # (S, 84)
        grads["f6.0.weight"] = d6[:, :, None] * x5[:, None, :, 0]
        grads["f6.0.bias"] = d6
        d5 = torch.bmm(d6[:, None, :], w["f6.0.weight"])[:, 0] * dact(x5[:, :, 0])  # (S, 120)
        grads["c5.0.weight"] = (d5[:, :, None] * x4[:, None, :]).view_as(w["c5.0.weight"])
        grads["c5.0.bias"] = d5
        dx4 = torch.bmm(d5[:, None, :], w["c5.0.weight"].view(s, 120, 400)).view(s, 16, 5, 5)
        dx3 = self._pool_backward(w, dx4, sum4, x4.view(s, 16, 5, 5), "s4", grads).reshape(s, 16, 100)
        d3 = dx3 * dact(x3)
        grads["c3.0.weight"] = (torch.bmm(d3, cols3.transpose(1, 2)) * self.c3_mask).view_as(w["c3.0.weight"])
        grads["c3.0.bias"] = d3.sum(dim=2)
        dx2 = F.fold(torch.bmm(w["c3.0.weight"].view(s, 16, 150).transpose(1, 2), d3), (14, 14), 5)
        dx1 = self._pool_backward(w, dx2, sum2, x2, "s2", grads).reshape(s, 6, -1)
        d1 = dx1 * dact(x1)
        grads["c1.0.weight"] = torch.bmm(d1, cols1.transpose(1, 2)).view_as(w["c1.0.weight"])
        grads["c1.0.bias"] = d1.sum(dim=2)
        params = [w[n] for n in self.names]
        torch._foreach_addcmul_(params, [grads[n] for n in self.names], [steps[n] for n in self.names],
                                value=-1.0)
        return loss

    def _pool(self, w: dict, block_sum: torch.Tensor, layer: str) -> torch.Tensor:
        if not self.trainable_pool:
            return block_sum * 0.25  # average pooling, not squashed
        coef, bias = w[f"{layer}.0.coefficient"], w[f"{layer}.0.bias"]
        return self.act(torch.addcmul(bias[:, :, None, None], coef[:, :, None, None], block_sum))

    def _pool_backward(self, w, dout, block_sum, out, layer, grads) -> torch.Tensor:
        if not self.trainable_pool:
            return _spread_2x2(dout * 0.25)
        d = dout * self.dact(out)
        grads[f"{layer}.0.coefficient"] = (d * block_sum).sum(dim=(2, 3))
        grads[f"{layer}.0.bias"] = d.sum(dim=(2, 3))
        return _spread_2x2(d * w[f"{layer}.0.coefficient"][:, :, None, None])

    def _head(self, w: dict, x6: torch.Tensor, y: torch.Tensor, grads: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss (S,) and its gradient w.r.t. the F6 outputs (S, 84); a linear head's own gradients go
        into `grads`."""
        onehot = F.one_hot(y, 10).to(x6.dtype)
        if not self.rbf:
            wo, bo = w["output.weight"], w["output.bias"]
            logits = torch.baddbmm(bo[:, :, None], wo, x6[:, :, None])[:, :, 0]
            logp = logits.log_softmax(dim=1)
            g = logp.exp() - onehot
            grads["output.weight"], grads["output.bias"] = g[:, :, None] * x6[:, None, :], g
            return -(logp * onehot).sum(1), torch.bmm(g[:, None, :], wo)[:, 0]
        diff = x6[:, None, :] - self.prototypes[None]  # (S, 10, 84)
        penalties = diff.pow(2).sum(dim=2)  # Eq. 7
        loss = (penalties * onehot).sum(1)
        g = onehot
        if self.loss == "map":  # Eq. 9: dE/dy_i = [i = D] - e^{-y_i} / (e^{-j} + sum_k e^{-y_k})
            z = torch.cat([torch.full_like(penalties[:, :1], -self.j), -penalties], dim=1)
            lse = torch.logsumexp(z, dim=1)
            loss = loss + lse
            g = onehot - (-penalties - lse[:, None]).exp()
        return loss, 2 * torch.bmm(g[:, None, :], diff)[:, 0]
