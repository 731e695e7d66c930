"""Ctrl-C (SIGINT) and SIGTERM stop training cleanly instead of killing it.

While `stop_signals()` is active, either signal only records a request; the training loop (repro/train.py)
checks `stop_requested()` between chunks of at most STOP_CHECK_PATTERNS patterns, writes every run's checkpoint
and raises `Interrupted`, so a resumed run continues bit for bit. A second signal does not escalate: grid workers
receive both the terminal's Ctrl-C and the one their driver forwards, and must not die from the second.

Grid workers (repro/study/grid.py) keep the handler for their whole life (`install_for_process`), so that a
request that arrives between two runs still stops the next one before it starts.
"""
from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_CHECK_PATTERNS = 1000  # patterns trained between two checks (a fraction of a second online)

_requested: list[int] = []  # the signals received since the last reset (a list: handlers may not rebind)


def _handler(signum, _frame) -> None:
    _requested.append(signum)


def stop_requested() -> str | None:
    """The name of the first stop signal received (e.g. 'SIGINT'), or None."""
    return signal.Signals(_requested[0]).name if _requested else None


def install_for_process() -> None:
    """Record stop signals for the rest of this process's life (grid pool workers)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)


@contextlib.contextmanager
def stop_signals():
    """Record SIGINT and SIGTERM instead of acting on them, until the block ends; then restore the previous
    handlers. Outside the main thread (where Python cannot install handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    ours = all(handler is _handler for handler in previous.values())
    if not ours:  # a fresh request per block; a worker's standing handler keeps what it already received
        _requested.clear()
        for sig in STOP_SIGNALS:
            signal.signal(sig, _handler)
    try:
        yield
    finally:
        if not ours:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
