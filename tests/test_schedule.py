import math

import pytest

from repro.config import run_config
from repro.optim import SCHEDULES, lr_for_pass, paper_eta


def test_paper_eta_schedule_keeps_the_0_0001_step():
    etas = [paper_eta(p) for p in range(20)]
    assert etas == [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8


def test_schedule_scales_with_lr():
    cfg = run_config("paper", {"lr": "0.0001"}).train
    assert lr_for_pass(cfg, 0) == pytest.approx(1e-4)
    assert lr_for_pass(cfg, 19) == pytest.approx(2e-6)
    modern = run_config("modern").train
    assert [lr_for_pass(modern, p) for p in range(5)] == [1e-3] * 5


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_starts_at_lr_and_never_grows(schedule):
    cfg = run_config("paper", {"lr": 0.001, "lr_schedule": schedule, "epochs": 20}).train
    rates = [lr_for_pass(cfg, p) for p in range(cfg.epochs)]
    assert rates[0] == pytest.approx(0.001)
    assert all(r > 0 and math.isfinite(r) for r in rates)
    assert all(b <= a for a, b in zip(rates, rates[1:])), rates


def test_cosine_schedule_halves_at_mid_run():
    cfg = run_config("modern", {"lr_schedule": "cosine", "epochs": 4}).train
    assert [lr_for_pass(cfg, p) / cfg.lr for p in range(4)] == pytest.approx([1, 0.8536, 0.5, 0.1464], abs=1e-4)


# --- the optimizer rules' own seams, which the engine tests (tests/test_online.py) reach only through two runs
# of fresh optimizers (found unchecked by mutation testing, experiments/mutation.py) ---

def test_set_lr_sets_every_group():
    import torch

    from repro.optim import SGD, set_lr
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    set_lr(opt, 0.02)
    assert [group["lr"] for group in opt.param_groups] == [0.02, 0.02]


def test_sgd_rule_makes_sgd_with_the_configs_lr_and_momentum():
    import torch

    from repro.optim import make_optimizer
    cfg = run_config("modern", {"optimizer": "sgd", "lr": 0.05, "momentum": 0.8}).train
    opt = make_optimizer(cfg, torch.nn.Linear(2, 1))
    assert isinstance(opt, torch.optim.SGD)
    assert (opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]) == (0.05, 0.8)


def test_sgd_rule_packs_the_momentum_a_single_run_has_built():
    """After torch's own SGD has stepped, pack carries its momentum buffers (not fresh zeros), and the rule
    reads its momentum and lr from the one run there is."""
    import torch

    from repro.optim import SGD, SGDRule
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    params = list(layer.parameters())
    opt = SGD(params, lr=0.1, momentum=0.7)
    for _ in range(2):
        opt.zero_grad()
        layer(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    rule = SGDRule()
    state = rule.pack([opt], [params])
    for p, stacked in zip(params, state["momentum_buffer"]):
        assert stacked.shape == (1, *p.shape)
        assert torch.equal(stacked[0], opt.state[p]["momentum_buffer"]) and stacked.abs().sum() > 0
    assert rule.momentum == 0.7
    assert rule.scalars([opt])["lr"].item() == pytest.approx(0.1)


def test_adam_rule_makes_adam_with_the_configs_lr():
    import torch

    from repro.optim import ADAM_BETAS, ADAM_EPS, make_optimizer
    cfg = run_config("modern", {"optimizer": "adam", "lr": 0.003}).train
    group = make_optimizer(cfg, torch.nn.Linear(2, 1)).param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (0.003, ADAM_BETAS, ADAM_EPS)


def test_adam_rule_packs_the_moments_and_step_count_a_run_has_built():
    import torch

    from repro.optim import Adam, AdamRule
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))  # one parameter: the step count is read from it
    opt = Adam([w], lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    rule = AdamRule()
    state = rule.pack([opt], [[w]])
    assert rule.steps == 3
    assert torch.equal(state["exp_avg"][0][0], opt.state[w]["exp_avg"])
    assert torch.equal(state["exp_avg_sq"][0][0], opt.state[w]["exp_avg_sq"])
    scalars = rule.scalars([opt])  # the fourth update's
    assert rule.steps == 4 and scalars["step_size"].item() == pytest.approx(0.01 / (1 - 0.9 ** 4))
    assert scalars["bias_correction2_sqrt"].item() == pytest.approx((1 - 0.999 ** 4) ** 0.5)


def test_sdlm_rule_makes_sdlm_with_the_configs_lr_mu_and_batch_size():
    import torch

    from repro.optim import make_optimizer
    from repro.sdlm import SDLM
    cfg = run_config("paper", {"lr": 0.001, "mu": 0.05, "batch_size": 4}).train
    opt = make_optimizer(cfg, torch.nn.Linear(2, 1))
    assert isinstance(opt, SDLM)
    group = opt.param_groups[0]
    assert (group["lr"], group["mu"], group["batch_size"]) == (0.001, 0.05, 4)
