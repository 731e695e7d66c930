"""What a run records and says beyond its numbers (repro/train.py): the summary's fields and format, the progress
bar, the reason an unreadable checkpoint gives, and where SDLM's curvature is estimated."""
import dataclasses
import json
import re

import pytest
import torch

from conftest import make_mnist
from helpers.step_hooks import hooked, request_stop
from repro import train as training
from repro.config import run_config
from repro.data import load_mnist
from repro.errors import DataError, Interrupted, RunError
from repro.provenance import provenance
from repro.optim import lr_for_pass
from repro.train import StepHook, train, train_seeds, warmup_factor

TINY = {"epochs": 2, "hessian_samples": 8, "checkpoint_every": 5, "engine": "online"}  # 32 updates a pass
SUMMARY_FIELDS = ["status", "message", "config", "passes", "final_train_error_pct", "final_test_error_pct",
                  "best_train_error_pct", "best_test_error_pct", "wall_s", "phases_s", "trainable_params", "threads",
                  "torch", "commit", "code_dirty", "machine"]


@pytest.fixture
def data(tiny_mnist):
    return load_mnist("32", tiny_mnist, download=False)


def test_a_summary_holds_its_fields_in_order_as_indented_json(data, tmp_path):
    """summary.json is what grids, reports and `lenet5 verify` read: its field names, their order, its values
    taken from the log, and its byte format (two-space JSON and a final newline, like config.json)."""
    config = run_config("paper", TINY)
    summary = train(config, tmp_path / "run", data=data, progress=False)
    text = (tmp_path / "run" / "summary.json").read_text()
    assert text == json.dumps(summary, indent=2) + "\n" and json.loads(text) == summary
    assert list(summary) == SUMMARY_FIELDS
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert summary["config"] == config.to_dict() and summary["passes"] == len(log) == 2
    assert summary["final_train_error_pct"] == log[-1]["train_error_pct"]
    assert summary["final_test_error_pct"] == log[-1]["test_error_pct"]
    assert summary["best_train_error_pct"] == min(e["train_error_pct"] for e in log)
    assert summary["best_test_error_pct"] == min(e["test_error_pct"] for e in log)
    assert summary["wall_s"] == round(summary["wall_s"], 2) and summary["threads"] == torch.get_num_threads()
    assert summary["torch"] == torch.__version__
    assert {k: summary[k] for k in ("commit", "code_dirty", "machine")} == provenance()


def _bar_frames(err: str) -> list[str]:
    """The progress bar's frames in what a run printed to stderr (tqdm redraws with carriage returns)."""
    return [frame.strip() for frame in re.split(r"[\r\n]", err) if "step" in frame]


def test_the_progress_bar_counts_updates_and_starts_where_a_run_resumes(data, tmp_path, capsys):
    """2 passes of 32 updates: 64 in all. A run stopped at update 40 and resumed shows 40/64 first; a run without
    `progress` prints no bar."""
    config = run_config("paper", TINY)
    with hooked(StepHook(40, request_stop)), pytest.raises(Interrupted):
        train(config, tmp_path / "run", data=data, progress=False)
    assert _bar_frames(capsys.readouterr().err) == []
    train(config, tmp_path / "run", data=data, resume=True, progress=True)
    frames = _bar_frames(capsys.readouterr().err)
    assert re.search(r"\| 40/64 \[", frames[0]), frames[0]
    assert re.search(r"\| 64/64 \[.*step/s\]$", frames[-1]), frames[-1]


