"""How a chunk of updates is computed for runs that stand at the same position (TrainConfig.engine).

- reference: the autograd loop over the `LeNet5` modules, one run after another: the definition every other
  engine is tested against.
- online: repro.online.OnlineEngine, the hand-written step built from the components, all runs (seeds) of a
  group in lockstep; any switch, any batch size.
- compiled: the same step through torch.compile (pays back its compile time, ~10-60 s, on long runs).
- auto (the default): the fastest of these for the config, by `resolve_engine`'s rule, measured by `lenet5 bench`.
A compiled engine's runs compile their curvature estimate and evaluation too, where that pays (`compiled_phases`).
"""
from __future__ import annotations

import math
import time
from typing import Protocol

import torch
from torch import nn

from .components import LOSSES
from .config import RunConfig
from .data import MNISTTensors

class RunState(Protocol):
    """What an engine reads and advances of a run (repro.train.Run has these fields): the network and its
    optimizer, the pass's patterns in the order they are shown, and the pass's running loss."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    order: torch.Tensor  # the pass's pattern indices into train_x / train_y, in training order
    train_x: torch.Tensor
    train_y: torch.Tensor
    loss_sum: torch.Tensor  # float64 scalar: the pass's summed training loss so far


# auto: compile only when a group has enough updates to pay back the compile time (docs/speed.md)
COMPILE_MIN_UPDATES = 20_000
# auto: at this batch size and above, the reference loop's oneDNN convolutions beat the online engine's
# unfold + matmul (docs/speed.md)
REFERENCE_MIN_BATCH = 16


# auto: a compiled engine's runs also compile their curvature estimate and their evaluation, when the run makes
# enough of them to pay back the compile (~5-20 s each; the estimate saves ~0.1 s a call, the evaluation ~0.07 s
# per 1,000 patterns on one core): a paper-protocol run makes 2,400 estimates and evaluates 1.4 million patterns
COMPILE_MIN_ESTIMATES = 100
COMPILE_MIN_EVALUATED = 100_000


def run_workload(config: RunConfig, n_train: int, n_test: int) -> dict[str, int]:
    """What a whole run of `config` does on n_train training and n_test test patterns: its updates, its curvature
    estimates (SDLM: before each pass and every `hessian_every` updates; other optimizers: none) and the
    patterns it evaluates (both sets after every pass)."""
    cfg = config.train
    steps = math.ceil(n_train / cfg.batch_size)
    per_pass = math.ceil(steps / cfg.hessian_every) if cfg.hessian_every else 1
    return {"updates": cfg.epochs * steps, "curvature": cfg.epochs * per_pass if cfg.optimizer == "sdlm" else 0,
            "evaluation": cfg.epochs * (n_train + n_test)}


def compiled_phases(config: RunConfig, n_train: int, n_test: int) -> dict[str, bool]:
    """Whether a run's curvature estimate and evaluation compile: with a compiled engine, when they pay back."""
    compiled = resolve_engine(config, n_train) == "compiled"
    work = run_workload(config, n_train, n_test)
    return {"curvature": compiled and work["curvature"] >= COMPILE_MIN_ESTIMATES,
            "evaluation": compiled and work["evaluation"] >= COMPILE_MIN_EVALUATED}


def resolve_engine(config: RunConfig, n_train: int) -> str:
    """The engine `engine=auto` uses for `config` on `n_train` training patterns (a function of both only, so
    that the same config on the same data always takes the same engine and gives the same numbers)."""
    if config.train.engine != "auto":
        return config.train.engine
    if config.train.batch_size >= REFERENCE_MIN_BATCH:
        return "reference"
    updates = config.train.epochs * math.ceil(n_train / config.train.batch_size)
    return "compiled" if updates >= COMPILE_MIN_UPDATES else "online"


class ReferenceEngine:
    compiled, compile_s, handover_s = False, 0.0, 0.0  # steps the models themselves: nothing to hand over

    def __init__(self, config: RunConfig, data: MNISTTensors):
        self.data, self.loss_fn, self.j = data, LOSSES[config.loss], config.train.map_j
        self.batch = config.train.batch_size

    def run_steps(self, runs: list[RunState], start: int, end: int) -> None:
        batch = self.batch
        for run in runs:
            model, optimizer = run.model, run.optimizer
            model.train()
            for step in range(start, end):
                idx = run.order[step * batch:(step + 1) * batch]
                loss = self.loss_fn(model(run.train_x[idx]), run.train_y[idx], self.j)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                run.loss_sum += loss.detach()


class LockstepEngine:
    """Packs the runs' state into one OnlineEngine, steps it, and unpacks at chunk end."""

    def __init__(self, config: RunConfig, data: MNISTTensors, compile_step: bool):
        self.config, self.data, self.compiled = config, data, compile_step
        self._runs, self._online, self._compiled_before = None, None, 0.0
        self.handover_s = 0.0  # seconds packing, gathering and unpacking (repro/phases.py)

    @property
    def compile_s(self) -> float:
        """Seconds spent compiling, over every online engine this one has built."""
        return self._compiled_before + (self._online.compile_s if self._online else 0.0)

    def run_steps(self, runs: list[RunState], start: int, end: int) -> None:
        from .online import OnlineEngine

        if self._runs != runs:  # a new group (or a run dropped out): build, and compile, once per group
            self._runs, self._compiled_before = list(runs), self.compile_s
            # make_engine emptied the compile caches for this drive; the runs' estimators compile beside it
            self._online = OnlineEngine(self.config, [r.model for r in runs], [r.optimizer for r in runs],
                                        compile_step=self.compiled, reset_compiler=False)
        online, batch = self._online, self.config.train.batch_size
        handing_over = time.perf_counter()
        online.pack()  # the weights may have been reloaded, and eta or h changed, since the last chunk
        # the chunk's patterns for every run, gathered once: (S, updates, B, 1, H, W); the last update of a pass
        # may have fewer patterns than the others
        idx = [r.order[start * batch:end * batch] for r in runs]
        x = torch.stack([r.train_x[i] for r, i in zip(runs, idx)])
        y = torch.stack([r.train_y[i] for r, i in zip(runs, idx)])
        s, full = len(runs), (len(idx[0]) // batch) * batch
        self.handover_s += time.perf_counter() - handing_over
        losses = online.run(x[:, :full].reshape(s, -1, batch, *x.shape[2:]), y[:, :full].reshape(s, -1, batch))
        if full < len(idx[0]):
            losses += online.run(x[:, None, full:], y[:, None, full:])
        handing_over = time.perf_counter()
        online.unpack()
        self.handover_s += time.perf_counter() - handing_over
        for run, loss in zip(runs, losses):
            run.loss_sum += loss


def make_engine(config: RunConfig, data: MNISTTensors):
    """The engine for a drive of `config`'s runs; its `compiled` says whether the drive compiles (the runs'
    curvature estimates and evaluations then compile too)."""
    from .online import reset_compile_caches

    engine = resolve_engine(config, len(data.train_y))
    if engine == "reference":
        return ReferenceEngine(config, data)
    if engine == "compiled":
        reset_compile_caches()
    return LockstepEngine(config, data, compile_step=engine == "compiled")
