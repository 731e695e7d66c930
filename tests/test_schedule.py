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
