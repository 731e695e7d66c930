"""Every switch value keeps the Component contract (repro/components/base.py), generated from the registries.

For each value of each registry, the model built with it is traced, and each of its leaf modules must define its
own curvature rule (App. C) and connection count (Sec. II-B) and give sound values: SDLM's h is finite, non-negative
and non-zero for every trainable parameter, under every loss its head allows. A new switch value is tested here
without anyone listing it; its online forward and backward are tested against autograd, generated the same way,
by tests/test_online.py. The engine values, listed by hand in config.CHOICES, are checked against the code that
consumes them.
"""
from __future__ import annotations

import types

import pytest
import torch
from torch import nn
from torch.func import functional_call

from repro.components import (REGISTRIES, Activation, AvgPool, BatchNorm2d, Component, Conv2d, EuclideanRBF,
                              FullFieldConv2d, Linear, MaxPool, ReLU, ScaledTanh, Tanh, TableConv2d,
                              TrainableSubsampling, c3_connection_mask)
from repro.components.base import trace_leaves
from repro.config import CHOICES, HEAD_LOSSES, MODEL_KEYS, ConfigError, run_config
from repro.counts import layer_counts
from repro.engines import COMPILE_MIN_UPDATES, REFERENCE_MIN_BATCH, LockstepEngine, ReferenceEngine, \
    compiled_phases, make_engine, resolve_engine
from repro.model import LeNet5
from repro.sdlm import gauss_newton_diagonal

# what each leaf module must define for itself, rather than inherit Component's NotImplementedError
CONTRACT = ("online_forward", "online_backward", "curvature", "connections")


def switch_values() -> list:
    return [pytest.param(switch, value, id=f"{switch}={value}")
            for switch, registry in REGISTRIES.items() for value in registry]


def built_with(switch: str, value: str):
    """The model of the first preset that accepts `switch=value` (its head's first loss where the head changes),
    and that config."""
    over = {switch: value}
    if switch == "head":
        over["loss"] = HEAD_LOSSES[value][0]
    for preset in ("paper", "modern"):
        try:
            config = run_config(preset, over)
        except ConfigError:
            continue
        torch.manual_seed(0)
        return LeNet5(config.model), config
    pytest.fail(f"{switch}={value} is possible under neither preset")


def patterns(model: LeNet5, n: int = 8):
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(n, 1, model.input_size, model.input_size, generator=gen) * 1.275 - 0.1
    return x, torch.arange(n) % 10


def test_the_model_switches_are_the_registries():
    assert MODEL_KEYS == tuple(REGISTRIES)
    for switch, registry in REGISTRIES.items():
        assert CHOICES[switch] == tuple(registry) and len(registry) >= 2, switch


@pytest.mark.parametrize("switch,value", switch_values())
def test_every_leaf_defines_the_contract(switch, value):
    model, _ = built_with(switch, value)
    model.eval()
    with torch.no_grad():
        leaves = trace_leaves(model, patterns(model)[0])
    assert leaves
    for module, _, y in leaves:
        assert isinstance(module, Component), f"{type(module).__name__} is not a repro.components Component"
        for method in CONTRACT:
            assert getattr(type(module), method) is not getattr(Component, method), \
                f"{type(module).__name__} does not define {method}"
        count = module.connections(y[:1])
        # a unit's squashing is counted with the unit (Sec. II-B): activations add no connection, everything else does
        expected_positive = not isinstance(module, Activation)
        assert isinstance(count, int) and (count > 0) == expected_positive, (type(module).__name__, count)


@pytest.mark.parametrize("switch,value", switch_values())
def test_every_layer_has_parameters_or_connections(switch, value):
    model, _ = built_with(switch, value)
    for layer in layer_counts(model):
        assert layer.connections > 0 or layer.params > 0, layer


@pytest.mark.parametrize("switch,value", switch_values())
def test_the_curvature_is_sound_under_every_loss(switch, value):
    model, config = built_with(switch, value)
    x, y = patterns(model)
    trainable = {p for p in model.parameters() if p.requires_grad}
    names = {p: n for n, p in model.named_parameters()}
    for loss in HEAD_LOSSES[config.model.head]:
        hessian = gauss_newton_diagonal(model, x, y, loss)
        assert set(hessian) == trainable
        for p, h in hessian.items():
            assert h.shape == p.shape, names[p]
            assert torch.isfinite(h).all() and (h >= 0).all(), (loss, names[p])
            assert h.sum() > 0, f"{names[p]} gets no curvature under loss={loss}"


def _fake_data(n: int):
    return types.SimpleNamespace(train_y=torch.zeros(n, dtype=torch.long))


