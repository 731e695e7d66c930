"""The `optimizer` and `lr_schedule` switches: each optimizer once, for the autograd loop and the online engine.

An optimizer value is an `OptimizerRule` class: `make` builds the torch.optim optimizer the reference loop steps;
`pack`/`unpack` move its state (SDLM's step sizes, SGD's momentum buffers, Adam's moments and step count) in and
out of stacked (S, ...) tensors for S runs in lockstep; `scalars` gives the per-update numbers as 0-dim tensors
(so a compiled step is not recompiled when they change); `update` applies one update to stacked parameters.
The online update follows torch.optim's own formulas, so both engines compute the same thing.

Every torch optimizer here has `prepare(model, x, y, loss, compiled=False) -> dict`, called before each pass with a
sample of training patterns, so the loop needs no optimizer-specific branches: SDLM re-estimates its Hessian there
(App. C), the modern optimizers do nothing.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from .sdlm import SDLM


class OptimizerFields(Protocol):
    """What this module reads of a run's training config (repro.config.TrainConfig has these fields): the
    optimizer and its schedule, nothing else, so that optim does not depend on config (which reads its
    registries) and any object with these fields will do."""

    optimizer: str
    lr: float
    lr_schedule: str
    epochs: int
    mu: float
    momentum: float
    batch_size: int

# Sec. III-B: eta for passes 1-2, 3-5, 6-8, 9-12, 13-20 (and on). The widely copied version that drops the
# 0.0001 step is wrong.
PAPER_ETA = ((2, 0.0005), (5, 0.0002), (8, 0.0001), (12, 0.00005), (math.inf, 0.00001))
ADAM_BETAS = (0.9, 0.999)  # the seed blog's
ADAM_EPS = 1e-8


def paper_eta(pass_index: int) -> float:
    """eta for 0-based pass `pass_index`."""
    return next(eta for last_pass, eta in PAPER_ETA if pass_index + 1 <= last_pass)


# lr_schedule value -> the factor of pass `pass_index` (of `epochs`), 1 at pass 1
SCHEDULES = {
    "paper": lambda pass_index, epochs: paper_eta(pass_index) / PAPER_ETA[0][1],
    "constant": lambda pass_index, epochs: 1.0,
    "cosine": lambda pass_index, epochs: 0.5 * (1 + math.cos(math.pi * pass_index / epochs)),
}


def lr_for_pass(config: OptimizerFields, pass_index: int) -> float:
    """The learning rate of a pass: config.lr times the schedule's factor."""
    return config.lr * SCHEDULES[config.lr_schedule](pass_index, config.epochs)


class _NoPrepare:
    def prepare(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, compiled: bool = False) -> dict:
        return {}


class Adam(_NoPrepare, torch.optim.Adam):
    pass


class SGD(_NoPrepare, torch.optim.SGD):
    pass


def _stack(tensors) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors]).contiguous()


