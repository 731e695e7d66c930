import pytest

from repro.config import run_config
from repro.optim import lr_for_pass, paper_eta


def test_paper_eta_schedule_keeps_the_0_0001_step():
    etas = [paper_eta(p) for p in range(20)]
    assert etas == [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8


def test_schedule_scales_with_lr():
    cfg = run_config("paper", {"lr": "0.0001"}).train
    assert lr_for_pass(cfg, 0) == pytest.approx(1e-4)
    assert lr_for_pass(cfg, 19) == pytest.approx(2e-6)
    modern = run_config("modern").train
    assert [lr_for_pass(modern, p) for p in range(5)] == [1e-3] * 5
