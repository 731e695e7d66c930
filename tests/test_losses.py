import math

import pytest
import torch

from repro.config import ConfigError, run_config
from repro.components import LOSSES, cross_entropy_loss, map_loss, mle_loss, output_curvature


def test_map_matches_equation_nine():
    y = torch.tensor([[3.0, 0.5, 7.0], [1.0, 2.0, 0.2]])
    t = torch.tensor([1, 2])
    j = 0.7
    expected = sum(y[p, t[p]].item() + math.log(math.exp(-j) + sum(math.exp(-v) for v in y[p].tolist()))
                   for p in range(2)) / 2
    assert map_loss(y, t, j).item() == pytest.approx(expected, rel=1e-6)


def test_map_is_stable_for_large_penalties():
    y = torch.full((1, 10), 500.0)
    assert map_loss(y, torch.tensor([0]), 0.1).item() == pytest.approx(500.0 - 0.1, rel=1e-6)


def test_mle_is_correct_class_penalty():
    y = torch.tensor([[3.0, 0.5], [1.0, 2.0]])
    assert mle_loss(y, torch.tensor([0, 1])).item() == pytest.approx(2.5)


def test_cross_entropy_for_linear_head():
    logits = torch.tensor([[0.0, 0.0]])
    assert cross_entropy_loss(logits, torch.tensor([1])).item() == pytest.approx(math.log(2))


def test_loss_follows_head():
    assert run_config("paper").loss == "map"
    assert run_config("modern").loss == "cross_entropy"
    assert run_config("paper", {"loss": "mle"}).loss == "mle"


@pytest.mark.parametrize("overrides, message", [
    ({"head": "linear", "loss": "map"}, "loss 'map' does not fit head 'linear'; valid losses for head=linear: "
                                        "cross_entropy"),
    ({"loss": "cross_entropy"}, "loss 'cross_entropy' does not fit head 'rbf'; valid losses for head=rbf: map, mle"),
    ({"epochs": "0"}, "invalid value 0 for 'epochs'; must be at least 1"),
    ({"lr": "fast"}, "invalid value 'fast' for 'lr'; expected float"),
    ({"optimizer": "lbfgs"}, "invalid value 'lbfgs' for 'optimizer'; valid choices: sdlm, adam, sgd"),
])
def test_impossible_training_configs_are_rejected(overrides, message):
    with pytest.raises(ConfigError) as err:
        run_config("paper", overrides)
    assert message in str(err.value)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_brings_its_own_curvature(name):
    """Generated from the registry: a new loss must define its curvature (the Loss type requires it) and that
    curvature must be a per-pattern, per-unit diagonal that SDLM can divide by: finite and non-negative."""
    outputs, targets = torch.randn(6, 10, dtype=torch.float64) * 3, torch.arange(6)
    h = output_curvature(name, outputs, targets)
    assert h.shape == outputs.shape and torch.isfinite(h).all() and (h >= 0).all()


def test_softmax_curvature_is_the_exact_hessian_diagonal_of_cross_entropy():
    logits, target = torch.randn(10, dtype=torch.float64), torch.tensor(3)
    hessian = torch.autograd.functional.hessian(
        lambda z: torch.nn.functional.cross_entropy(z[None], target[None]), logits)
    assert torch.allclose(output_curvature("cross_entropy", logits[None], target[None])[0], hessian.diagonal())


def test_the_rbf_losses_take_mles_curvature_at_the_heads_input():
    x = torch.randn(4, 84)
    for name in ("map", "mle"):
        assert torch.equal(output_curvature(name, x, torch.zeros(4, dtype=torch.long)), torch.full_like(x, 2.0))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_losss_per_pattern_values_and_gradients_are_its_batch_value_and_autograd(name):
    """What the online engine takes from a loss (`per_pattern`, `online`) against what the autograd engines take
    (`value`, through Loss.__call__): each pattern's value is the batch value of that pattern alone, with a j that is
    not map_loss's default, so that j must be passed through; its gradient is autograd's; `online` gives each run
    the mean over its B patterns and the gradient of that mean."""
    loss, j = LOSSES[name], 0.7
    gen = torch.Generator().manual_seed(2)
    outputs = torch.rand(2, 3, 10, generator=gen, dtype=torch.float64) * 4  # (S runs, B patterns, classes)
    targets = torch.tensor([[1, 4, 9], [0, 4, 7]])
    values, grads = loss.per_pattern(outputs, targets, j)
    means, mean_grads = loss.online(outputs, targets, j)
    for s in range(2):
        for b in range(3):
            out = outputs[s, b:b + 1].clone().requires_grad_()
            value = loss(out, targets[s, b:b + 1], j)
            value.backward()
            torch.testing.assert_close(values[s, b], value.detach())
            torch.testing.assert_close(grads[s, b], out.grad[0])
        out = outputs[s].clone().requires_grad_()
        value = loss(out, targets[s], j)
        value.backward()
        torch.testing.assert_close(means[s], value.detach())
        torch.testing.assert_close(mean_grads[s], out.grad)
