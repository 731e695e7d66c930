"""Training (Sec. III-B): runs of a RunConfig, resumable, with a JSON line per pass.

A run writes its folder through repro/run_folder.py, which owns the files' names and formats: config.json at the
start; after each pass log.jsonl, log.csv, test_predictions.json, test_outputs.npz and checkpoint.pt (also every
`checkpoint_every` steps, atomically); at the end model.pt, nondigit_outputs.npz (MNIST runs) and summary.json.
The summary records where the wall time went (`phases_s`, repro/phases.py) and what made the run: the code's
commit and the machine (repro/provenance.py).
`resume=True` continues from the checkpoint; the result is bit-for-bit that of an uninterrupted run (the data
order of each pass is a function of the seed and the pass, and the checkpoint holds every other state), which is
why a resume with another thread count than the checkpoint's is refused.
Only the `wall_s` fields differ. A run whose loss becomes NaN or infinite stops as `diverged`, keeping the
last good checkpoint.

`train_seeds` trains several seeds of one config, one after another, each into its own run folder: a seed's
numbers are those of the same seed trained alone (tested bit for bit). The online engines can step several runs
in lockstep (repro/online.py; `lenet5 bench` measures it), but training does not use that: a batched step rounds
differently from a lone one, online training amplifies the difference into another trajectory, and a seed's
result would then depend on which seeds trained beside it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from . import atomic
from .config import RunConfig, config_differences
from .counts import layer_counts, totals
from .data import MNISTTensors, load_mnist
from .distortions import affine_parameters, distorted_pass
from .engines import compiled_phases, make_engine
from .errors import DivergedError, Interrupted, RunError
from .evaluation import EVAL_BATCH, Evaluator, evaluate  # noqa: F401 - evaluate: the public name it always had
from .interrupt import STOP_CHECK_PATTERNS, stop_requested, stop_signals
from .model import LeNet5, build_model
from .optim import lr_for_pass, make_optimizer, set_lr
from .phases import PhaseClock
from .provenance import provenance
from .run_folder import (RunPaths, log_csv, log_jsonl, model_state, nondigit_npz, outputs_npz, predictions_json,
                         read_run_config)
# the run folder's readers, long imported from here by scripts: repro/run_folder.py owns them
from .run_folder import read_log, read_nondigit_outputs, read_outputs  # noqa: F401,E402

DIVERGENCE_CHECK_EVERY = 1000  # steps between checks of the running loss
WARMUP_BLOCK = 100  # a warm-up raises the step size every this many updates (the engines step in chunks)


@dataclass(frozen=True)
class StepHook:
    """A seam for tests: `action(runs)` is called with the live runs when they have made `update` updates in all
    (pass_index * steps_per_pass + step), after the loop's divergence check and checkpoint there and before it
    looks for a stop signal. The loop ends a stretch of updates at that point, so the call comes at exactly that
    update. Production installs none; tests do (`install_step_hook`, from the driver scripts in tests/helpers/)
    to kill a run abruptly where a resume must be bit for bit, to hold it still until a signal arrives, to make
    its weights non-finite (a divergence the run's own check must catch) or to raise (a failure)."""

    update: int
    action: Callable[[list[Run]], None]


_step_hook: StepHook | None = None


def install_step_hook(hook: StepHook | None) -> None:
    """Call `hook` in every run this process trains from now on (None: no hook). Process-wide rather than an
    argument, because the runs that tests stop live in other processes: a `lenet5` command, a grid's pool
    workers, Ray workers, each of which installs the hook where it starts."""
    global _step_hook
    _step_hook = hook


def _stream_seed(seed: int, pass_index: int, stream: int) -> int:
    return seed * 1_000_003 + pass_index * 101 + stream


def pass_permutation(seed: int, pass_index: int, n: int) -> torch.Tensor:
    """The order in which pass `pass_index` visits the training set."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_stream_seed(seed, pass_index, 0)))


def hessian_sample(seed: int, pass_index: int, n: int, k: int, step: int = 0) -> torch.Tensor:
    """Indices of the patterns on which SDLM estimates h_kk before pass `pass_index` (App. C: 500), or before
    update `step` of that pass (hessian_every)."""
    stream = _stream_seed(seed, pass_index, 1)
    gen = torch.Generator().manual_seed(stream if step == 0 else stream * 1_000_033 + step)
    return torch.randperm(n, generator=gen)[:k]


def warmup_factor(step: int, warmup_updates: int) -> float:
    """The fraction of pass 1's step size used from update `step` on: a linear ramp in blocks of
    WARMUP_BLOCK updates, reaching 1 at update `warmup_updates`."""
    if step >= warmup_updates:
        return 1.0
    block = warmup_block(warmup_updates)
    return min(1.0, (step // block + 1) * block / warmup_updates)


def warmup_block(warmup_updates: int) -> int:
    """Updates per warm-up level: WARMUP_BLOCK, or fewer so that a short warm-up still has 10 levels."""
    return max(1, min(WARMUP_BLOCK, warmup_updates // 10))


@dataclass(eq=False)  # runs are compared by identity
class Run:
    """One seed's run: its folder, model, optimizer and position, as the checkpoint records them."""

    config: RunConfig
    paths: RunPaths
    model: LeNet5
    optimizer: torch.optim.Optimizer
    pass_index: int = 0
    step: int = 0
    log: list = field(default_factory=list)
    elapsed: float = 0.0
    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    step_stats: dict = field(default_factory=dict)
    order: torch.Tensor | None = None
    # the patterns of the current pass, which `order` indexes: the training set, or with distortions the pass's
    # draw from the pool of originals and distorted copies (repro/distortions.py)
    train_x: torch.Tensor | None = None
    train_y: torch.Tensor | None = None
    distortion_params: torch.Tensor | None = None
    started: float = 0.0
    clock: PhaseClock = field(default_factory=PhaseClock)
    evaluator: Evaluator | None = None  # set by the drive (repro.engines.compiled_phases says if it compiles)
    compiled_curvature: bool = False  # likewise for SDLM's curvature estimate

    def wall(self) -> float:
        return time.perf_counter() - self.started

    def save_checkpoint(self) -> None:
        atomic.torch_save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                           "rng": torch.get_rng_state(), "pass": self.pass_index, "step": self.step,
                           "loss_sum": self.loss_sum, "step_stats": self.step_stats, "log": self.log,
                           "elapsed": self.wall(), "phases": self.clock.spent,
                           "threads": torch.get_num_threads()}, self.paths.checkpoint)


