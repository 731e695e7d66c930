"""The training loop: outputs, determinism, resume after a kill, divergence, run-folder safety."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import make_mnist
from helpers.step_hooks import KILLED, hooked, lenet5_command, request_stop
from repro.config import run_config
from repro.data import ENV_VAR, load_mnist
from repro.errors import Interrupted
from repro.model import build_model
from repro.run_folder import read_nondigit_outputs
from repro.train import (DivergedError, RunError, StepHook, hessian_sample, pass_line,
                         pass_permutation, train, train_seeds, warmup_factor)

TINY = {"epochs": 2, "hessian_samples": 8, "checkpoint_every": 5}


def run_cli(args, exit_at=None):
    """`lenet5 train --quiet --threads 1 ARGS` in a new process; `exit_at`: which exits abruptly after that update
    (as a kill would; tests/helpers/step_hooks.py)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "repro"] if exit_at is None else lenet5_command(exit_at=exit_at)
    return subprocess.run([*command, "train", "--quiet", "--threads", "1", *args], capture_output=True, text=True,
                          env=env)


def log_without_wall_time(path):
    return [{k: v for k, v in json.loads(line).items() if k != "wall_s"} for line in path.read_text().splitlines()]


@pytest.mark.parametrize("preset", ["paper", "modern"])
def test_run_writes_every_output(preset, tiny_mnist, tmp_path):
    config = run_config(preset, {**TINY, "batch_size": 4})
    summary = train(config, tmp_path / "run", data_root=tiny_mnist, progress=False)
    run = tmp_path / "run"
    assert summary["status"] == "finished" and summary["passes"] == 2
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["pass"] for e in log] == [1, 2]
    assert {"lr", "train_loss", "train_error_pct", "test_error_pct", "test_loss", "effective_steps",
            "wall_s"} <= set(log[0])
    assert bool(log[0]["effective_steps"]) == (preset == "paper")
    # the committed folders' config.json, byte for byte: indented, so that a diff of two runs reads line by line
    assert (run / "config.json").read_text() == json.dumps(config.to_dict(), indent=2) + "\n"
    csv = (run / "log.csv").read_text().splitlines()
    assert csv[0].startswith("pass,lr,train_loss,train_error_pct,test_error_pct") and len(csv) == 3
    assert csv[2].split(",")[3] == str(log[1]["train_error_pct"])
    predictions = json.loads((run / "test_predictions.json").read_text())
    assert len(predictions["predictions"]) == len(predictions["labels"]) == 16
    assert set(torch.load(run / "model.pt")["model"]) >= {"c1.0.weight", "f6.0.bias"}


