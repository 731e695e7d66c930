"""The online engine against the autograd reference, for every switch value of both presets, generated.

The variants are read from the registries (config.CHOICES): every single-switch variant of the paper and the
modern preset, plus a few random mixes, so a new switch value is tested here without anyone listing it.

The equality tests run in float64. In float32 a gradient that nearly cancels (a sum of terms ~1e-3 that ends at
~1e-8) keeps only its rounding noise, which differs between any two ways of computing it, and Adam divides
by that gradient's own magnitude: such an entry moves by ~lr either way, with a sign that depends on rounding.
In float64 the noise is 1e-9 times smaller, so the comparison tests the math of each component and optimizer.
The production dtype is checked by the compiled-vs-eager and float32 tests at the end.
"""
import itertools
import random

import pytest
import torch

from repro.components import LOSSES
from repro.config import CHOICES, HEAD_LOSSES, MODEL_KEYS, ConfigError, run_config
from repro.model import LeNet5
from repro.online import UPDATES_PER_CALL, OnlineEngine, network_layers
from repro.optim import make_optimizer

STEPS = 6
SEEDS = (0, 1)
# step sizes at which 6 updates stay far from divergence, so that round-off is not amplified
STABLE_LR = {"sdlm": 0.0001, "adam": 0.001, "sgd": 0.001}
SWITCHES = MODEL_KEYS + ("optimizer", "loss")


def _variant(preset: str, overrides: dict) -> dict | None:
    """The overrides with a stable step for their optimizer, or None for an impossible combination."""
    base = run_config(preset)
    optimizer = overrides.get("optimizer", base.train.optimizer)
    over = {"lr": STABLE_LR[optimizer], **overrides}
    try:
        run_config(preset, over)
    except ConfigError:
        return None
    return over


def single_switch_variants():
    for preset in ("paper", "modern"):
        yield pytest.param(preset, _variant(preset, {}), id=f"{preset}")
        base = run_config(preset).flat()
        for key in SWITCHES:
            for value in CHOICES[key]:
                if value == base[key] or value == "auto":
                    continue
                over = {key: value}
                if key == "head":  # the head brings its own loss
                    over["loss"] = HEAD_LOSSES[value][0]
                over = _variant(preset, over)
                if over is not None:
                    yield pytest.param(preset, over, id=f"{preset}-{key}={value}")


def random_mixes(count: int = 4):
    rng = random.Random(1998)
    for i in range(count):
        preset = rng.choice(("paper", "modern"))
        over = {key: rng.choice(CHOICES[key]) for key in MODEL_KEYS + ("optimizer",)}
        over["loss"] = rng.choice(HEAD_LOSSES[over["head"]])
        yield pytest.param(preset, _variant(preset, over), id=f"mix{i}-{preset}")


