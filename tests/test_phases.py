"""Where a run's time goes (repro/phases.py), what made it (repro/provenance.py), and the per-pass evaluation at
inference speed (repro/evaluation.py), as a run's summary and grid row record them."""
import json
import time
import types

import numpy as np
import pytest
import torch

from repro.config import run_config
from repro.evaluation import Evaluator, evaluate
from repro.model import build_model
from repro.phases import PHASES, CompileTimer, PhaseClock
from repro.provenance import code_commit, machine
from repro.train import read_outputs, train

TINY = {"epochs": 2, "hessian_samples": 8, "checkpoint_every": 5}


def test_a_phase_gives_its_compile_and_handover_seconds_to_those_phases():
    clock = PhaseClock()
    part = types.SimpleNamespace(compile_s=0.0, handover_s=0.0)
    with clock.phase("updates", part):
        time.sleep(0.05)
        part.compile_s += 0.02  # what the part says it spent compiling and handing over inside the block
        part.handover_s += 0.01
    assert clock.spent["compile"] == pytest.approx(0.02) and clock.spent["handover"] == pytest.approx(0.01)
    assert 0.015 < clock.spent["updates"] < 0.05
    seconds = clock.seconds(wall=1.0)
    assert list(seconds) == list(PHASES)
    assert seconds["other"] == pytest.approx(1.0 - sum(clock.spent.values()), abs=0.01)


def test_a_clock_resumes_from_a_checkpoints_seconds_and_ignores_unknown_ones():
    clock = PhaseClock({"updates": 5.0, "curvature": 2.0, "no such phase": 1.0})
    assert clock.spent == {"updates": 5.0, "curvature": 2.0, "evaluation": 0.0, "handover": 0.0, "compile": 0.0}


def test_compile_timer_counts_the_first_call_of_each_shape_when_compiled():
    calls = []

    def slow(x):
        calls.append(x.shape)
        time.sleep(0.02)
        return x

    timer = CompileTimer(slow, compiled=True)
    timer(torch.zeros(2)), timer(torch.zeros(2))
    first = timer.compile_s
    assert 0.02 <= first < 0.04
    timer(torch.zeros(3))
    assert timer.compile_s > first + 0.015
    eager = CompileTimer(slow, compiled=False)
    eager(torch.zeros(2))
    assert eager.compile_s == 0.0 and len(calls) == 4


def test_a_summary_says_where_the_time_went_and_what_made_the_run(tiny_mnist, tmp_path):
    summary = train(run_config("paper", TINY), tmp_path / "run", data_root=tiny_mnist, progress=False)
    phases = summary["phases_s"]
    assert list(phases) == list(PHASES) and all(v >= 0 for v in phases.values())
    assert phases["updates"] > 0 and phases["curvature"] > 0 and phases["evaluation"] > 0
    assert sum(phases.values()) == pytest.approx(summary["wall_s"], abs=0.1)
    assert summary["commit"] == code_commit()["commit"] and summary["machine"] == machine()
    assert summary["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_every_pass_keeps_the_test_outputs_compactly(tiny_mnist, tmp_path):
    config = run_config("paper", TINY)
    train(config, tmp_path / "run", data_root=tiny_mnist, progress=False)
    outputs = read_outputs(tmp_path / "run")
    predictions = json.loads((tmp_path / "run" / "test_predictions.json").read_text())["predictions"]
    assert outputs.dtype == np.float16 and outputs.shape == (16, 10)
    assert outputs.argmin(axis=1).tolist() == predictions  # RBF penalties: lower is better


def test_git_less_installs_say_the_commit_is_unknown(monkeypatch):
    import repro.provenance as provenance
    monkeypatch.setattr(provenance, "_git", lambda *args: None)
    provenance.code_commit.cache_clear()
    try:
        assert provenance.code_commit() == {"commit": "unknown", "code_dirty": None}
    finally:
        provenance.code_commit.cache_clear()


@pytest.mark.slow
@pytest.mark.parametrize("overrides,kernel", [({}, True), ({"pooling": "max"}, False)], ids=["c1s2_kernel", "torch"])
def test_the_compiled_evaluation_is_the_eager_one(overrides, kernel):
    """One compiled shape: the last, short batch is padded and its padding dropped; C1-S2 in C where the kernel
    covers the network (repro/kernels/c1s2.py), else all of it compiled."""
    config = run_config("paper", overrides)
    torch.manual_seed(0)
    model = build_model(config)
    size = model.input_size
    x = torch.rand(150, 1, size, size) * 1.275 - 0.1
    y = torch.arange(150) % 10
    eager = evaluate(model, x, y, config.loss, config.train.map_j)
    evaluator = Evaluator(model, config.loss, config.train.map_j, compiled=True, batch=64)
    assert (evaluator.block is not None) == kernel
    compiled = evaluator(x, y)
    assert evaluator.compile_s > 0
    torch.testing.assert_close(compiled["outputs"], eager["outputs"], rtol=1e-4, atol=1e-4)
    assert torch.equal(compiled["predictions"], eager["predictions"])
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=1e-5)
    assert model.training  # evaluation leaves the model as it found it