def test_same_config_and_seed_give_identical_runs(tiny_mnist, tmp_path):
    config = run_config("paper", TINY)
    data = load_mnist("32", tiny_mnist, download=False)
    train(config, tmp_path / "a", data=data, progress=False)
    train(config, tmp_path / "b", data=data, progress=False)
    a, b = torch.load(tmp_path / "a" / "model.pt")["model"], torch.load(tmp_path / "b" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert log_without_wall_time(tmp_path / "a" / "log.jsonl") == log_without_wall_time(tmp_path / "b" / "log.jsonl")
    train(run_config("paper", {**TINY, "seed": 1}), tmp_path / "c", data=data, progress=False)
    c = torch.load(tmp_path / "c" / "model.pt")["model"]
    assert not torch.equal(a["c1.0.weight"], c["c1.0.weight"])


@pytest.mark.slow
@pytest.mark.parametrize("extra, exit_at, passes_logged", [
    # 32 patterns per pass; die at step 7 of pass 2, two steps after its mid-pass checkpoint
    ({}, 39, 1),
    # die inside pass 1's warm-up, one step after a checkpoint, between two re-estimates of h
    ({"hessian_every": 3, "warmup_updates": 30}, 21, 0),
    ({"distortions": "affine"}, 39, 1),
])
def test_killed_run_resumes_bit_for_bit(tiny_mnist, tmp_path, extra, exit_at, passes_logged):
    args = ["--data-root", str(tiny_mnist)] + [a for k, v in {**TINY, **extra}.items() for a in ("--set", f"{k}={v}")]
    whole = run_cli(args + ["--out", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    killed = run_cli(args + ["--out", str(tmp_path / "killed")], exit_at=exit_at)
    assert killed.returncode == KILLED, killed.stderr
    assert not (tmp_path / "killed" / "summary.json").exists()
    log = tmp_path / "killed" / "log.jsonl"
    assert (len(log.read_text().splitlines()) if log.exists() else 0) == passes_logged
    resumed = run_cli(args + ["--out", str(tmp_path / "killed"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "whole" / "model.pt")["model"]
    b = torch.load(tmp_path / "killed" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert log_without_wall_time(tmp_path / "whole" / "log.jsonl") == \
        log_without_wall_time(tmp_path / "killed" / "log.jsonl")


@pytest.mark.slow
def test_resumed_run_counts_the_wall_time_of_every_stretch(tiny_mnist, tmp_path):
    """A row's wall_s (summed into each grid's core-minutes) includes the time before the stop, up to the last
    checkpoint: the checkpoint's `elapsed` is carried on, not restarted from zero."""
    args = ["--data-root", str(tiny_mnist), "--out", str(tmp_path / "run")]
    args += [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert run_cli(args, exit_at=39).returncode == KILLED
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=False)
    earlier = 10_000.0  # far more than the tiny run's own seconds, as a run stopped after hours would have
    state["elapsed"] = earlier
    torch.save(state, checkpoint)
    resumed = run_cli(args + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert earlier <= summary["wall_s"] < earlier + 600
    last_pass = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert last_pass["wall_s"] >= earlier


def test_diverging_run_is_reported_and_keeps_its_checkpoint(tiny_mnist, tmp_path):
    config = run_config("modern", {"optimizer": "sgd", "lr": 1e8, "batch_size": 1, "checkpoint_every": 1,
                                   "epochs": 1})
    with pytest.raises(DivergedError, match=r"run diverged in pass 1 .* lower --set lr=\.\.\. and start a new run"):
        train(config, tmp_path / "run", data_root=tiny_mnist, progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged" and "diverged" in summary["message"]
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.slow
def test_diverged_cli_exit_code_and_one_line(tiny_mnist, tmp_path):
    result = run_cli(["--data-root", str(tiny_mnist), "--preset", "modern", "--set", "optimizer=sgd",
                      "--set", "lr=1e8", "--set", "batch_size=1", "--set", "epochs=1",
                      "--out", str(tmp_path / "run")])
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith("lenet5: error: run diverged in pass 1")


def test_run_folder_is_not_reused_by_accident(tiny_mnist, tmp_path):
    config = run_config("paper", TINY)
    train(config, tmp_path / "run", data_root=tiny_mnist, progress=False)
    with pytest.raises(RunError, match="already holds a run; pass --resume"):
        train(config, tmp_path / "run", data_root=tiny_mnist, progress=False)
    with pytest.raises(RunError, match=r"holds a run of another config .*'seed': \(0, 3\)"):
        train(run_config("paper", {**TINY, "seed": 3}), tmp_path / "run", data_root=tiny_mnist, resume=True,
              progress=False)
    def written():  # the files' contents and when they were last written (a rewrite of equal bytes shows too)
        return {name: ((tmp_path / "run" / name).read_bytes(), (tmp_path / "run" / name).stat().st_mtime_ns)
                for name in ("summary.json", "model.pt", "config.json", "log.jsonl")}

    before = written()
    again = train(config, tmp_path / "run", data_root=tiny_mnist, resume=True, progress=False)
    assert again["status"] == "finished"  # a finished run is returned as it is, not trained or written again
    assert written() == before


def test_an_unwritable_run_folder_is_one_clear_error(tiny_mnist, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunError, match=r"cannot write the run folder .*run \(Not a directory\); choose a writable "
                                       r"--out"):
        train(run_config("paper", TINY), tmp_path / "file" / "run", data_root=tiny_mnist, progress=False)


@pytest.mark.slow
def test_real_mnist_short_run(real_data_root, tmp_path):
    config = run_config("modern", {"epochs": 1, "train_size": 6000})
    summary = train(config, tmp_path / "run", data_root=real_data_root, progress=False)
    assert summary["final_test_error_pct"] < 10.0  # the seed blog's network learns MNIST in one short pass


# batch 3 on 32 patterns: each pass ends with an update of 2 patterns
@pytest.mark.parametrize("protocol", [{"lr": 0.00002}, {"batch_size": 3, "lr": 0.00001}])
# the compiled engine compiles for ~25 s per case: in the full suite (CI's), not the quick one
@pytest.mark.parametrize("engine", ["online", pytest.param("compiled", marks=pytest.mark.slow)])
def test_seeds_trained_together_equal_each_seed_trained_alone(tiny_mnist, tmp_path, protocol, engine):
    """A seed's numbers do not depend on the seeds trained beside it (the determinism standard): the online
    engines could step them in lockstep, whose batched arithmetic rounds differently, so train_seeds does not."""
    data = load_mnist("32", tiny_mnist, download=False)
    config = run_config("paper", {**TINY, **protocol, "engine": engine})
    # each compiled drive compiles anew (~5 s with warm caches): the compiled engine checks the last seed only
    seeds, alone = ((0, 1, 2), (2, 0)) if engine == "online" else ((0, 1), (1,))
    summaries = train_seeds(config, list(seeds), [tmp_path / f"together{s}" for s in seeds], data=data,
                            progress=False)
    assert [s["status"] for s in summaries] == ["finished"] * len(seeds)
    for seed in alone:  # alone, and in another order
        train(run_config("paper", {**TINY, **protocol, "engine": engine, "seed": seed}), tmp_path / f"alone{seed}",
              data=data, progress=False)
        a = torch.load(tmp_path / f"together{seed}" / "model.pt")["model"]
        b = torch.load(tmp_path / f"alone{seed}" / "model.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), f"seed {seed} differs when trained beside others"
        assert json.loads((tmp_path / f"together{seed}" / "config.json").read_text())["train"]["seed"] == seed


@pytest.mark.slow
def test_killed_multi_seed_run_resumes_bit_for_bit(tiny_mnist, tmp_path):
    args = ["--data-root", str(tiny_mnist), "--set", "engine=online", "--seeds", "0", "1"] + \
        [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert run_cli(args + ["--out", str(tmp_path / "whole")]).returncode == 0
    assert run_cli(args + ["--out", str(tmp_path / "killed")], exit_at=39).returncode == KILLED
    resumed = run_cli(args + ["--out", str(tmp_path / "killed"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    for seed in (0, 1):
        a = torch.load(tmp_path / "whole" / f"seed{seed}" / "model.pt")["model"]
        b = torch.load(tmp_path / "killed" / f"seed{seed}" / "model.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert log_without_wall_time(tmp_path / "whole" / f"seed{seed}" / "log.jsonl") == \
            log_without_wall_time(tmp_path / "killed" / f"seed{seed}" / "log.jsonl")


def test_warmup_ramps_the_step_in_blocks_up_to_full():
    assert [warmup_factor(s, 3000) for s in (0, 99, 100, 2999, 3000, 50_000)] == \
        [100 / 3000, 100 / 3000, 200 / 3000, 1.0, 1.0, 1.0]
    assert [warmup_factor(s, 30) for s in (0, 2, 3, 29, 30)] == [0.1, 0.1, 0.2, 1.0, 1.0]  # 10 levels at least
    assert [warmup_factor(s, 10) for s in range(10)] == [(s + 1) / 10 for s in range(10)]  # blocks of 1 update
    assert warmup_factor(24, 25) == 1.0  # the last block ends past the warm-up: never above the full step
    assert warmup_factor(0, 0) == 1.0


@pytest.mark.parametrize("extra", [{"hessian_every": 3}, {"warmup_updates": 30}])
def test_hessian_every_and_warmup_change_the_updates(tiny_mnist, tmp_path, extra):
    data = load_mnist("32", tiny_mnist, download=False)
    config = run_config("paper", {**TINY, "epochs": 1})
    train(config, tmp_path / "plain", data=data, progress=False)
    train(run_config("paper", {**TINY, "epochs": 1, **extra}), tmp_path / "changed", data=data, progress=False)
    a = torch.load(tmp_path / "plain" / "model.pt")["model"]
    b = torch.load(tmp_path / "changed" / "model.pt")["model"]
    assert not torch.equal(a["c1.0.weight"], b["c1.0.weight"])


def test_pass_line_is_readable():
    entry = {"pass": 3, "lr": 4.000000000000001e-05, "train_loss": 2.26848982, "train_error_pct": 28.999999999999996,
             "test_error_pct": 1.41, "wall_s": 92.37}
    assert pass_line(entry, run_config("paper")) == ("pass 3/20  train error 29.00%  test error 1.41%  "
                                                     "train loss 2.268  lr 4e-05  92 s")
    # a run that evaluates on the validation split says so: its number is not a test error
    assert pass_line(entry, run_config("paper", {"evaluate_on": "validation"})).startswith(
        "pass 3/20  train error 29.00%  validation error 1.41%  ")


def test_the_shuffles_and_curvature_samples_are_those_every_committed_run_drew():
    """A committed run reproduces bit for bit only while each (seed, pass) visits the patterns in the same order
    and estimates h on the same sample (before the pass, and before update `step` with hessian_every): their
    first indices, recorded here for a seed and a pass other than 0, pin the three streams."""
    assert pass_permutation(3, 2, 60000)[:6].tolist() == [7452, 20843, 24374, 4749, 46177, 26788]
    assert hessian_sample(3, 2, 60000, 6).tolist() == [6945, 11106, 47124, 57599, 23032, 57112]
    assert hessian_sample(3, 2, 60000, 6, step=500).tolist() == [35721, 40961, 59318, 34906, 3893, 25431]


@pytest.mark.parametrize("stop_at, where", [(7, "pass 1, update 7"), (32, "pass 2, update 0")],
                         ids=["mid_pass", "pass_boundary"])
def test_a_stopped_run_checkpoints_says_where_and_resumes_bit_for_bit(tiny_mnist, tmp_path, stop_at, where):
    """A stop signal at update `stop_at` (32 updates a pass): the run checkpoints where it stands, raises
    Interrupted naming the position and the checkpoint, keeps its phase seconds in the checkpoint, and a resume
    ends as the run that was never stopped."""
    data = load_mnist("32", tiny_mnist, download=False)
    config = run_config("paper", {**TINY, "engine": "online"})
    whole = train(config, tmp_path / "whole", data=data, progress=False)
    stopped = tmp_path / "new" / "stopped"  # the run folder's parents are made too
    with hooked(StepHook(stop_at, request_stop)), pytest.raises(Interrupted) as stop:
        train(config, stopped, data=data, progress=False)
    assert str(stop.value) == f"SIGTERM: stopped at {where}; checkpoint written to {stopped / 'checkpoint.pt'}"
    checkpoint = torch.load(stopped / "checkpoint.pt", weights_only=False)
    assert (checkpoint["pass"], checkpoint["step"]) == divmod(stop_at, 32)
    assert checkpoint["phases"]["updates"] > 0 and not (stopped / "summary.json").exists()
    # the engine's own hand-over seconds (packing, gathering: repro/engines.py) are their own phase
    assert checkpoint["phases"]["handover"] > 0
    assert checkpoint["loss_sum"].dtype == torch.float64  # a pass's losses add up in double precision
    resumed = train(config, stopped, data=data, resume=True, progress=False)
    assert resumed["status"] == "finished" and resumed["phases_s"]["updates"] >= checkpoint["phases"]["updates"]
    assert resumed["wall_s"] >= checkpoint["elapsed"] > 0  # the wall time before the stop counts
    a, b = torch.load(tmp_path / "whole" / "model.pt")["model"], torch.load(stopped / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert log_without_wall_time(tmp_path / "whole" / "log.jsonl") == log_without_wall_time(stopped / "log.jsonl")
    assert whole["final_test_error_pct"] == resumed["final_test_error_pct"]


def _poison(runs):
    with torch.no_grad():
        for run in runs:
            for p in run.model.parameters():
                p.fill_(float("nan"))


def test_a_run_whose_weights_break_at_a_passs_last_update_is_diverged_not_finished(tiny_mnist, tmp_path):
    """Non-finite weights after a pass's last update are found by the pass's evaluation, not by the loop's loss
    check: the run ends diverged, with no model.pt, and the runs beside it go on."""
    data = load_mnist("32", tiny_mnist, download=False)
    config = run_config("paper", {**TINY, "epochs": 1, "engine": "online"})
    with hooked(StepHook(32, _poison)):
        summaries = train_seeds(config, [0, 1], [tmp_path / "s0", tmp_path / "s1"], data=data, progress=False)
    for summary, folder in zip(summaries, ("s0", "s1")):
        assert summary["status"] == "diverged" and "run diverged in pass 1 before step 32" in summary["message"]
        assert json.loads((tmp_path / folder / "summary.json").read_text())["status"] == "diverged"
        assert not (tmp_path / folder / "model.pt").exists()


def test_a_non_finite_evaluation_of_either_set_is_a_divergence(tiny_mnist, tmp_path):
    data = load_mnist("32", tiny_mnist, download=False)
    data.test_x[0] = float("nan")  # the training set stays finite: only the test set's loss is not
    with pytest.raises(DivergedError, match="run diverged in pass 1"):
        train(run_config("paper", {**TINY, "epochs": 1}), tmp_path / "run", data=data, progress=False)


def test_a_finished_run_says_what_it_is(tiny_mnist, tmp_path, monkeypatch, capsys):
    """The summary of a finished run: no message, the model's trainable parameter count, its wall time; each
    pass printed as its pass line; the outputs on non-digits computed from the run's own data root."""
    monkeypatch.setenv(ENV_VAR, str(make_mnist(tmp_path / "elsewhere", 8, 8, folder="FashionMNIST")))
    config = run_config("modern", {**TINY, "batch_size": 4})
    started = time.perf_counter()
    summary = train(config, tmp_path / "run", data_root=tiny_mnist)
    elapsed = time.perf_counter() - started
    assert summary["status"] == "finished" and summary["message"] == ""
    model = build_model(config)
    assert summary["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < summary["wall_s"] <= elapsed + 0.01
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(isinstance(e["wall_s"], float) and e["wall_s"] == round(e["wall_s"], 2) for e in log)
    assert 0 < log[0]["train_loss"] < 10  # the mean cross-entropy of an update, not a sum over the pass
    printed = capsys.readouterr().out.splitlines()
    assert [line for line in printed if line.startswith("pass ")] == [pass_line(e, config) for e in log]
    # tiny_mnist holds no Fashion-MNIST: that set is left out, not read from $LENET5_DATA
    assert set(read_nondigit_outputs(tmp_path / "run")) == {"letters", "noise", "blank"}


# Where the engines' loops differ from the reference: chunks that end at checkpoints (every 5 updates here), h
# re-estimated inside a pass, the warm-up's changing eta, a short last batch (32 = 10 * 3 + 2), Adam's state.
# The compiled engine is the online step through torch.compile (tested equal to it in test_online.py); each of
# its runs compiles for ~15 s, so it runs the one case that chunks most.
@pytest.mark.parametrize("engine,protocol", [
    ("online", {}), ("online", {"hessian_every": 7}), ("online", {"warmup_updates": 20}),
    ("online", {"batch_size": 3, "lr": 0.00001}), ("online", {"optimizer": "adam", "lr": 0.001}),
    pytest.param("compiled", {"hessian_every": 7, "warmup_updates": 20}, marks=pytest.mark.slow)],
    ids=["plain", "hessian_every", "warmup", "batch3", "adam", "compiled"])
def test_the_engines_train_as_the_reference_does(tiny_mnist, tmp_path, engine, protocol):
    """A whole run through train() gives the reference loop's weights and losses, whichever engine steps it:
    every committed paper-protocol run was stepped by engine=auto, i.e. online or compiled (float32, so equal
    to rounding, not bit for bit)."""
    data = load_mnist("32", tiny_mnist, download=False)
    runs = {}
    for name in ("reference", engine):
        train(run_config("paper", {**TINY, "lr": 0.00002, **protocol, "engine": name}), tmp_path / name, data=data,
              progress=False)
        runs[name] = (torch.load(tmp_path / name / "model.pt")["model"],
                      [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()])
    (ref_model, ref_log), (model, log) = runs["reference"], runs[engine]
    for key in ref_model:
        torch.testing.assert_close(model[key], ref_model[key], rtol=1e-4, atol=1e-5, msg=key)
    assert len(log) == len(ref_log) == TINY["epochs"]
    for ours, theirs in zip(log, ref_log):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)


def test_a_run_resumes_only_with_the_thread_count_it_trained_with(tiny_mnist, tmp_path):
    """Another thread count rounds differently, so the resumed run would not be the run that was stopped."""
    config = run_config("paper", TINY)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train(config, tmp_path / "run", data_root=tiny_mnist, progress=False)
        (tmp_path / "run" / "summary.json").unlink()  # as if it had stopped after its last checkpoint
        torch.set_num_threads(2)
        with pytest.raises(RunError, match=r"trained with 1 thread\(s\) and would resume with 2; resume with "
                                           r"--threads 1"):
            train(config, tmp_path / "run", data_root=tiny_mnist, resume=True, progress=False)
        torch.set_num_threads(1)
        assert train(config, tmp_path / "run", data_root=tiny_mnist, resume=True, progress=False)["status"] == \
            "finished"
    finally:
        torch.set_num_threads(before)
