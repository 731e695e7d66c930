"""The network as a chain of its leaf components, traced once: what the online engine steps and what SDLM's
curvature estimate (repro/sdlm.py) walks, without hooks or a re-trace on every call."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .components import Component
from .components.base import trace_leaves


@dataclass(frozen=True)
class Layer:
    """One leaf module of the network, where its parameters live in the model, and its per-pattern shapes."""

    prefix: str  # e.g. "c1.0": the module's name in LeNet5, the prefix of its parameters' names
    module: Component
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: tuple[str, ...]  # local names of its trainable parameters
    state: tuple[str, ...]  # local names of its running statistics


def network_layers(model: torch.nn.Module, purpose: str = "the online engine",
                   example: torch.Tensor | None = None) -> list[Layer]:
    """The model's leaf modules in execution order, traced on one pattern (`example`, by default a blank
    LeNet-5 input; in eval mode, so that nothing in the model changes). Each must be a `Component`: `purpose`
    names what needs them in the error."""
    names = {module: name for name, module in model.named_modules()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if example is None:
                dtype = next(model.parameters()).dtype
                example = torch.zeros(1, 1, model.input_size, model.input_size, dtype=dtype)
            records = trace_leaves(model, example)
    finally:
        model.train(was_training)
    layers = []
    for module, x, y in records:
        if not isinstance(module, Component):
            raise TypeError(f"{purpose} cannot step {type(module).__name__} ({names[module]}): build the "
                            f"model from repro.components")
        params = tuple(n for n, p in module.named_parameters(recurse=False) if p.requires_grad)
        layers.append(Layer(names[module], module, tuple(x.shape[1:]), tuple(y.shape[1:]), params,
                            module.online_state))
    return layers
