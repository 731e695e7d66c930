"""The online engine: S runs of one config stepped together, each on its own B patterns (B = 1: the paper's
online updates), with the forward and backward pass written by hand and no autograd.

At batch size 1 the autograd step is dominated by per-call overhead: each tiny convolution costs ~100-300 us of
dispatch while its arithmetic takes ~1 us. Here the network is the sequence of its components, read once from
a built `LeNet5` (its leaf modules in execution order, with their shapes), and each component steps itself with
its own `online_forward` / `online_backward` (repro/components/): nothing of the network is restated here. Every
tensor carries a leading run dimension S, so S seeds, each with its own weights, data order and optimizer state,
advance for about the cost of one. The optimizer's update is its `OptimizerRule` (repro/optim.py).

The autograd model stays the definition: tests/test_online.py checks, for every switch value of both presets,
that this engine's losses and weights equal the reference loop's.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch

from .components import LOSSES
from .config import RunConfig
from .layers import Layer, network_layers
from .model import LeNet5
from .optim import OPTIMIZERS


def reset_compile_caches() -> None:
    """torch.compile caches graphs per code object, and every engine (and every run's curvature estimator and
    evaluator) compiles the same methods: after 8 of them it would silently fall back to eager. A process drives
    one group of runs at a time, so each drive starts from empty caches (torch's on-disk cache still saves most
    of the compile)."""
    torch._dynamo.reset()


# Compiled: updates unrolled into one call of the compiled function, so that its fixed cost per call (guards,
# wrapper, argument handling) is paid once for several updates; more updates per call compile for longer.
UPDATES_PER_CALL = 4


class OnlineEngine:
    """S models of one config with their optimizers, stepped together on one mini-batch (often one pattern)
    each. `pack` copies the models' and optimizers' state into stacked tensors, `run` and `step` update those
    in place, `unpack` writes them back; between `pack` and `unpack` the models themselves are not touched."""

    def __init__(self, config: RunConfig, models: list[LeNet5], optimizers: list, compile_step: bool = False,
                 reset_compiler: bool = True, backend: str | Callable = "inductor"):
        self.config, self.models, self.optimizers = config, models, optimizers
        self.layers = network_layers(models[0])
        self.loss, self.j = LOSSES[config.loss], config.train.map_j
        self.rule = OPTIMIZERS[config.train.optimizer]()
        self.param_names = [f"{layer.prefix}.{n}" for layer in self.layers for n in layer.params]
        self.state_names = [f"{layer.prefix}.{n}" for layer in self.layers for n in layer.state]
        trainable = [n for n, p in models[0].named_parameters() if p.requires_grad]
        if sorted(trainable) != sorted(self.param_names):
            raise TypeError(f"the online engine would not update {sorted(set(trainable) - set(self.param_names))}")
        self.compiled, self._warm = compile_step, set()
        self.compile_s = 0.0  # seconds spent compiling (the first call of each shape)
        self.clock = time.perf_counter  # a seam: a test counts the compiling calls with a fake clock
        self.updates_per_call = UPDATES_PER_CALL if compile_step else 1
        if compile_step and reset_compiler:
            reset_compile_caches()
        # cpp_wrapper: the compiled graph's kernels are called from C++, not Python (less overhead per call).
        # A `backend` other than inductor (torch.compile's "eager", or a function of the traced graph) traces and
        # guards as a compiled engine does but runs the traced graph as it is: the quick tests check the compiled
        # engine's grouping of updates in seconds that way (inductor takes ~30 s)
        # dynamic=False: one graph per shape, specialised to it (the engine calls two shapes only)
        self.compile_options = {"backend": backend, "dynamic": False,
                                "options": {"cpp_wrapper": True} if backend == "inductor" else None}
        self._run = torch.compile(self.run_tensors, **self.compile_options) if compile_step else self.run_tensors

    def _model_params(self) -> list[list[torch.Tensor]]:
        out = []
        for model in self.models:
            named = dict(model.named_parameters())
            out.append([named[n] for n in self.param_names])
        return out

    def pack(self) -> None:
        """Stack the models' parameters and running statistics and the optimizers' state."""
        per_model = self._model_params()
        self.params = {n: torch.stack([ps[k].detach() for ps in per_model]).contiguous()
                       for k, n in enumerate(self.param_names)}
        buffers = [dict(m.named_buffers()) for m in self.models]
        self.state = {n: torch.stack([b[n] for b in buffers]).contiguous() for n in self.state_names}
        self.opt_state = self.rule.pack(self.optimizers, per_model)

    def unpack(self) -> None:
        """Write the stacked parameters, running statistics and optimizer state back into the runs."""
        per_model = self._model_params()
        with torch.no_grad():
            for i, model in enumerate(self.models):
                for k, name in enumerate(self.param_names):
                    per_model[i][k].copy_(self.params[name][i])
                buffers = dict(model.named_buffers())
                for name in self.state_names:
                    buffers[name].copy_(self.state[name][i])
        self.rule.unpack(self.opt_state, self.optimizers, per_model)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One update per run: x (S, B, 1, H, W), y (S, B). Returns each run's loss (S,), the mean over its B."""
        return self.run(x[:, None], y[:, None])

    def run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """T updates per run: x (S, T, B, 1, H, W), y (S, T, B). Returns each run's summed loss (S,) in float64.

        A compiled engine takes them `updates_per_call` at a time, and the rest one at a time: two shapes, two
        compiled graphs, each reused; the guards that check a call's inputs are skipped after the first call
        of each shape (their inputs never change type, shape or structure)."""
        with (torch.compiler.set_stance("default", skip_guard_eval_unsafe=True) if self.compiled
              else contextlib.nullcontext()):
            return self._run_groups(x, y)

    def _run_groups(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(x.shape[0], dtype=torch.float64)
        s, steps, k = x.shape[0], x.shape[1], self.updates_per_call
        groups = steps // k
        if groups:
            # (groups, S, k, ...), contiguous: each call's inputs then have the same strides whatever the chunk's
            # length (a compiled graph is specialised to its inputs' strides, size-1 dimensions included)
            # (.contiguous() would keep the odd strides of size-1 dimensions; a clone to contiguous_format does not)
            xg, yg = (v[:, :groups * k].reshape(s, groups, k, *v.shape[2:]).transpose(0, 1)
                      .clone(memory_format=torch.contiguous_format) for v in (x, y))
            for g in range(groups):
                total += self._call(self._scalars(k), xg[g], yg[g])
        for t in range(groups * k, steps):
            xt, yt = (v[:, t:t + 1].clone(memory_format=torch.contiguous_format) for v in (x, y))
            total += self._call(self._scalars(1), xt, yt)
        return total

    def _scalars(self, n: int) -> dict[str, torch.Tensor]:
        """The optimizer's per-update numbers for the next n updates, stacked: {name: (n,)}."""
        scalars = [self.rule.scalars(self.optimizers) for _ in range(n)]
        return {key: torch.stack([s[key] for s in scalars]) for key in scalars[0]}

    def _call(self, scalars: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One call of the (compiled) step, inside `run`'s guard-skipping stance once a shape is warm."""
        if not self.compiled or x.shape in self._warm:
            try:
                return self._run(self.params, self.state, self.opt_state, scalars, x, y)
            except RuntimeError as exc:  # raised before the graph runs, so nothing has been updated yet
                if not self.compiled or "Recompilation triggered" not in str(exc):
                    raise
        self._warm.add(x.shape)  # the first call of a shape compiles it, with every guard checked
        start = self.clock()
        try:
            with torch.compiler.set_stance("default"):
                return self._run(self.params, self.state, self.opt_state, scalars, x, y)
        finally:
            self.compile_s += self.clock() - start

    def run_tensors(self, params: dict, state: dict, opt_state: dict, scalars: dict, x: torch.Tensor,
                    y: torch.Tensor) -> torch.Tensor:
        """`run` on explicit tensors for x.shape[1] updates (unrolled when compiled); summed loss (S,)."""
        total = self.step_tensors(params, state, opt_state, {k: v[0] for k, v in scalars.items()}, x[:, 0], y[:, 0])
        for t in range(1, x.shape[1]):
            total = total + self.step_tensors(params, state, opt_state, {k: v[t] for k, v in scalars.items()},
                                              x[:, t], y[:, t])
        return total

    @torch.no_grad()
    def step_tensors(self, params: dict, state: dict, opt_state: dict, scalars: dict, x: torch.Tensor,
                     y: torch.Tensor) -> torch.Tensor:
        """`step` on explicit tensors, updated in place, so that a torch.compile'd version is reused when they
        are re-packed."""
        s, b = y.shape
        h, contexts = x, []
        for layer in self.layers:
            p = self._local(layer, params, state)
            h, ctx = layer.module.online_forward(p, h.reshape(s, b, *layer.in_shape))
            contexts.append(ctx)
        loss, g = self.loss.online(h, y, self.j)
        grads: dict[str, torch.Tensor] = {}
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            local: dict[str, torch.Tensor] = {}
            g = layer.module.online_backward(self._local(layer, params, state), contexts[i],
                                             g.reshape(s, b, *layer.out_shape), local, need_dx=i > 0)
            for n, grad in local.items():
                grads[f"{layer.prefix}.{n}"] = grad
        self.rule.update([params[n] for n in self.param_names], [grads[n] for n in self.param_names],
                         opt_state, scalars)
        return loss

    @staticmethod
    def _local(layer: Layer, params: dict, state: dict) -> dict[str, torch.Tensor]:
        p = {n: params[f"{layer.prefix}.{n}"] for n in layer.params}
        p.update({n: state[f"{layer.prefix}.{n}"] for n in layer.state})
        return p
