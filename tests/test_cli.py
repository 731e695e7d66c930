"""The command line as a user meets it: real processes, real signals, real files. Ctrl-C and SIGTERM stop
cleanly and resume bit for bit; every bad input is one line with its documented exit code."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.step_hooks import KILLED, WAITING, lenet5_command
from repro.errors import EXIT_CODES, ConfigError, DataError, DivergedError, Interrupted, RunError, exit_code_table
from repro.study.docs import markers

ROOT = Path(__file__).resolve().parents[1]
TINY = ["epochs=2", "hessian_samples=8", "checkpoint_every=5"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def lenet5(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "repro", *args], capture_output=True, text=True, env=ENV, **kwargs)


def start(argv):
    return subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)


def wait_for_lines(proc, marker: str, count: int) -> list[str]:
    """Read the process's stderr until `count` lines contain `marker` (WAITING: a step hook holds a run)."""
    seen, lines = 0, []
    while seen < count:
        line = proc.stderr.readline()
        assert line, f"process ended before {marker!r}: {''.join(lines)}"
        lines.append(line)
        seen += marker in line
    return lines


def same_run(a: Path, b: Path) -> None:
    ma, mb = torch.load(a / "model.pt")["model"], torch.load(b / "model.pt")["model"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)

    def log(path):
        return [{k: v for k, v in json.loads(line).items() if k != "wall_s"}
                for line in (path / "log.jsonl").read_text().splitlines()]
    assert log(a) == log(b)