def _data(config, batch: int, dtype=torch.float64):
    size = LeNet5(config.model).input_size
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(len(SEEDS), STEPS, batch, 1, size, size, generator=gen) * 1.2 - 0.1
    y = torch.randint(0, 10, (len(SEEDS), STEPS, batch), generator=gen)
    hx, hy = torch.rand(16, 1, size, size, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    return x.to(dtype), y, hx.to(dtype), hy


def _fresh(config, seed, hx, hy):
    torch.manual_seed(seed)
    model = LeNet5(config.model).to(hx.dtype)
    optimizer = make_optimizer(config.train, model)
    optimizer.prepare(model, hx, hy, config.loss)
    return model, optimizer


def _reference(config, seed, xs, ys, hx, hy):
    model, optimizer = _fresh(config, seed, hx, hy)
    losses = []
    for x, y in zip(xs, ys):
        loss = LOSSES[config.loss](model(x), y, config.train.map_j)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, optimizer, torch.tensor(losses, dtype=torch.float64)


def _online(config, xs, ys, hx, hy, compile_step=False):
    runs = [_fresh(config, seed, hx, hy) for seed in SEEDS]
    engine = OnlineEngine(config, [m for m, _ in runs], [o for _, o in runs], compile_step=compile_step)
    engine.pack()
    losses = torch.stack([engine.step(xs[:, t], ys[:, t]) for t in range(STEPS)], dim=1)
    engine.unpack()
    return runs, losses.double()


def _assert_same_runs(config, runs, losses, x, y, hx, hy):
    for i, seed in enumerate(SEEDS):
        ref_model, ref_opt, ref_losses = _reference(config, seed, x[i], y[i], hx, hy)
        torch.testing.assert_close(losses[i], ref_losses, rtol=1e-5, atol=1e-5, msg=f"seed {seed} losses")
        model, optimizer = runs[i]
        ref = dict(ref_model.named_parameters())
        for name, p in model.named_parameters():
            torch.testing.assert_close(p, ref[name], rtol=1e-5, atol=1e-5, msg=f"seed {seed} {name}")
        ref_buffers = dict(ref_model.named_buffers())
        for name, b in model.named_buffers():
            torch.testing.assert_close(b, ref_buffers[name], rtol=1e-5, atol=1e-5, msg=f"seed {seed} {name}")
        # the runs really trained: every trainable parameter moved from its initial value (an engine that left
        # one layer untouched would otherwise pass wherever the reference leaves it near its start)
        init, _ = _fresh(config, seed, hx, hy)
        trained = dict(model.named_parameters())
        unmoved = [n for n, p in init.named_parameters() if p.requires_grad and torch.equal(p, trained[n])]
        assert not unmoved, f"seed {seed}: {unmoved} did not move in {STEPS} updates"
        # the optimizer's state went back into the torch optimizer, so the reference can continue from it: the
        # same entries (SDLM's h and its cached steps too, which the engine must leave as prepare() set them),
        # with the same values
        for (name, p), ref_p in zip(model.named_parameters(), ref_model.parameters()):
            state, ref_state = optimizer.state[p], ref_opt.state[ref_p]
            assert ref_state and state.keys() == ref_state.keys(), (seed, name, sorted(state), sorted(ref_state))
            for key, value in ref_state.items():
                torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-5,
                                           msg=f"seed {seed} {name} optimizer state {key}")


@pytest.mark.parametrize("batch", [1, pytest.param(3, marks=pytest.mark.slow)])
@pytest.mark.parametrize("preset, overrides", [*single_switch_variants(), *random_mixes()])
def test_online_engine_equals_reference(preset, overrides, batch):
    config = run_config(preset, {**overrides, "batch_size": batch})
    if config.train.optimizer == "sdlm":  # SDLM's step grows with the batch (repro/sdlm.py): keep it as stable
        config = run_config(preset, {**overrides, "batch_size": batch, "lr": config.train.lr / batch})
    x, y, hx, hy = _data(config, batch)
    runs, losses = _online(config, x, y, hx, hy)
    _assert_same_runs(config, runs, losses, x, y, hx, hy)


@pytest.mark.slow
@pytest.mark.parametrize("preset, overrides", [("paper", {"lr": 0.0001}),
                                               ("paper", {"lr": 0.001, "optimizer": "adam", "pooling": "max",
                                                          "norm": "batch"})])
