"""Trainable parameters and connections per layer, computed from a built model (Sec. II-B).

A connection, as the paper counts them, is one multiply-accumulate of a unit, the bias included: a C1 unit
has 25 input connections plus its bias, so C1 has 28*28*6*(25+1) = 122,304. Each component counts its own
(`Component.connections`, repro/components/) from its output in a forward pass; a module that is not a component
is an error, never a silent zero. Nothing here is typed in except the paper's own numbers, printed beside ours.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .components import Component, EuclideanRBF, TableConv2d
from .model import LeNet5

# Sec. II-B, Fig. 2: (trainable parameters, connections) per layer.
PAPER_COUNTS: dict[str, tuple[int, int]] = {
    "C1": (156, 122_304), "S2": (12, 5_880), "C3": (1_516, 151_600), "S4": (32, 2_000),
    "C5": (48_120, 48_120), "F6": (10_164, 10_164), "output": (0, 840),
}
PAPER_TOTALS = (60_000, 340_908)
PAPER_FIXED_OUTPUT_PARAMS = 840


@dataclass
class LayerCount:
    layer: str
    params: int  # trainable and effective: Table I's absent weights are not counted
    fixed_params: int  # parameters the model holds but never trains (the RBF prototypes)
    connections: int


def trainable_params(module: nn.Module) -> int:
    """Trainable parameters that can affect the output (masked C3 weights excluded)."""
    total = 0
    for sub in module.modules():
        for name, p in sub.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(sub, TableConv2d) and name == "weight":
                total += int(sub.weight_mask.expand_as(p).sum())
            else:
                total += p.numel()
    return total


def layer_counts(model: LeNet5) -> list[LayerCount]:
    """Per-layer counts for `model`, in the paper's layer order."""
    connections: dict[str, int] = {}
    hooks = []
    for layer, stage in model.stages().items():
        connections[layer] = 0
        for leaf in stage.modules():
            if len(list(leaf.children())) == 0:
                if not isinstance(leaf, Component):
                    raise TypeError(f"{type(leaf).__name__} in {layer} has no connection count: build the model "
                                    f"from repro.components")

                def hook(mod, _inp, out, layer=layer):
                    connections[layer] += mod.connections(out)
                hooks.append(leaf.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, model.input_size, model.input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    counts = []
    for layer, stage in model.stages().items():
        fixed = sum(b.numel() for b in stage.buffers() if isinstance(stage, EuclideanRBF))
        counts.append(LayerCount(layer, trainable_params(stage), fixed, connections[layer]))
    return counts


def totals(counts: list[LayerCount]) -> tuple[int, int]:
    return sum(c.params for c in counts), sum(c.connections for c in counts)


def format_table(counts: list[LayerCount], title: str = "") -> str:
    """A fixed-width table of ours beside the paper's, with totals."""
    def params_text(params: int, fixed: int) -> str:
        return f"{fixed:,} fixed" if fixed and not params else f"{params:,}"

    rows = [("layer", "params", "paper params", "connections", "paper connections")]
    for c in counts:
        paper_params, paper_conn = PAPER_COUNTS[c.layer]
        paper_params_text = (f"{PAPER_FIXED_OUTPUT_PARAMS:,} fixed" if c.layer == "output"
                             else f"{paper_params:,}")
        rows.append((c.layer, params_text(c.params, c.fixed_params), paper_params_text,
                     f"{c.connections:,}", f"{paper_conn:,}"))
    params, conns = totals(counts)
    rows.append(("total", f"{params:,}", f"{PAPER_TOTALS[0]:,}", f"{conns:,}", f"{PAPER_TOTALS[1]:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [title] if title else []
    for i, r in enumerate(rows):
        lines.append("  ".join(r[0].ljust(widths[0]) if j == 0 else r[j].rjust(widths[j]) for j in range(5)))
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def counts_as_dict(counts: list[LayerCount]) -> dict:
    params, conns = totals(counts)
    return {"layers": [{"layer": c.layer, "params": c.params, "fixed_params": c.fixed_params,
                        "connections": c.connections, "paper_params": PAPER_COUNTS[c.layer][0],
                        "paper_connections": PAPER_COUNTS[c.layer][1]} for c in counts],
            "total_params": params, "total_connections": conns,
            "paper_total_params": PAPER_TOTALS[0], "paper_total_connections": PAPER_TOTALS[1]}