def _check_run_folder(paths: RunPaths, config: RunConfig, resume: bool) -> bool:
    """Whether there is a run to resume; refuses to mix runs in one folder."""
    exists = paths.checkpoint.exists() or paths.summary.exists()
    if exists and not resume:
        raise RunError(f"{paths.root} already holds a run; pass --resume to continue it, or choose another --out")
    if exists:
        saved = read_run_config(paths.root)
        if saved != config:
            diff = config_differences(saved, config)
            raise RunError(f"{paths.root} holds a run of another config (saved vs asked: {diff}); "
                           f"resume with the same --preset/--set, or choose another --out")
    return exists


def _open_run(config: RunConfig, out: Path, resume: bool) -> Run | dict:
    """A Run ready to continue, or the summary of a run that has already finished."""
    paths = RunPaths(Path(out))
    resuming = _check_run_folder(paths, config, resume)
    if resuming and paths.summary.exists():
        summary = json.loads(paths.summary.read_text())
        if summary["status"] == "finished":
            return summary
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        atomic.write_text(paths.config, json.dumps(config.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise RunError(f"cannot write the run folder {paths.root} ({exc.strerror or exc}); choose a writable "
                       f"--out") from None
    torch.manual_seed(config.train.seed)
    model = build_model(config)
    run = Run(config, paths, model, make_optimizer(config.train, model))
    if resuming and paths.checkpoint.exists():
        try:
            state = torch.load(paths.checkpoint, weights_only=False)
            model.load_state_dict(state["model"])
            run.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            run.pass_index, run.step, run.log = state["pass"], state["step"], state["log"]
            run.elapsed, run.loss_sum, run.step_stats = state["elapsed"], state["loss_sum"], state["step_stats"]
            run.clock = PhaseClock(state.get("phases"))  # checkpoints written before phases were timed have none
            saved_threads = state.get("threads")
        except Exception as exc:  # noqa: BLE001 - any unreadable or foreign checkpoint gets the same advice
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(f"cannot resume from {paths.checkpoint} ({reason[:160]}); restore the file, or delete it "
                           f"to train this run again from the start") from None
        if saved_threads is not None and saved_threads != torch.get_num_threads():
            # another thread count rounds differently: the resumed run would not be the run that was stopped
            raise RunError(f"{paths.root} trained with {saved_threads} thread(s) and would resume with "
                           f"{torch.get_num_threads()}; resume with --threads {saved_threads}, so that it continues "
                           f"bit for bit as the run that was stopped")
    return run


def train(config: RunConfig, out: str | os.PathLike, data_root=None, resume: bool = False,
          data: MNISTTensors | None = None, progress: bool = True) -> dict:
    """Train one run to completion; returns its summary. Raises DivergedError if it diverges."""
    summary = train_seeds(config, [config.train.seed], [out], data_root, resume, data, progress)[0]
    if summary["status"] == "diverged":
        raise DivergedError(summary["message"])
    return summary


def train_seeds(config: RunConfig, seeds: list[int], outs: list, data_root=None, resume: bool = False,
                data: MNISTTensors | None = None, progress: bool = True) -> list[dict]:
    """Train `config` once per seed, one after another, each into its own folder; returns the summaries in order
    (a diverged run's summary has status 'diverged' and the others go on)."""
    configs = [dataclasses.replace(config, train=dataclasses.replace(config.train, seed=s)) for s in seeds]
    opened = [_open_run(c, Path(o), resume) for c, o in zip(configs, outs)]
    pending = [r for r in opened if isinstance(r, Run)]
    if pending:
        cfg = config.train
        if config.model.norm == "batch" and cfg.batch_size == 1 and cfg.bn_eval == "running" and progress:
            print("note: BatchNorm at batch_size 1 evaluates with its running statistics here; --set "
                  "bn_eval=per_pattern evaluates it as it trains (paper_notes/normalisation.md)", file=sys.stderr)
        data = data or load_mnist(config.model.input, data_root, train_size=cfg.train_size or None,
                                  evaluate_on=cfg.evaluate_on, dataset=cfg.dataset)
        with stop_signals():
            for run in pending:  # alone, never in lockstep (module docstring)
                _drive([run], data, progress, data_root)
    return [r if isinstance(r, dict) else json.loads(r.paths.summary.read_text()) for r in opened]


def _drive(runs: list[Run], data: MNISTTensors, progress: bool, data_root=None) -> None:
    """Advance runs that stand at the same position to the end of training."""
    config, cfg = runs[0].config, runs[0].config.train
    engine = make_engine(config, data)
    n = len(data.train_y)
    steps_per_pass = math.ceil(n / cfg.batch_size)
    hook = _step_hook
    compiled = compiled_phases(config, n, len(data.test_y))
    for run in runs:
        run.started = time.perf_counter() - run.elapsed
        run.compiled_curvature = compiled["curvature"]
        run.evaluator = Evaluator(run.model, config.loss, cfg.map_j, compiled=compiled["evaluation"])
    bar = tqdm(total=cfg.epochs * steps_per_pass * len(runs), unit="step", disable=not progress,
               initial=(runs[0].pass_index * steps_per_pass + runs[0].step) * len(runs), mininterval=2.0,
               file=sys.stderr)
    live = list(runs)
    for pass_index in range(runs[0].pass_index, cfg.epochs):
        for run in live:
            set_lr(run.optimizer, lr_for_pass(cfg, pass_index))
            run.order = pass_permutation(run.config.train.seed, pass_index, n)
            run.train_x, run.train_y = _pass_patterns(run, data, pass_index)
            if run.step == 0:
                _estimate_curvature(run, pass_index, 0)
                run.loss_sum = torch.zeros((), dtype=torch.float64)
        step = live[0].step
        while step < steps_per_pass and live:
            end = min(steps_per_pass, _next_multiple(step, DIVERGENCE_CHECK_EVERY),
                      _next_multiple(step, cfg.checkpoint_every))
            if cfg.hessian_every:
                end = min(end, _next_multiple(step, cfg.hessian_every))
                if step > 0 and step % cfg.hessian_every == 0:  # h goes stale as the weights grow
                    for run in live:
                        _estimate_curvature(run, pass_index, step)
            if pass_index == 0 and cfg.warmup_updates:
                end = min(end, _next_multiple(step, warmup_block(cfg.warmup_updates)))
                for run in live:
                    set_lr(run.optimizer, lr_for_pass(cfg, 0) * warmup_factor(step, cfg.warmup_updates))
            if hook and hook.update > pass_index * steps_per_pass + step:
                end = min(end, hook.update - pass_index * steps_per_pass)
            end = min(end, step + max(1, STOP_CHECK_PATTERNS // cfg.batch_size))
            with live[0].clock.phase("updates", engine):  # runs in lockstep share the time
                engine.run_steps(live, step, end)
            for run in live[1:]:
                run.clock.spent = dict(live[0].clock.spent)
            bar.update((end - step) * len(live))
            step = end
            for run in live:
                run.step = step
            live = [r for r in live if not _diverged(r, step)]
            if step % cfg.checkpoint_every == 0 and step < steps_per_pass:
                for run in live:
                    run.save_checkpoint()
            if hook and pass_index * steps_per_pass + step == hook.update:
                hook.action(live)
            if stop_requested() and step < steps_per_pass and live:  # a diverged run has its summary: no stop
                _stop(live, bar)
        for run in list(live):
            if not _finish_pass(run, data, pass_index, steps_per_pass, progress):
                live.remove(run)
        if not live:  # every run diverged, in this pass or at its end: no further pass
            break
        if stop_requested() and pass_index + 1 < cfg.epochs:
            _stop(live, bar)  # _finish_pass wrote the checkpoint
    bar.close()
    for run in live:
        _finish_run(run, data_root)


def _stop(runs: list[Run], bar) -> None:
    """A stop signal arrived (repro/interrupt.py): checkpoint every run where it stands and raise Interrupted."""
    bar.close()
    for run in runs:
        if run.step:  # at a pass boundary _finish_pass has just written it
            run.save_checkpoint()
    where = runs[0] if runs else None
    position = f"pass {where.pass_index + 1}, update {where.step:,}" if where else "no run left"
    raise Interrupted(f"{stop_requested()}: stopped at {position}; checkpoint written to "
                      + ", ".join(str(r.paths.checkpoint) for r in runs))


def _estimate_curvature(run: Run, pass_index: int, step: int) -> None:
    """The optimizer's `prepare` (SDLM: App. C's h_kk) on the sample of the current pass's patterns drawn for
    (pass, step)."""
    cfg = run.config.train
    idx = hessian_sample(cfg.seed, pass_index, len(run.train_y), cfg.hessian_samples, step)
    with run.clock.phase("curvature", run.optimizer):
        run.step_stats = run.optimizer.prepare(run.model, run.train_x[idx], run.train_y[idx], run.config.loss,
                                               compiled=run.compiled_curvature)


def _pass_patterns(run: Run, data: MNISTTensors, pass_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = run.config.train
    if cfg.distortions == "none":
        return data.train_x, data.train_y
    if data.train_raw is None:
        raise RunError("distortions need the training images as read; load the data with repro.data.load_mnist")
    if run.distortion_params is None:  # the run's 540,000 maps, drawn once (a function of the seed)
        run.distortion_params = affine_parameters(cfg.seed, len(data.train_y), cfg.distortion_strength)
    return distorted_pass(data.train_raw, data.train_y, run.distortion_params, cfg.seed, pass_index,
                          run.config.model.input)


def pass_line(entry: dict, config: RunConfig) -> str:
    """One readable line per pass for the terminal (log.jsonl keeps everything)."""
    where = "validation" if config.train.evaluate_on == "validation" else "test"
    return (f"pass {entry['pass']}/{config.train.epochs}  train error {entry['train_error_pct']:.2f}%  "
            f"{where} error {entry['test_error_pct']:.2f}%  train loss {entry['train_loss']:.4g}  "
            f"lr {entry['lr']:.3g}  {entry['wall_s']:.0f} s")


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _diverged(run: Run, step: int) -> bool:
    if torch.isfinite(run.loss_sum):
        return False
    _mark_diverged(run, step)
    return True


def _mark_diverged(run: Run, step: int) -> None:
    message = (f"run diverged in pass {run.pass_index + 1} before step {step}: the training loss is not finite "
               f"(lr {run.optimizer.param_groups[0]['lr']:g}); the last good checkpoint is kept in "
               f"{run.paths.checkpoint}; lower --set lr=... and start a new run")
    _write_summary(run, "diverged", message)


def _finish_pass(run: Run, data: MNISTTensors, pass_index: int, steps_per_pass: int, progress: bool) -> bool:
    """Evaluate, log and checkpoint the end of a pass; False if the run diverged."""
    config = run.config
    evaluator = run.evaluator or Evaluator(run.model, config.loss, config.train.map_j)
    with run.clock.phase("evaluation", evaluator):
        train_eval = evaluator(data.train_x, data.train_y)
        test_eval = evaluator(data.test_x, data.test_y)
    if not (math.isfinite(train_eval["loss"]) and math.isfinite(test_eval["loss"])):
        _mark_diverged(run, steps_per_pass)
        return False
    line = {"pass": pass_index + 1, "lr": run.optimizer.param_groups[0]["lr"],
            "train_loss": (run.loss_sum / steps_per_pass).item(), "train_error_pct": train_eval["error_pct"],
            "test_error_pct": test_eval["error_pct"], "test_loss": test_eval["loss"],
            "effective_steps": run.step_stats, "wall_s": round(run.wall(), 2)}
    run.log.append(line)
    atomic.write_text(run.paths.log, log_jsonl(run.log))
    # written before the checkpoint, so a run resumed after its last pass still has its final predictions
    atomic.write_text(run.paths.predictions, predictions_json(data.test_y.tolist(),
                                                              test_eval["predictions"].tolist()))
    atomic.write_bytes(run.paths.outputs, outputs_npz(test_eval["outputs"]))
    atomic.write_text(run.paths.log_csv, log_csv(run.log))
    if progress:
        tqdm.write(pass_line(line, run.config), file=sys.stdout)
    run.pass_index, run.step = pass_index + 1, 0
    run.loss_sum, run.step_stats = torch.zeros((), dtype=torch.float64), {}
    run.save_checkpoint()
    return True


def _finish_run(run: Run, data_root=None) -> None:
    """The final model and summary; the last pass already wrote the test predictions and outputs. An MNIST run
    also keeps its outputs on non-digits (repro/nondigits.py), for the rejection tables."""
    atomic.torch_save(model_state(run.model, run.config), run.paths.model)
    if run.config.train.dataset == "mnist":
        write_nondigit_outputs(run.paths.root, run.model, run.config, data_root)
    _write_summary(run, "finished", "", trainable_params=totals(layer_counts(run.model))[0])


def _write_summary(run: Run, status: str, message: str, trainable_params: int | None = None) -> dict:
    log = run.log
    summary = {"status": status, "message": message, "config": run.config.to_dict(), "passes": len(log),
               "final_train_error_pct": log[-1]["train_error_pct"] if log else None,
               "final_test_error_pct": log[-1]["test_error_pct"] if log else None,
               "best_train_error_pct": min((e["train_error_pct"] for e in log), default=None),
               "best_test_error_pct": min((e["test_error_pct"] for e in log), default=None),
               "wall_s": round(run.wall(), 2), "phases_s": run.clock.seconds(run.wall()),
               "trainable_params": trainable_params, "threads": torch.get_num_threads(), "torch": torch.__version__,
               **provenance()}
    atomic.write_text(run.paths.summary, json.dumps(summary, indent=2) + "\n")
    return summary


def write_nondigit_outputs(run_dir: Path, model: LeNet5, config: RunConfig, data_root=None) -> None:
    """nondigit_outputs.npz: the model's outputs on each non-digit set (repro/nondigits.py)."""
    from .nondigits import nondigit_outputs

    atomic.write_bytes(RunPaths(Path(run_dir)).nondigit_outputs,
                       nondigit_npz(nondigit_outputs(model, config, data_root)))
