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

from repro.components import REGISTRIES, Activation, Component
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