class _FailsToLoad:
    """Pickles as a call that raises when the checkpoint is read back."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("payload, reason", [
    # the first line of the error, cut at 160 characters
    (_FailsToLoad(int, "x" * 300), f"invalid literal for int() with base 10: '{'x' * 300}'"[:160]),
    # an error without a message: its type
    (_FailsToLoad(next, iter(())), "StopIteration"),
    # a checkpoint that loads but holds no model
    ({"optimizer": {}}, "'model'"),
], ids=["long", "no_message", "no_model"])
def test_an_unreadable_checkpoint_is_one_error_naming_why_and_the_fix(data, tmp_path, payload, reason):
    config = run_config("paper", TINY)
    run = tmp_path / "run"
    with hooked(StepHook(5, request_stop)), pytest.raises(Interrupted):
        train(config, run, data=data, progress=False)
    torch.save(payload if isinstance(payload, dict) else {"model": payload}, run / "checkpoint.pt")
    with pytest.raises(RunError) as error:
        train(config, run, data=data, resume=True, progress=False)
    assert str(error.value) == (f"cannot resume from {run / 'checkpoint.pt'} ({reason}); restore the file, or "
                                f"delete it to train this run again from the start")


def test_a_run_estimates_the_curvature_before_each_pass_and_every_hessian_every_updates(data, tmp_path,
                                                                                       monkeypatch):
    """App. C: h on `hessian_samples` patterns before each pass and, with hessian_every, before every multiple of it
    inside the pass, each on the sample drawn for (seed, pass, update), from the pass's patterns."""
    drawn = []

    def recorded(seed, pass_index, n, k, step=0):
        drawn.append((seed, pass_index, n, k, step))
        return real(seed, pass_index, n, k, step)

    real = training.hessian_sample
    monkeypatch.setattr(training, "hessian_sample", recorded)
    train(run_config("paper", {**TINY, "hessian_every": 10, "seed": 3}), tmp_path / "every10", data=data,
          progress=False)
    assert drawn == [(3, p, 32, 8, step) for p in (0, 1) for step in (0, 10, 20, 30)]
    drawn.clear()
    train(run_config("paper", {**TINY, "epochs": 1, "hessian_every": 1}), tmp_path / "every1", data=data,
          progress=False)
    assert drawn == [(0, 0, 32, 8, step) for step in range(32)]


def test_a_run_reads_the_data_its_config_names(tmp_path, capsys):
    """From a data root, a run loads the dataset, the number of training patterns and the evaluation split its
    config names."""
    root = make_mnist(tmp_path / "data", 32, 16)
    make_mnist(root, 24, 12, folder="FashionMNIST")
    config = run_config("paper", {**TINY, "epochs": 1, "dataset": "fashion_mnist", "train_size": 16})
    train(config, tmp_path / "fashion", data_root=root, progress=True)
    assert re.search(r"\| 16/16 \[", _bar_frames(capsys.readouterr().err)[-1])  # 16 updates: train_size
    labels = json.loads((tmp_path / "fashion" / "test_predictions.json").read_text())["labels"]
    assert labels == load_mnist("32", root, download=False, dataset="fashion_mnist").test_y.tolist()
    with pytest.raises(DataError, match="too few to hold out a validation split"):
        train(run_config("paper", {**TINY, "evaluate_on": "validation"}), tmp_path / "validation", data_root=root,
              progress=False)