class OptimizerRule:
    """One optimizer value; subclasses define every method (see the module docstring)."""

    def make(self, config: OptimizerFields, params: list) -> torch.optim.Optimizer:
        raise NotImplementedError

    def pack(self, optimizers: list, params: list[list[torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
        """Stacked state, one list entry per parameter (params[i][k]: parameter k of run i)."""
        return {}

    def unpack(self, state: dict, optimizers: list, params: list[list[torch.Tensor]]) -> None:
        pass

    def scalars(self, optimizers: list) -> dict[str, torch.Tensor]:
        """The numbers this update needs that change between updates, as 0-dim tensors (advances counters)."""
        return {}

    def update(self, params: list, grads: list, state: dict, scalars: dict) -> None:
        raise NotImplementedError


class SDLMRule(OptimizerRule):
    """w -= eps_k g, eps_k = eta / (mu + h_kk) fixed during a pass (Sec. III-B, App. C; repro/sdlm.py)."""

    def make(self, config, params):
        return SDLM(params, lr=config.lr, mu=config.mu, batch_size=config.batch_size)

    def pack(self, optimizers, params):
        per_run = [[opt.step_size(p, opt.param_groups[0]) for p in ps] for opt, ps in zip(optimizers, params)]
        return {"step_size": [_stack(steps) for steps in zip(*per_run)]}

    def update(self, params, grads, state, scalars):
        torch._foreach_addcmul_(params, grads, state["step_size"], value=-1.0)


class SGDRule(OptimizerRule):
    """torch.optim.SGD with momentum (no dampening): b = momentum b + g (b = g at the first update); w -= lr b."""

    def make(self, config, params):
        return SGD(params, lr=config.lr, momentum=config.momentum)

    def pack(self, optimizers, params):
        # a zero buffer gives b = g at the first update, as torch's missing buffer does
        per_run = [[opt.state[p].get("momentum_buffer", torch.zeros_like(p)) for p in ps]
                   for opt, ps in zip(optimizers, params)]
        self.momentum = optimizers[0].param_groups[0]["momentum"]
        return {"momentum_buffer": [_stack(bufs) for bufs in zip(*per_run)]}

    def unpack(self, state, optimizers, params):
        for i, (opt, ps) in enumerate(zip(optimizers, params)):
            for p, buf in zip(ps, state["momentum_buffer"]):
                opt.state[p]["momentum_buffer"] = buf[i].clone()

    def scalars(self, optimizers):
        return {"lr": torch.tensor(optimizers[0].param_groups[0]["lr"])}

    def update(self, params, grads, state, scalars):
        bufs = state["momentum_buffer"]
        torch._foreach_mul_(bufs, self.momentum)
        torch._foreach_add_(bufs, grads)
        torch._foreach_add_(params, torch._foreach_mul(bufs, -scalars["lr"]))


class AdamRule(OptimizerRule):
    """torch.optim.Adam: m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2; w -= lr / (1 - b1^t) m /
    (sqrt(v) / sqrt(1 - b2^t) + eps)."""

    def make(self, config, params):
        return Adam(params, lr=config.lr, betas=ADAM_BETAS, eps=ADAM_EPS)

    def pack(self, optimizers, params):
        for opt, ps in zip(optimizers, params):
            for p in ps:  # the state torch's Adam creates at its first step
                if not opt.state[p]:
                    opt.state[p].update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                        exp_avg_sq=torch.zeros_like(p))
        self.steps = int(optimizers[0].state[params[0][0]]["step"].item())
        return {key: [_stack(opt.state[p][key] for opt, p in zip(optimizers, run_params))
                      for run_params in zip(*params)] for key in ("exp_avg", "exp_avg_sq")}

    def unpack(self, state, optimizers, params):
        for i, (opt, ps) in enumerate(zip(optimizers, params)):
            for k, p in enumerate(ps):
                opt.state[p]["exp_avg"] = state["exp_avg"][k][i].clone()
                opt.state[p]["exp_avg_sq"] = state["exp_avg_sq"][k][i].clone()
                opt.state[p]["step"] = torch.tensor(float(self.steps))

    def scalars(self, optimizers):
        self.steps += 1
        (beta1, beta2), lr = ADAM_BETAS, optimizers[0].param_groups[0]["lr"]
        return {"step_size": torch.tensor(lr / (1 - beta1 ** self.steps)),
                "bias_correction2_sqrt": torch.tensor((1 - beta2 ** self.steps) ** 0.5)}

    def update(self, params, grads, state, scalars):
        beta1, beta2 = ADAM_BETAS
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, scalars["bias_correction2_sqrt"])
        torch._foreach_add_(denom, ADAM_EPS)
        torch._foreach_addcdiv_(params, torch._foreach_mul(exp_avg, -scalars["step_size"]), denom)


# optimizer value -> its rule; an engine makes its own instance, which keeps the counters of its runs
OPTIMIZERS: dict[str, type[OptimizerRule]] = {"sdlm": SDLMRule, "adam": AdamRule, "sgd": SGDRule}


def make_optimizer(config: OptimizerFields, model: nn.Module) -> torch.optim.Optimizer:
    return OPTIMIZERS[config.optimizer]().make(config, [p for p in model.parameters() if p.requires_grad])


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
