"""How a chunk of updates is computed for runs that stand at the same position (TrainConfig.engine).

- reference: the autograd loop, one run after another: the definition every other engine is tested against.
- fast: repro.fast.LockstepSDLM, the hand-written online SDLM step, all runs (seeds) in lockstep.
- compiled: the same step through torch.compile (pays back its ~20-40 s compile time on long runs).
"""
from __future__ import annotations

import torch

from .config import RunConfig
from .data import MNISTTensors
from .losses import LOSSES


class ReferenceEngine:
    def __init__(self, config: RunConfig, data: MNISTTensors):
        self.data, self.loss_fn, self.j = data, LOSSES[config.loss], config.train.map_j
        self.batch = config.train.batch_size

    def run_steps(self, runs, start: int, end: int) -> None:
        data, batch = self.data, self.batch
        for run in runs:
            model, optimizer = run.model, run.optimizer
            model.train()
            for step in range(start, end):
                idx = run.order[step * batch:(step + 1) * batch]
                loss = self.loss_fn(model(data.train_x[idx]), data.train_y[idx], self.j)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                run.loss_sum += loss.detach()


class LockstepEngine:
    """Packs the runs' weights and SDLM steps into one LockstepSDLM, steps it, and unpacks at chunk end."""

    def __init__(self, config: RunConfig, data: MNISTTensors, compile_step: bool):
        self.config, self.data, self.compile_step = config, data, compile_step
        self._runs, self._lockstep, self._step = None, None, None

    def run_steps(self, runs, start: int, end: int) -> None:
        from .fast import LockstepSDLM

        if self._runs != runs:  # a new group (or a run dropped out): build, and compile, once per group
            self._runs = list(runs)
            self._lockstep = LockstepSDLM(self.config, [r.model for r in runs], [r.optimizer for r in runs])
            step = self._lockstep.step_weights
            self._step = torch.compile(step, dynamic=False) if self.compile_step else step
        lockstep = self._lockstep
        lockstep.pack()  # the weights may have been reloaded, and eta or h changed, since the last chunk
        order = torch.stack([r.order[start:end] for r in runs])  # (S, T)
        losses = torch.zeros(len(runs), dtype=torch.float64)
        for t in range(end - start):
            idx = order[:, t]
            losses += self._step(lockstep.w, lockstep.steps, self.data.train_x[idx], self.data.train_y[idx])
        lockstep.unpack()
        for run, loss in zip(runs, losses):
            run.loss_sum += loss


def make_engine(config: RunConfig, data: MNISTTensors):
    if config.train.engine == "reference":
        return ReferenceEngine(config, data)
    return LockstepEngine(config, data, compile_step=config.train.engine == "compiled")