@pytest.mark.slow  # real processes
@pytest.mark.parametrize("sig, seeds, extra", [
    # Ctrl-C inside pass 2, between two checkpoints and between two re-estimates of h, with distortions
    (signal.SIGINT, [], ["hessian_every=7", "distortions=affine"]),
    # SIGTERM to a run of two seeds (one after the other) on the online engine, inside the first seed's warm-up
    (signal.SIGTERM, ["--seeds", "0", "1"], ["engine=online", "warmup_updates=20"]),
])
def test_a_signal_checkpoints_and_the_printed_command_resumes_bit_for_bit(tiny_mnist, tmp_path, sig, seeds,
                                                                          extra):
    config = ["--data-root", str(tiny_mnist), "--threads", "1", "--quiet", "--set", *TINY, *extra, *seeds]
    whole = lenet5("train", *config, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    stop_at = 44 if sig == signal.SIGINT else 13  # global update: pass 2 step 12 / pass 1 step 13 (32 per pass)
    proc = start([*lenet5_command(wait_at=stop_at), "train", *config, "--out", str(tmp_path / "cut")])
    wait_for_lines(proc, WAITING, 1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"lenet5: interrupted: {sig.name}: stopped at pass {stop_at // 32 + 1}, "
                           f"update {stop_at % 32}; checkpoint written to"), last
    command = shlex.split(last.split("resume with: ")[1])
    assert command[0] == "lenet5" and "--resume" in command
    # the seeds train one after another: the first holds its checkpoint, the second has not started
    cut = tmp_path / "cut" / ("seed0" if seeds else "")
    assert (cut / "checkpoint.pt").exists() and not (cut / "summary.json").exists()
    assert not seeds or not (tmp_path / "cut" / "seed1" / "checkpoint.pt").exists()
    resumed = lenet5(*command[1:])
    assert resumed.returncode == 0, resumed.stderr
    for sub in ([""] if not seeds else ["seed0", "seed1"]):
        same_run(tmp_path / "whole" / sub, tmp_path / "cut" / sub)


@pytest.mark.slow  # real processes
def test_sigterm_to_the_grid_driver_stops_its_workers_and_the_rerun_completes_exactly(tiny_mnist, tmp_path):
    # the tests' grid "tiny" (tests/helpers/grid_data.py) is declared in the processes lenet5_command starts
    args = ["grid", "tiny", "--seeds", "0", "--workers", "2", "--quiet", "--data-root", str(tiny_mnist)]
    plain = lenet5_command()  # no hook: the same grids, nothing stopped
    # each worker waits inside pass 2 of its first run; the third run has not started
    proc = start([*lenet5_command(wait_at=3), *args, "--out", str(tmp_path / "cut")])
    wait_for_lines(proc, WAITING, 2)
    proc.send_signal(signal.SIGTERM)  # to the driver alone, as a batch system or `kill` sends it
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert re.match(r"lenet5: interrupted: SIGTERM: grid tiny stopped with 0 of 3 runs recorded in .*; "
                    r"2 interrupted run\(s\) checkpointed in their folders; resume with: lenet5 grid tiny", last), last
    assert not (tmp_path / "cut" / "runs.jsonl").exists() or not (tmp_path / "cut" / "runs.jsonl").read_text()
    dry = subprocess.run([*plain, *args, "--out", str(tmp_path / "cut"), "--dry-run"],
                         capture_output=True, text=True, env=ENV)
    assert dry.stdout.count("partial (1/2 passes)") == 2 and dry.stdout.count(": to do") == 1, dry.stdout
    command = shlex.split(last.split("resume with: ")[1])
    rerun = subprocess.run([*plain, *command[1:]], capture_output=True, text=True, env=ENV)
    assert rerun.returncode == 0, rerun.stderr
    fresh = subprocess.run([*plain, *args, "--out", str(tmp_path / "fresh")],
                           capture_output=True, text=True, env=ENV)
    assert fresh.returncode == 0, fresh.stderr

    def rows(out):
        return {r["variant"]: r for r in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}
    cut, whole = rows(tmp_path / "cut"), rows(tmp_path / "fresh")
    assert sorted(cut) == sorted(whole) == ["c3=full", "paper", "pooling=max"]
    for variant, row in whole.items():
        assert cut[variant]["final_test_error_pct"] == row["final_test_error_pct"]
        same_run(tmp_path / "cut" / row["run_dir"], tmp_path / "fresh" / row["run_dir"])
    dry = subprocess.run([*plain, *args, "--out", str(tmp_path / "cut"), "--dry-run"],
                         capture_output=True, text=True, env=ENV)
    assert dry.stdout.count(": finished") == 3 and "0 to run or resume" in dry.stdout


def one_line_error(result, code: int, *fragments: str, prog: str = "lenet5") -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith(f"{prog}: error: ")
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


@pytest.mark.slow  # real processes
@pytest.mark.parametrize("args, fragment", [
    (["train", "--threads", "-1"], "-1 is outside 1.."),
    (["train", "--threads", "9999"], "9999 is outside 1.."),
    (["grid", "one_at_a_time", "--threads", "0"], "0 is outside 1.."),
    (["grid", "one_at_a_time", "--workers", "0"], "'0' is not a positive integer"),
    (["grid", "ladder", "--variants", "+norm=batch", "relu", "--dry-run"], "grid ladder has no variant 'relu'"),
    (["bench", "--threads", "0"], "0 is outside 1.."),
    (["counts", "--set", "c3"], "'c3' is not of the form key=value"),
    (["counts", "--set", "c3=full", "nokey=1"], "unknown config key 'nokey'"),
    (["counts", "--set", "c3=diagonal"], "c3"),
    (["train", "--preset", "nosuch"], "invalid choice: 'nosuch'"),
])
def test_bad_command_lines_are_one_line_with_exit_code_2(args, fragment):
    one_line_error(lenet5(*args), ConfigError.exit_code, fragment)


@pytest.mark.slow  # real processes
def test_set_takes_several_pairs_at_once():
    result = lenet5("counts", "--set", "c3=full", "activation=relu", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"]["c3"] == "full"


@pytest.mark.slow  # real processes
def test_run_folder_errors_are_one_line_with_exit_code_5(tiny_mnist, tmp_path):
    base = ["train", "--data-root", str(tiny_mnist), "--threads", "1", "--quiet", "--set", *TINY]
    (tmp_path / "a_file").write_text("")
    one_line_error(lenet5(*base, "--out", str(tmp_path / "a_file" / "run")), RunError.exit_code,
                   "cannot write the run folder", "choose a writable --out")
    run = tmp_path / "run"
    assert lenet5(*base, "--out", str(run)).returncode == 0
    one_line_error(lenet5(*base, "--out", str(run)), RunError.exit_code, "already holds a run; pass --resume")
    (run / "summary.json").unlink()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    one_line_error(lenet5(*base, "--out", str(run), "--resume"), RunError.exit_code,
                   f"cannot resume from {run / 'checkpoint.pt'}", "delete it to train this run again")


@pytest.mark.slow  # real processes
def test_resume_takes_the_config_from_the_run_folder(tiny_mnist, tmp_path):
    run = tmp_path / "run"
    first = subprocess.run([*lenet5_command(exit_at=40), "train", "--data-root", str(tiny_mnist), "--threads", "1",
                            "--quiet", "--set", *TINY, "c3=full", "--out", str(run)], capture_output=True, text=True,
                           env=ENV)
    assert first.returncode == KILLED, first.stderr
    refused = lenet5("train", "--data-root", str(tiny_mnist), "--out", str(run), "--resume", "--set", "c3=table")
    one_line_error(refused, ConfigError.exit_code, "has c3=full, but this command asks for c3=table",
                   "drop the --preset/--set that differ")
    refused = lenet5("train", "--data-root", str(tiny_mnist), "--out", str(run), "--resume", "--preset", "modern")
    one_line_error(refused, ConfigError.exit_code, "but this command asks for")
    resumed = lenet5("train", "--data-root", str(tiny_mnist), "--threads", "1", "--quiet", "--out", str(run),
                     "--resume", "--set", "c3=full")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "summary.json").read_text())["config"]["model"]["c3"] == "full"


