"""Stop a run at a chosen update in another process, through repro.train's seam (`StepHook`): exit abruptly there
(as a kill would: the resume must be bit for bit), or wait there until a stop signal arrives (Ctrl-C or SIGTERM
at a known position).

The runs that tests stop live in other processes (a `lenet5` command, a grid's pool workers, Ray workers), so the
hook is installed where they start: `lenet5_command` gives the command line of hooked_lenet5.py, which installs
the hook named by its options and then runs `lenet5`."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

DRIVER = Path(__file__).with_name("hooked_lenet5.py")
WAITING = "step hook: waiting for a stop signal"  # printed to stderr by a run that waits: tests read for it
KILLED = 137  # the exit status of an abrupt exit, as a shell reports a SIGKILL
WAIT_LIMIT_S = 60.0  # a test that never sends its signal fails slowly rather than hanging
HOOK_ENV = "HOOKED_LENET5_HOOK"  # the hook's options, for the Ray workers that install it (join_ray_cluster)


FAILURE = "step hook: a forced failure"  # the message of the error --fail-at raises


def lenet5_command(exit_at: int | None = None, wait_at: int | None = None, wait_once: Path | None = None,
                   poison_at: int | None = None, fail_at: int | None = None) -> list:
    """The command that runs `lenet5` with a step hook in a new process; append lenet5's arguments. `exit_at`:
    exit abruptly after that update; `wait_at`: wait there for a stop signal (`wait_once`: only the first run to
    get there, which writes its process id into that file, so that a retried run goes on); `poison_at`: make the
    runs' weights NaN there (the run must find its loss non-finite at its next check: a divergence mid-pass);
    `fail_at`: raise a RunError there (a run that fails)."""
    options = []
    for flag, value in (("--exit-at", exit_at), ("--wait-at", wait_at), ("--wait-once", wait_once),
                        ("--poison-at", poison_at), ("--fail-at", fail_at)):
        if value is not None:
            options += [flag, str(value)]
    return [sys.executable, str(DRIVER), *options, "--"]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """hooked_lenet5.py's own options (before `--`), and lenet5's arguments (after it)."""
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="hooked_lenet5.py")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--exit-at", type=int)
    group.add_argument("--wait-at", type=int)
    group.add_argument("--poison-at", type=int)
    group.add_argument("--fail-at", type=int)
    parser.add_argument("--wait-once")
    return parser.parse_args(argv[:split]), argv[split + 1:]


def install(options: argparse.Namespace) -> None:
    """Install in this process the hook `options` name (none if they name none)."""
    from repro.train import StepHook, install_step_hook

    if options.exit_at is not None:
        install_step_hook(StepHook(options.exit_at, exit_abruptly))
    elif options.wait_at is not None:
        install_step_hook(StepHook(options.wait_at, lambda runs: wait_for_stop_signal(options.wait_once)))
    elif getattr(options, "poison_at", None) is not None:
        install_step_hook(StepHook(options.poison_at, poison))
    elif getattr(options, "fail_at", None) is not None:
        install_step_hook(StepHook(options.fail_at, fail))
    else:
        install_step_hook(None)


@contextlib.contextmanager
def hooked(hook):
    """Install `hook` in this process for the duration of a with-block (it is process-wide): for tests that train
    in their own process."""
    from repro.train import install_step_hook

    install_step_hook(hook)
    try:
        yield
    finally:
        install_step_hook(None)


def request_stop(runs=None) -> None:
    """Send this process SIGTERM, as `kill` would: the handler train_seeds installed records it."""
    os.kill(os.getpid(), signal.SIGTERM)


def exit_abruptly(runs=None) -> None:
    os._exit(KILLED)  # no cleanup and no checkpoint beyond the ones already written: as a kill


def poison(runs) -> None:
    """Make every weight of each run NaN, as a step size too large would in a few updates: its next updates
    give a non-finite loss, which the run's own divergence check must catch."""
    import torch

    with torch.no_grad():
        for run in runs:
            for parameter in run.model.parameters():
                parameter.fill_(float("nan"))


def fail(runs) -> None:
    """A run that fails there (as a full disk or a bug would), with an error `lenet5` reports in one line."""
    from repro.errors import RunError

    raise RunError(FAILURE)


def wait_for_stop_signal(once_file: str | None = None) -> None:
    """Say so on stderr, then wait until a stop signal is recorded (repro/interrupt.py) or WAIT_LIMIT_S pass.
    `once_file`: wait only if it does not exist yet, and write this process's id into it."""
    from repro import atomic
    from repro.interrupt import stop_requested

    if once_file:
        if Path(once_file).exists():
            return
        atomic.write_text(Path(once_file), str(os.getpid()))  # whole or absent for a reader that polls it
    print(WAITING, file=sys.stderr, flush=True)
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not stop_requested() and time.monotonic() < deadline:
        time.sleep(0.01)


def join_ray_cluster(address: str | None, options: argparse.Namespace) -> None:
    """Join the Ray cluster as repro.study.ray_backend.connect would (which then finds Ray initialised), asking
    Ray to install the same hook in every worker process it starts for this driver: Ray workers are not children
    of the driver and import nothing of it, so Ray ships this package to them and calls
    `install_from_environment` in each."""
    import ray

    import helpers

    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"py_modules": [helpers], "env_vars": {HOOK_ENV: json.dumps(vars(options))},
                          "worker_process_setup_hook": f"{__name__}.install_from_environment"})


def install_from_environment() -> None:
    """A Ray worker's setup (join_ray_cluster): the driver's hook, from the environment Ray gave the worker."""
    install(argparse.Namespace(**json.loads(os.environ[HOOK_ENV])))