@pytest.mark.parametrize("engine", CHOICES["engine"])
def test_every_engine_value_builds_its_engine(engine):
    config = run_config("paper", {"engine": engine})
    built = make_engine(config, _fake_data(600))
    expected = {"reference": ReferenceEngine, "online": LockstepEngine, "compiled": LockstepEngine}
    resolved = resolve_engine(config, 600)
    assert resolved in expected and resolved == (engine if engine != "auto" else "online")
    assert isinstance(built, expected[resolved])
    if isinstance(built, LockstepEngine):
        assert built.compiled == (resolved == "compiled")


@pytest.mark.parametrize("overrides,n_train,engine", [
    ({}, 60_000, "compiled"),  # the paper's protocol: 1.2 million online updates pay back the compile time
    ({"epochs": 1}, COMPILE_MIN_UPDATES - 1, "online"),
    ({"epochs": 1}, COMPILE_MIN_UPDATES, "compiled"),
    ({"batch_size": REFERENCE_MIN_BATCH - 1, "epochs": 1}, 60_000, "online"),  # 4,000 updates
    ({"batch_size": REFERENCE_MIN_BATCH}, 60_000, "reference"),
    ({"batch_size": 64, "optimizer": "adam"}, 60_000, "reference"),  # the seed blog's protocol
    ({"engine": "online"}, 60_000, "online"),  # an explicit engine is kept
])
def test_engine_auto_follows_its_rule(overrides, n_train, engine):
    assert resolve_engine(run_config("paper", overrides), n_train) == engine


@pytest.mark.parametrize("overrides,n_train,curvature,evaluation", [
    ({}, 60_000, True, True),  # the paper's protocol: 2,400 estimates, 1.4 million patterns evaluated
    ({"epochs": 2}, 60_000, True, True),  # lenet5 bench's whole run: 240 estimates, 140,000 patterns
    ({"epochs": 2}, 15_000, False, False),  # 60 estimates, 50,000 patterns: compiling would not pay back
    ({"hessian_every": 0}, 60_000, False, True),  # h before each pass only: 20 estimates
    ({"optimizer": "adam", "lr": 0.001}, 60_000, False, True),  # no curvature at all
    ({"engine": "online"}, 60_000, False, False),  # an eager engine compiles nothing
])
def test_a_compiled_run_compiles_its_curvature_and_evaluation_where_that_pays(overrides, n_train, curvature,
                                                                             evaluation):
    assert compiled_phases(run_config("paper", overrides), n_train, 10_000) == {"curvature": curvature,
                                                                               "evaluation": evaluation}


# One instance of every leaf component on a small input: (factory, shape of one pattern). Besides LeNet-5's own
# shapes there are the ones a general nn.Conv2d / nn.BatchNorm2d accepts and LeNet-5 never builds (non-square
# kernels and maps, unequal padding, several padded input maps, C5's full-field convolution on a larger or a padded
# input, which is an ordinary convolution), and 3 patterns per run: LeNet-5 trains at batch 1 with square maps,
# where a transposed or mislabelled dimension goes unseen.
COMPONENT_CASES = {
    "conv": (lambda: Conv2d(2, 3, 3), (2, 6, 6)),
    "conv_padded": (lambda: Conv2d(1, 2, 5, padding=2), (1, 6, 6)),  # C1 under input=28
    "conv_rectangular": (lambda: Conv2d(2, 3, (3, 5), padding=(2, 1)), (2, 6, 7)),
    "table_conv": (lambda: TableConv2d(c3_connection_mask()[:5], (3, 2)), (6, 5, 4)),
    "full_field_conv": (lambda: FullFieldConv2d(3, 4, 5), (3, 5, 5)),
    "full_field_conv_larger_input": (lambda: FullFieldConv2d(3, 4, 3), (3, 5, 5)),
    "full_field_conv_padded_rows": (lambda: FullFieldConv2d(2, 3, 3, padding=(1, 0)), (2, 3, 3)),
    "full_field_conv_padded_columns": (lambda: FullFieldConv2d(2, 3, 3, padding=(0, 1)), (2, 3, 3)),
    "linear": (lambda: Linear(9, 4), (9,)),
    "subsampling": (lambda: TrainableSubsampling(3), (3, 4, 6)),
    "max_pool": (MaxPool, (3, 4, 6)),
    "avg_pool": (AvgPool, (3, 4, 6)),
    "batch_norm": (lambda: BatchNorm2d(3), (3, 4, 6)),
    "scaled_tanh": (ScaledTanh, (3, 4, 4)),
    "tanh": (Tanh, (3, 4, 4)),
    "relu": (ReLU, (3, 4, 4)),
    "rbf": (lambda: EuclideanRBF(torch.randn(5, 4)), (4,)),
}