def test_compiled_engine_equals_eager_and_reference(preset, overrides):
    """In float32, the dtype of every real run; 6 updates in one `run`: one compiled call of 4 unrolled
    updates, then two single ones (the second compiled shape)."""
    config = run_config(preset, overrides)
    x, y, hx, hy = _data(config, 1, torch.float32)
    results = []
    for compile_step in (False, True):
        runs = [_fresh(config, seed, hx, hy) for seed in SEEDS]
        engine = OnlineEngine(config, [m for m, _ in runs], [o for _, o in runs], compile_step=compile_step)
        engine.pack()
        total = engine.run(x, y)
        engine.unpack()
        results.append((runs, total))
    (eager_runs, eager_total), (compiled_runs, compiled_total) = results
    assert OnlineEngine(config, [LeNet5(config.model)], [None], compile_step=True).updates_per_call == 4
    torch.testing.assert_close(compiled_total, eager_total, rtol=1e-5, atol=1e-5)
    for i, seed in enumerate(SEEDS):
        ref_model, _, ref_losses = _reference(config, seed, x[i], y[i], hx, hy)
        torch.testing.assert_close(compiled_total[i], ref_losses.sum(), rtol=1e-5, atol=1e-5)
        ref = dict(ref_model.named_parameters())
        for (name, a), b in zip(eager_runs[i][0].named_parameters(), compiled_runs[i][0].parameters()):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
            torch.testing.assert_close(b, ref[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("preset", ["paper", "modern"])
def test_float32_online_engine_equals_reference_for_the_presets(preset):
    config = run_config(preset, {"lr": STABLE_LR[run_config(preset).train.optimizer], "batch_size": 1})
    x, y, hx, hy = _data(config, 1, torch.float32)
    runs, losses = _online(config, x, y, hx, hy)
    _assert_same_runs(config, runs, losses, x, y, hx, hy)


class GraphRecorder:
    """A torch.compile back end that runs the traced graph as it is and records each graph's input shapes: a
    compiled engine's tracing seen without inductor's half-minute compile."""

    def __init__(self):
        self.graphs = []

    def __call__(self, graph, example_inputs):
        self.graphs.append([tuple(v.shape) for v in example_inputs if isinstance(v, torch.Tensor)])
        return graph.forward


def _compiled_engine(config, runs, backend):
    engine = OnlineEngine(config, [m for m, _ in runs], [o for _, o in runs], compile_step=True, backend=backend)
    engine.clock = itertools.count().__next__  # each compiling call adds exactly 1 to compile_s
    return engine


def _eager_and_compiled(config, hx, hy, recorder):
    """[(eager engine, its runs), (compiled engine, its runs)], the same fresh runs for each, packed."""
    pairs = []
    for compile_step in (False, True):
        runs = [_fresh(config, seed, hx, hy) for seed in SEEDS]
        engine = (_compiled_engine(config, runs, recorder) if compile_step else
                  OnlineEngine(config, [m for m, _ in runs], [o for _, o in runs]))
        engine.pack()
        pairs.append((engine, runs))
    return pairs


@pytest.mark.parametrize("preset, overrides, batch", [("paper", {"lr": 0.0001}, 1),  # SDLM: no per-update scalars
                                                      ("modern", {"lr": 0.001}, 2)])  # Adam's scalars, BN's state
def test_the_compiled_path_groups_the_updates_and_changes_no_number(preset, overrides, batch):
    """The compiled engine's own bookkeeping, with a back end that runs the traced graph, so that it takes
    seconds: a run of T updates goes as T // UPDATES_PER_CALL unrolled calls and then single ones (two shapes,
    each compiled on its first call, with guards skipped after), sums each run's losses in float64, counts only
    its compiling calls as compile time, and computes what the eager engine computes."""
    config = run_config(preset, overrides)
    x, y, hx, hy = _data(config, batch, torch.float32)
    steps = 2 * UPDATES_PER_CALL + 2  # two groups, then two single updates
    x, y = (torch.cat([v, v], dim=1)[:, :steps] for v in (x, y))  # _data has STEPS < steps updates per run
    recorder = GraphRecorder()
    (eager, eager_runs), (compiled, compiled_runs) = _eager_and_compiled(config, hx, hy, recorder)
    eager_total, compiled_total = eager.run(x, y), compiled.run(x, y)
    eager.unpack()
    compiled.unpack()
    assert not eager.compiled and eager.updates_per_call == 1 and eager.compile_s == 0.0
    assert compiled.updates_per_call == UPDATES_PER_CALL > 1
    # each shape's first call compiles (one group shape, one single); a call may compile again where dynamo
    # breaks the graph (as under mutation testing's trampolines), but only a call that compiles counts
    assert 2 <= compiled.compile_s <= 4  # 4 calls: two groups, two single updates
    assert recorder.graphs  # traced by the back end it was given (a graph break would make more than two graphs)
    assert compiled._warm == {x[:, :UPDATES_PER_CALL].shape, x[:, :1].shape}
    assert eager_total.dtype == compiled_total.dtype == torch.float64
    torch.testing.assert_close(compiled_total, eager_total, rtol=1e-6, atol=1e-6)
    for (eager_model, eager_opt), (compiled_model, compiled_opt) in zip(eager_runs, compiled_runs):
        for (name, a), b in zip(eager_model.named_parameters(), compiled_model.parameters()):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=name)
        for (name, a), b in zip(eager_model.named_buffers(), compiled_model.buffers()):  # BatchNorm's statistics
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=name)
        for a, b in zip(eager_model.parameters(), compiled_model.parameters()):  # Adam's moments, SDLM's h
            assert eager_opt.state[a].keys() == compiled_opt.state[b].keys()
            for key, value in eager_opt.state[a].items():
                torch.testing.assert_close(compiled_opt.state[b][key], value, rtol=1e-5, atol=1e-7, msg=key)


