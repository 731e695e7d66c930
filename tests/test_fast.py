"""The fast lockstep path against the reference autograd path, seed by seed."""
import pytest
import torch

from repro.config import run_config
from repro.fast import LockstepSDLM, unsupported_reason
from repro.losses import LOSSES
from repro.model import LeNet5
from repro.optim import make_optimizer


def reference_steps(config, seed, xs, ys, hx, hy):
    torch.manual_seed(seed)
    model = LeNet5(config.model)
    opt = make_optimizer(config.train, model)
    opt.prepare(model, hx, hy, config.loss)
    losses = []
    for x, y in zip(xs, ys):
        loss = LOSSES[config.loss](model(x[None]), y[None], config.train.map_j)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


@pytest.mark.parametrize("overrides", [
    {}, {"loss": "mle"}, {"c3": "full"}, {"head": "linear"}, {"activation": "relu"}, {"activation": "tanh"},
    {"pooling": "avg"}, {"input": "28"}, {"init": "default"},
])
def test_lockstep_equals_reference_seed_by_seed(overrides):
    config = run_config("paper", {"lr": 0.0001, **overrides})  # a stable step: round-off is not amplified
    size = 28 if config.model.input == "28" else 32
    seeds, steps = [0, 1, 2], 6
    gen = torch.Generator().manual_seed(7)
    data = torch.rand(len(seeds), steps, 1, size, size, generator=gen) * 1.2 - 0.1
    labels = torch.randint(0, 10, (len(seeds), steps), generator=gen)
    hx, hy = torch.rand(16, 1, size, size, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    models, opts = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(LeNet5(config.model))
        opts.append(make_optimizer(config.train, models[-1]))
        opts[-1].prepare(models[-1], hx, hy, config.loss)
    engine = LockstepSDLM(config, models, opts)
    engine.pack()
    fast_losses = torch.stack([engine.step(data[:, t], labels[:, t]) for t in range(steps)], dim=1)
    engine.unpack()
    for i, seed in enumerate(seeds):
        ref_model, ref_losses = reference_steps(config, seed, data[i], labels[i], hx, hy)
        torch.testing.assert_close(fast_losses[i], torch.tensor(ref_losses), rtol=1e-5, atol=1e-5)
        ref = dict(ref_model.named_parameters())
        for name, p in models[i].named_parameters():
            torch.testing.assert_close(p, ref[name], rtol=1e-5, atol=1e-5, msg=f"seed {seed} {name}")
        assert not torch.equal(models[i].c1[0].weight, LeNet5(config.model).c1[0].weight)


@pytest.mark.parametrize("overrides, reason", [
    ({"pooling": "max"}, "pooling=max"), ({"norm": "batch"}, "norm=batch"),
    ({"optimizer": "adam"}, "optimizer=adam"), ({"batch_size": 4}, "batch_size=4"),
])
def test_unsupported_configs_are_named(overrides, reason):
    assert reason in unsupported_reason(run_config("paper", overrides))
    assert unsupported_reason(run_config("paper")) is None


def test_compiled_step_equals_eager_step():
    config = run_config("paper", {"lr": 0.0001})
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 4, 1, 32, 32, generator=gen)
    y = torch.randint(0, 10, (2, 4), generator=gen)
    engines = []
    for _ in range(2):
        models = [LeNet5(config.model) for _ in range(2)]
        for m, src in zip(models, engines[0].models if engines else models):
            m.load_state_dict(src.state_dict())
        opts = [make_optimizer(config.train, m) for m in models]
        for m, o in zip(models, opts):
            o.prepare(m, x[0], y[0], config.loss)
        engine = LockstepSDLM(config, models, opts)
        engine.pack()
        engines.append(engine)
    compiled = torch.compile(engines[1].step_weights, dynamic=False)
    for t in range(4):
        eager_loss = engines[0].step(x[:, t], y[:, t])
        compiled_loss = compiled(engines[1].w, engines[1].steps, x[:, t], y[:, t])
        torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-5)
    for name in engines[0].names:
        torch.testing.assert_close(engines[1].w[name], engines[0].w[name], rtol=1e-5, atol=1e-6)