@pytest.mark.parametrize("update", [25, 40])
def test_the_warm_up_ramps_pass_ones_step_size_in_blocks(data, tmp_path, update):
    """warmup_updates=30 in blocks of 3 updates: pass 1's step size from update u on is its own times
    warmup_factor(u); pass 2 has the schedule's own (cosine: half of pass 1's). The step hook sees the run at
    exactly its update (here 25, and 40 = pass 2, update 8)."""
    config = run_config("paper", {**TINY, "warmup_updates": 30, "lr_schedule": "cosine"})
    seen = []
    with hooked(StepHook(update, lambda runs: seen.append((runs[0].pass_index, runs[0].step,
                                                           runs[0].optimizer.param_groups[0]["lr"])))):
        train(config, tmp_path / "run", data=data, progress=False)
    pass_index, step = divmod(update, 32)
    # the chunk that ends at the hook began at the last block boundary, where the step size was set
    expected = (lr_for_pass(config.train, 0) * warmup_factor(step // 3 * 3, 30) if pass_index == 0
                else lr_for_pass(config.train, 1))
    assert seen == [(pass_index, step, pytest.approx(expected, rel=1e-12))]
    assert expected < lr_for_pass(config.train, 0)


def test_a_resumed_run_counts_each_phase_on_from_its_checkpoint(data, tmp_path):
    """Stopped after pass 1 (its evaluation timed), resumed and stopped again one update later: every phase's
    seconds in the second checkpoint include the first's."""
    config = run_config("paper", TINY)
    with hooked(StepHook(32, request_stop)), pytest.raises(Interrupted):
        train(config, tmp_path / "run", data=data, progress=False)
    first = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["phases"]
    with hooked(StepHook(33, request_stop)), pytest.raises(Interrupted):
        train(config, tmp_path / "run", data=data, resume=True, progress=False)
    second = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["phases"]
    assert first["evaluation"] > 0 and all(second[k] >= first[k] for k in first), (first, second)


def test_train_seeds_refuses_a_used_folder_and_shows_progress_unless_told(data, tmp_path, capsys):
    config = run_config("paper", {**TINY, "epochs": 1})
    train_seeds(config, [0], [tmp_path / "run"], data=data)
    assert "pass 1/1" in capsys.readouterr().out
    with pytest.raises(RunError, match="already holds a run"):
        train_seeds(config, [0], [tmp_path / "run"], data=data)


def test_the_drive_hands_its_compile_choices_on_and_times_what_its_parts_spend_compiling(data, tmp_path,
                                                                                      monkeypatch):
    """engines.compiled_phases decides whether a run's curvature estimate and evaluation compile (only runs too
    large for a test do); the drive hands that choice to the optimizer's `prepare` and to one evaluator per run,
    and what each reports spending on compiling goes to the `compile` phase. Spies stand in for the compiled
    parts here: each call reports one made-up second, and nothing compiles."""
    from repro import sdlm
    from repro.evaluation import Evaluator

    monkeypatch.setattr(training, "compiled_phases", lambda *args: {"curvature": True, "evaluation": True})
    evaluators, estimates = [], []

    class SpyEvaluator(Evaluator):
        def __init__(self, model, loss, j, compiled=False):
            super().__init__(model, loss, j, compiled=False)
            self.asked, self.fake_compile_s = compiled, 0.0
            evaluators.append(self)

        @property
        def compile_s(self):
            return self.fake_compile_s

        def __call__(self, x, y):
            self.fake_compile_s += 1.0
            return super().__call__(x, y)

    real_prepare = sdlm.SDLM.prepare

    def spy_prepare(self, model, x, y, loss, compiled=False):
        estimates.append(compiled)
        self.fake_compile_s = getattr(self, "fake_compile_s", 0.0) + 1.0
        return real_prepare(self, model, x, y, loss, compiled=False)

    monkeypatch.setattr(training, "Evaluator", SpyEvaluator)
    monkeypatch.setattr(sdlm.SDLM, "prepare", spy_prepare)
    monkeypatch.setattr(sdlm.SDLM, "compile_s", property(lambda self: getattr(self, "fake_compile_s", 0.0)))
    summary = train(run_config("paper", TINY), tmp_path / "run", data=data, progress=False)
    assert [e.asked for e in evaluators] == [True] and estimates == [True, True]  # one estimate before each pass
    # 2 passes: 2 estimates and 4 evaluations (training and test sets), a second each; the online engine compiles
    # nothing
    assert summary["phases_s"]["compile"] == 6.0


def test_a_stop_that_arrives_with_the_last_update_lets_the_run_finish(data, tmp_path):
    """Nothing is left to stop after the last pass: the run evaluates, saves and ends finished."""
    with hooked(StepHook(64, request_stop)):
        try:
            summary = train(run_config("paper", TINY), tmp_path / "run", data=data, progress=False)
        except Interrupted as stop:  # a KeyboardInterrupt, which would end pytest's session rather than fail here
            pytest.fail(f"a run stopped after its last update: {stop}")
    assert summary["status"] == "finished" and (tmp_path / "run" / "model.pt").exists()


def test_the_loss_is_checked_every_1000_updates_and_a_stop_looked_for_every_1000_patterns(tmp_path):
    """1,100 patterns a pass. Weights broken at update 7 are found at the next check, update 1,000 (no checkpoint
    or h re-estimate ends a stretch before); at batch 3 a stretch is 333 updates (1,000 patterns), whole ones."""
    from helpers.step_hooks import poison

    data = load_mnist("32", make_mnist(tmp_path / "data", 1100, 16), download=False)
    plain = {"epochs": 1, "hessian_samples": 8, "hessian_every": 0, "checkpoint_every": 10000, "engine": "online"}
    with hooked(StepHook(7, poison)):
        broken = train_seeds(run_config("paper", plain), [0], [tmp_path / "broken"], data=data, progress=False)[0]
    assert broken["status"] == "diverged" and "run diverged in pass 1 before step 1000:" in broken["message"]
    summary = train(run_config("paper", {**plain, "batch_size": 3, "lr": 0.00001}), tmp_path / "batch3", data=data,
                    progress=False)  # 367 updates, in stretches of 333 (1,000 // 3) and 34
    assert summary["status"] == "finished"


def test_distortions_need_the_training_images_as_read_and_a_plain_run_does_not(data, tmp_path):
    bare = dataclasses.replace(data, train_raw=None)  # tensors made by hand, not by load_mnist
    config = run_config("paper", {**TINY, "epochs": 1})
    assert train(config, tmp_path / "plain", data=bare, progress=False)["status"] == "finished"
    with pytest.raises(RunError) as error:
        train(run_config("paper", {**TINY, "epochs": 1, "distortions": "affine"}), tmp_path / "distorted", data=bare,
              progress=False)
    assert str(error.value) == ("distortions need the training images as read; load the data with "
                                "repro.data.load_mnist")