def test_a_warm_shape_whose_graph_was_dropped_is_compiled_again():
    """A compiled engine built later resets torch.compile's caches, dropping this engine's graphs: its next call of
    a warm shape fails the guard-skipping stance ("Recompilation triggered") before anything is updated, and is
    compiled again, counted as compile time; the numbers stay those of the eager engine."""
    config = run_config("paper", {"lr": 0.0001})
    x, y, hx, hy = _data(config, 1, torch.float32)
    recorder = GraphRecorder()
    engines = [engine for engine, _ in _eager_and_compiled(config, hx, hy, recorder)]
    for engine in engines:
        engine.run(x[:, :1], y[:, :1])
    eager, compiled = engines
    traced = len(recorder.graphs)
    assert compiled.compile_s == 1 and traced
    later = [_fresh(config, 0, hx, hy)]
    _compiled_engine(config, later, GraphRecorder())  # resets the caches
    totals = [engine.run(x[:, 1:2], y[:, 1:2]) for engine in engines]
    assert compiled.compile_s == 2 and len(recorder.graphs) > traced  # traced again
    torch.testing.assert_close(totals[1], totals[0], rtol=1e-6, atol=1e-6)
    for name in eager.params:
        torch.testing.assert_close(compiled.params[name], eager.params[name], rtol=1e-6, atol=1e-7, msg=name)


def test_an_engine_is_eager_unless_asked_and_compiles_with_inductor_by_default():
    config, model = run_config("paper"), LeNet5()
    eager = OnlineEngine(config, [model], [None])
    assert not eager.compiled and eager.updates_per_call == 1
    compiled = OnlineEngine(config, [model], [None], compile_step=True)  # compiles lazily: nothing compiled here
    # cpp_wrapper: measured faster by the bench (results/bench_threads1.txt); dynamic=False: one graph per shape
    assert compiled.compile_options == {"backend": "inductor", "dynamic": False, "options": {"cpp_wrapper": True}}
    other = OnlineEngine(config, [model], [None], compile_step=True, backend="eager")
    assert other.compile_options == {"backend": "eager", "dynamic": False, "options": None}


def test_the_engine_names_a_parameter_it_would_not_update():
    model = LeNet5()
    model.extra = torch.nn.Parameter(torch.zeros(3))  # trainable, but in no layer the engine steps
    with pytest.raises(TypeError, match=r"would not update \['extra'\]"):
        OnlineEngine(run_config("paper"), [model], [None])


def test_every_layer_of_every_switch_value_is_a_component():
    for key in MODEL_KEYS:
        for value in CHOICES[key]:
            layers = network_layers(LeNet5(run_config("paper", {key: value}).model))
            assert [type(layer.module).__name__ for layer in layers]


def test_engine_refuses_a_module_without_online_rules():
    model = LeNet5()
    model.f6[1] = torch.nn.Sigmoid()  # not a repro component
    with pytest.raises(TypeError, match="cannot step Sigmoid"):
        network_layers(model)


def test_the_generated_variants_cover_every_switch_value():
    """single_switch_variants drops a combination that neither preset allows; no value may be dropped from both."""
    covered = {(key, over[key]) for param in single_switch_variants() for over in [param.values[1]]
               for key in SWITCHES if key in over}
    presets = {(key, run_config(p).flat()[key]) for p in ("paper", "modern") for key in SWITCHES}
    every = {(key, value) for key in SWITCHES for value in CHOICES[key] if value != "auto"}
    assert every - covered - presets == set()
