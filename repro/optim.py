"""Optimizers and per-pass learning-rate schedules, chosen by TrainConfig.optimizer / lr_schedule.

Every optimizer here has `prepare(model, x, y, loss) -> dict`, which the training loop calls before each pass
with a sample of training patterns, so the loop needs no optimizer-specific branches: SDLM re-estimates its
Hessian there (App. C), the modern optimizers do nothing.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig
from .sdlm import SDLM

# Sec. III-B: eta for passes 1-2, 3-5, 6-8, 9-12, 13-20 (and on). The widely copied version that drops the
# 0.0001 step is wrong.
PAPER_ETA = ((2, 0.0005), (5, 0.0002), (8, 0.0001), (12, 0.00005), (math.inf, 0.00001))


def paper_eta(pass_index: int) -> float:
    """eta for 0-based pass `pass_index`."""
    return next(eta for last_pass, eta in PAPER_ETA if pass_index + 1 <= last_pass)


def lr_for_pass(config: TrainConfig, pass_index: int) -> float:
    """The learning rate of a pass: config.lr times the schedule's factor (1 at pass 1)."""
    if config.lr_schedule == "paper":
        return config.lr * paper_eta(pass_index) / PAPER_ETA[0][1]
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * pass_index / config.epochs))
    return config.lr


class _NoPrepare:
    def prepare(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str) -> dict:
        return {}


class Adam(_NoPrepare, torch.optim.Adam):
    pass


class SGD(_NoPrepare, torch.optim.SGD):
    pass


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sdlm":
        return SDLM(params, lr=config.lr, mu=config.mu, batch_size=config.batch_size)
    if config.optimizer == "adam":
        return Adam(params, lr=config.lr, betas=(0.9, 0.999))  # the seed blog's betas
    return SGD(params, lr=config.lr, momentum=config.momentum)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