@pytest.mark.slow  # real processes
def test_missing_data_is_one_line_with_exit_code_4(tmp_path):
    result = lenet5("train", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"))
    one_line_error(result, DataError.exit_code, "MNIST")


@pytest.mark.slow  # real processes
@pytest.mark.parametrize("argv", [
    ["-m", "repro", "counts"],
    ["-m", "experiments.step_size_screen", "one_at_a_time", "--table"],
])
def test_a_reader_that_closes_the_pipe_early_gets_no_traceback(argv):
    """`lenet5 ... | head`: the reader closes stdout before the command has written it all. The command exits 0
    and quietly, not with a BrokenPipeError traceback."""
    # stdout buffered, as in a user's shell: it is written at the end, after the reader left (with
    # PYTHONUNBUFFERED, set on some machines, print itself would meet the closed pipe and the final flush go untested)
    buffered = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=buffered, cwd=ROOT)
    proc.stdout.close()  # before the command has imported torch, let alone printed
    stderr = proc.stderr.read()
    assert proc.wait() == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


@pytest.mark.slow  # real processes
@pytest.mark.parametrize("variant, fragment", [
    ("nosuch", "grid one_at_a_time has no variant 'nosuch'; its variants: paper, "),
    ("paper@lr=3e-05", "screen the pure variant 'paper' instead"),
])
def test_an_experiment_scripts_errors_are_one_line_too(variant, fragment):
    result = subprocess.run([sys.executable, "-m", "experiments.step_size_screen", "one_at_a_time", "--variants",
                             variant], capture_output=True, text=True, env=ENV, cwd=ROOT)
    one_line_error(result, ConfigError.exit_code, fragment, prog="step_size_screen.py")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # not even a warning before it


def test_the_cli_page_lists_every_exit_code():
    begin, end = markers("exit-codes")
    table = (ROOT / "docs" / "cli.md").read_text().split(begin + "\n")[1].split(end)[0]
    assert table.strip() == exit_code_table()  # `lenet5 report` writes it there when a code changes
    listed = {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}
    codes = [ConfigError.exit_code, DivergedError.exit_code, DataError.exit_code, RunError.exit_code,
             Interrupted.exit_code]
    assert listed == set(EXIT_CODES) >= set(codes) and len(set(codes)) == len(codes)


@pytest.mark.slow  # real processes
def test_evaluate_and_predict_as_commands(real_data_root):
    run = ROOT / "results" / "paper_final" / "seed0"
    result = lenet5("evaluate", str(run), "--json", "--data-root", str(real_data_root))
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["error_pct"] == json.loads((run / "summary.json").read_text())["final_test_error_pct"]
    assert measured["equals_summary"] is True
    digits = [f"{real_data_root}/MNIST/raw/t10k-images-idx3-ubyte:{i}" for i in range(3)]
    result = lenet5("predict", str(run / "model.pt"), *digits)
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines()[1:]] == ["7", "2", "1"]  # the labels
    one_line_error(lenet5("predict", str(run.parent / "nosuch"), digits[0]), RunError.exit_code, "does not exist")
    one_line_error(lenet5("predict", str(run), digits[0][:-1] + "99999"), DataError.exit_code, "out of range")


@pytest.mark.parametrize("args, fragment", [
    (["train", "--seeds", "-1"], "'-1' is not a seed"),
    (["grid", "ladder", "--seeds", "0", "-3", "--dry-run"], "'-3' is not a seed"),
    (["counts", "--set", "seed=-1"], "invalid value -1 for 'seed'"),
    (["verify", "results/paper_final", "--seeds", "x"], "'x' is not a seed"),
])
def test_a_negative_or_non_integer_seed_is_one_line_with_exit_code_2(args, fragment, capsys):
    from repro.cli import main
    try:
        code = main(args)
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err


@pytest.mark.parametrize("args, code, fragment", [
    (["report", "--results", "no/such/results"], 2, "--results no/such/results: no such folder"),
    (["report", "--docs", "no/such/page.md"], 2, "--docs: no such page no/such/page.md"),
    (["figures", "--results", "no/such/results"], 2, "--results no/such/results: no such folder"),
    (["bench", "--variants", "nope", "--quick"], 2, "unknown bench variant 'nope'"),
    (["verify", "no/such/folder"], 5, "holds no finished run"),
    (["evaluate", "no/such/model"], 5, "or a pretrained network's name (paper, "),
    (["predict", "nosuchnet", "x.png"], 5, "or a pretrained network's name (paper, "),
])
def test_every_command_answers_a_mistake_with_one_line_and_its_exit_code(args, code, fragment, capsys, tmp_path,
                                                                         monkeypatch):
    from repro.cli import main

    monkeypatch.chdir(tmp_path)  # nothing a command might write lands in the repository
    try:
        got = main(args)
    except SystemExit as stop:  # argparse's own usage errors
        got = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert got == code and len(err) == 1 and err[0].startswith("lenet5: error: ") and fragment in err[0], err
