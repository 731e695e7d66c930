"""The project's errors and the exit code each gives on the command line (docs/cli.md lists them, written there by `lenet5 report`).

Each error's message is one line that names the problem and the fix; `lenet5` prints it as
`lenet5: error: <message>` and exits with the error's code, with no traceback.
"""
from __future__ import annotations

import os
import sys


class LeNet5Error(Exception):
    """Base of the errors `lenet5` reports in one line."""

    exit_code = 1


class ConfigError(LeNet5Error, ValueError):
    """A configuration or command line the project cannot run; the message names the key, the value and the fix."""

    exit_code = 2


class RunError(LeNet5Error, RuntimeError):
    """A run that cannot start or continue (its folder, checkpoint or model file); the message says why and what
    to do."""

    exit_code = 5


class DivergedError(RunError):
    """A run whose training loss stopped being finite."""

    exit_code = 3


class DataError(LeNet5Error, RuntimeError):
    """The data cannot be loaded; the message says which file and what to do."""

    exit_code = 4


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM: the runs were checkpointed; the message says where. A KeyboardInterrupt, so
    that code which catches Exception does not swallow it."""

    exit_code = 130


GRID_RUNS_FAILED = 6  # `lenet5 grid` finished, but some runs failed (their rows say why; rerunning retries them)
NOT_REPRODUCED = 7  # `lenet5 verify` finished, and the new runs differ from the committed ones by more than its margin

# exit code -> meaning, for docs/cli.md's table (tests/test_cli.py checks that the page lists each)
EXIT_CODES = {
    0: "success",
    ConfigError.exit_code: "bad command line or config: unknown key or value, impossible combination, thread "
                           "count outside 1..cores, `--set` syntax (argparse's own usage errors are 2 too)",
    DivergedError.exit_code: "a run diverged (its loss is not finite); the last good checkpoint is kept",
    DataError.exit_code: "data files missing or corrupt; the message names the paths and how to get them",
    RunError.exit_code: "run folder, checkpoint or model file: --out not writable, already holds another run, "
                        "unreadable or mismatched checkpoint or model.pt",
    GRID_RUNS_FAILED: "`lenet5 grid` finished with failed runs (rerun the same command to retry them)",
    NOT_REPRODUCED: "`lenet5 verify` finished with the verdict `different`: the new runs' mean test error is outside "
                    "the committed one's equivalence margin",
    Interrupted.exit_code: "interrupted by Ctrl-C or SIGTERM after writing a checkpoint; the message gives the "
                           "command that resumes",
}


def exit_code_table() -> str:
    """EXIT_CODES as docs/cli.md's Markdown table."""
    return "\n".join(["| exit code | meaning |", "|---|---|"] + [f"| {c} | {m} |" for c, m in EXIT_CODES.items()])


def report_errors(command, prog: str, resume_hint=lambda: "run the same command again to resume") -> int:
    """Run `command()` with the command line's manners and return its exit code: an error is one line
    `<prog>: error: <message>` and its exit code; Ctrl-C or SIGTERM prints `<prog>: interrupted: ...` with
    `resume_hint()`; a reader that closed stdout early (`lenet5 grid NAME --dry-run | head`) already has all it
    wanted, so the command ends quietly with 0 instead of a BrokenPipeError traceback."""
    try:
        code = command()
        sys.stdout.flush()  # here, where a closed pipe is caught below, not at the interpreter's exit
        return code or 0
    except LeNet5Error as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        print(f"{prog}: interrupted: {exc}; {resume_hint()}", file=sys.stderr)
        return Interrupted.exit_code
    except BrokenPipeError:
        # Python's advice (docs.python.org/3/library/signal.html, "Note on SIGPIPE"): point stdout at devnull,
        # so that the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run_script(main, argv=None) -> int:
    """Run an experiments/ script's `main(argv)` as `lenet5` runs its commands (report_errors), under the
    script's own name."""
    return report_errors(lambda: main(argv), os.path.basename(sys.argv[0]) or "script")