def component_case(name: str, cases: dict = COMPONENT_CASES, dtype=torch.float64) -> nn.Module:
    """cases[name]'s component, in `dtype`, with parameters and statistics away from their initial values (a
    BatchNorm scale of 1, shift of 0 and running statistics (0, 1) would hide a dropped scale or statistic)."""
    make, _ = cases[name]
    module = make().to(dtype)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=dtype) + 0.5)
        if isinstance(module, BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
        if isinstance(module, TableConv2d):
            module.weight.mul_(module.weight_mask)
    return module


def test_every_leaf_component_has_a_case():
    """The per-component tests below cover every leaf module any switch value builds: a new component must be
    given a case here."""
    leaf_types = set()
    for param in switch_values():
        model, _ = built_with(*param.values)
        leaf_types |= {type(m) for m in model.modules() if len(list(m.children())) == 0}
    assert leaf_types <= {type(make()) for make, _ in COMPONENT_CASES.values()}


@pytest.mark.parametrize("name", COMPONENT_CASES)
def test_online_forward_and_backward_are_forward_and_autograd_per_run(name):
    """The online contract (base.py), directly on each component: on stacked tensors (S runs, B patterns, ...)
    `online_forward` gives each run its own `forward` with its own parameters, shaped (S, B, ...) as forward's
    output (the engine reshapes, so a wrong shape would pass through it unseen); `online_backward` gives autograd's
    dE/dx and dE/dw summed over the B patterns, and BatchNorm's running statistics move as nn.BatchNorm2d's do."""
    s, b = 2, 3
    module = component_case(name).train()
    shape = COMPONENT_CASES[name][1]
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(s, b, *shape, generator=gen, dtype=torch.float64)
    names = [n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
    tensors = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
    # each run its own parameters and statistics
    p = {n: torch.stack([tensors[n].detach() * (1 + 0.3 * r) for r in range(s)]) for n in names}
    p |= {n: torch.stack([tensors[n].detach().clone() + r for r in range(s)]) for n in module.online_state}
    start = {n: v.clone() for n, v in p.items()}
    y, ctx = module.online_forward(p, x)
    dy = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    grads = {}
    dx = module.online_backward(p, ctx, dy, grads, need_dx=True)
    assert set(grads) == set(names)
    for r in range(s):
        run = {n: start[n][r].clone().requires_grad_(n in names) for n in start}
        xr = x[r].clone().requires_grad_()
        expected = functional_call(module, run, (xr,))
        assert y[r].shape == expected.shape and dx[r].shape == xr.shape
        torch.testing.assert_close(y[r], expected)
        wanted = torch.autograd.grad((expected * dy[r]).sum(), [xr] + [run[n] for n in names])
        torch.testing.assert_close(dx[r], wanted[0])
        for n, g in zip(names, wanted[1:]):
            torch.testing.assert_close(grads[n][r], g, msg=lambda m: f"{n}: {m}")
        for n in module.online_state:  # functional_call updated run's statistics in place, as training does
            torch.testing.assert_close(p[n][r], run[n], msg=lambda m: f"{n}: {m}")


def test_max_pooling_routes_a_tie_to_the_first_maximum_as_autograd_does():
    """MaxPool's docstring: the gradient goes to each block's first maximum, where max_pool2d's autograd sends it.
    On a constant map every block is a four-way tie, so all of it goes to each block's top-left input."""
    pool = MaxPool()
    x = torch.ones(1, 1, 2, 4, 4)
    y, index = pool.online_forward({}, x)
    dy = torch.arange(1.0, 9.0).view(1, 1, 2, 2, 2)
    dx = pool.online_backward({}, index, dy, {}, need_dx=True)
    xr = x[0].clone().requires_grad_()
    (pool(xr) * dy[0]).sum().backward()
    assert torch.equal(dx[0], xr.grad)
    assert torch.equal(dx[0, :, :, ::2, ::2], dy[0]) and dx.sum() == dy.sum()


def test_a_component_missing_a_method_names_itself():
    """base.py: a component that lacks one of the contract's methods raises NotImplementedError naming itself,
    so that an engine or SDLM reaching a half-defined switch value says which module it is."""

    class HalfDefined(Component, nn.Module):
        pass

    half, x = HalfDefined(), torch.zeros(1, 2)
    with pytest.raises(NotImplementedError, match="^HalfDefined has no online forward$"):
        half.online_forward({}, x)
    with pytest.raises(NotImplementedError, match="^HalfDefined has no online backward$"):
        half.online_backward({}, None, x, {})
    with pytest.raises(NotImplementedError, match=r"^HalfDefined has no Gauss-Newton curvature rule \(App\. C\)$"):
        half.curvature(x, x, x, {})
    with pytest.raises(NotImplementedError, match="^HalfDefined has no connection count$"):
        half.connections(x)
