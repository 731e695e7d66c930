"""Where a run's wall time goes: updates, SDLM's curvature re-estimates, the per-pass evaluations, the hand-overs
between them (packing the runs' weights and optimizer state into the online engine and back, gathering each
chunk's patterns), the one-off compilations, and everything else (checkpoints, logging, the pass's data order).
Each run's summary.json has them as `phases_s`; `lenet5 bench` reports them as shares."""
from __future__ import annotations

import contextlib
import time

TIMED = ("updates", "curvature", "evaluation", "handover", "compile")
PHASES = TIMED + ("other",)


class PhaseClock:
    """Seconds spent per phase. `phase(name, part)` times a block; the seconds that `part` reports spending on
    compiling (its `compile_s` counter: a compiled engine, estimator or evaluator) or on hand-overs (its
    `handover_s`: the online engine) during the block are moved to those phases, so that a phase measures its
    steady cost."""

    def __init__(self, spent: dict | None = None):
        self.spent = {name: 0.0 for name in TIMED}
        self.spent.update({k: v for k, v in (spent or {}).items() if k in TIMED})

    @contextlib.contextmanager
    def phase(self, name: str, part=None):
        before = {moved: getattr(part, f"{moved}_s", 0.0) for moved in ("compile", "handover")}
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] += time.perf_counter() - start
            for moved, was in before.items():
                seconds = getattr(part, f"{moved}_s", 0.0) - was
                self.spent[name] -= seconds
                self.spent[moved] += seconds

    def seconds(self, wall: float) -> dict[str, float]:
        """Every phase in seconds, `other` being the wall time not in a timed phase."""
        return {**{k: round(v, 2) for k, v in self.spent.items()},
                "other": round(max(0.0, wall - sum(self.spent.values())), 2)}


class CompileTimer:
    """A callable's first call per input shape, when compiled, is its compilation: counted in `compile_s`."""

    def __init__(self, fn, compiled: bool):
        self.fn, self.compiled, self.compile_s, self._seen = fn, compiled, 0.0, set()

    def __call__(self, *args):
        key = tuple(tuple(a.shape) for a in args if hasattr(a, "shape"))
        if not self.compiled or key in self._seen:
            return self.fn(*args)
        start = time.perf_counter()
        try:
            return self.fn(*args)
        finally:
            self._seen.add(key)
            self.compile_s += time.perf_counter() - start
