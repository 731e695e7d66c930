import math

import pytest
import torch

from repro.config import ConfigError, run_config
from repro.components import cross_entropy_loss, map_loss, mle_loss


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
