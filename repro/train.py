"""Training (Sec. III-B): one run of a RunConfig, resumable, with a JSON line per pass.

A run folder holds config.json, log.jsonl (one line per pass), checkpoint.pt (written atomically after each
pass and every `checkpoint_every` steps), and at the end model.pt, test_predictions.json and summary.json.
`resume=True` continues from the checkpoint; the result is bit-for-bit that of an uninterrupted run (the data
order of each pass is a function of the seed and the pass, and the checkpoint holds every other state).
Only the `wall_s` fields differ. A pass whose loss becomes NaN or infinite stops the run as `diverged`,
keeping the last good checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from . import atomic
from .config import RunConfig
from .counts import layer_counts, totals
from .data import MNISTTensors, load_mnist
from .losses import LOSSES
from .model import LeNet5
from .optim import lr_for_pass, make_optimizer, set_lr

# Test hook: exit abruptly (like a kill) right after this global step, to test resuming.
EXIT_AT_STEP_ENV = "LENET5_TEST_EXIT_AT_STEP"
EVAL_BATCH = 1000


class RunError(RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


class DivergedError(RunError):
    pass


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def predictions(self) -> Path:
        return self.root / "test_predictions.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


def _stream_seed(seed: int, pass_index: int, stream: int) -> int:
    return seed * 1_000_003 + pass_index * 101 + stream


def pass_permutation(seed: int, pass_index: int, n: int) -> torch.Tensor:
    """The order in which pass `pass_index` visits the training set."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_stream_seed(seed, pass_index, 0)))


def hessian_sample(seed: int, pass_index: int, n: int, k: int) -> torch.Tensor:
    """Indices of the patterns on which SDLM estimates h_kk before pass `pass_index` (App. C: 500)."""
    gen = torch.Generator().manual_seed(_stream_seed(seed, pass_index, 1))
    return torch.randperm(n, generator=gen)[:k]


@torch.no_grad()
def evaluate(model: LeNet5, x: torch.Tensor, y: torch.Tensor, loss: str, j: float) -> dict:
    """Error rate (%), mean loss and predictions on (x, y), in eval mode."""
    was_training = model.training
    model.eval()
    try:
        outputs = torch.cat([model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])
    finally:
        model.train(was_training)
    predictions = model.predict(outputs)
    return {"error_pct": 100.0 * (predictions != y).double().mean().item(),
            "loss": LOSSES[loss](outputs, y, j).item(), "predictions": predictions}


def _check_run_folder(paths: RunPaths, config: RunConfig, resume: bool) -> bool:
    """Whether there is a run to resume; refuses to mix runs in one folder."""
    exists = paths.checkpoint.exists() or paths.summary.exists()
    if exists and not resume:
        raise RunError(f"{paths.root} already holds a run; pass --resume to continue it, or choose another --out")
    if exists:
        saved = RunConfig.from_dict(json.loads(paths.config.read_text()))
        if saved != config:
            diff = {k: (v, config.flat()[k]) for k, v in saved.flat().items() if config.flat()[k] != v}
            raise RunError(f"{paths.root} holds a run of another config (saved vs asked: {diff}); "
                           f"resume with the same --preset/--set, or choose another --out")
    return exists


def train(config: RunConfig, out: str | os.PathLike, data_root=None, resume: bool = False,
          data: MNISTTensors | None = None, progress: bool = True) -> dict:
    """Train one run to completion (or divergence); returns its summary."""
    paths = RunPaths(Path(out))
    resuming = _check_run_folder(paths, config, resume)
    if resuming and paths.summary.exists():
        summary = json.loads(paths.summary.read_text())
        if summary["status"] == "finished":
            return summary
    cfg = config.train
    data = data or load_mnist(config.model.input, data_root, train_size=cfg.train_size or None)
    paths.root.mkdir(parents=True, exist_ok=True)
    atomic.write_text(paths.config, json.dumps(config.to_dict(), indent=2) + "\n")

    torch.manual_seed(cfg.seed)
    model = LeNet5(config.model)
    optimizer = make_optimizer(cfg, model)
    loss_fn, loss_name, j = LOSSES[config.loss], config.loss, cfg.map_j
    n, batch = len(data.train_y), cfg.batch_size
    steps_per_pass = math.ceil(n / batch)
    state = {"pass": 0, "step": 0, "log": [], "elapsed": 0.0}
    if resuming and paths.checkpoint.exists():
        state = torch.load(paths.checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    exit_at = int(os.environ.get(EXIT_AT_STEP_ENV, -1))

    def checkpoint(pass_index, step, loss_sum, step_stats, elapsed):
        atomic.torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "rng": torch.get_rng_state(), "pass": pass_index, "step": step,
                           "loss_sum": loss_sum, "step_stats": step_stats, "log": state["log"],
                           "elapsed": elapsed}, paths.checkpoint)

    def diverged(pass_index, step, elapsed):
        message = (f"run diverged in pass {pass_index + 1} before step {step}: the training loss is not finite "
                   f"(lr {optimizer.param_groups[0]['lr']:g}); the last good checkpoint is kept in "
                   f"{paths.checkpoint}; lower --set lr=... and start a new run")
        _write_summary(paths, config, state["log"], "diverged", elapsed, message)
        raise DivergedError(message)

    bar = tqdm(total=cfg.epochs * steps_per_pass, initial=state["pass"] * steps_per_pass + state["step"],
               unit="step", disable=not progress, mininterval=2.0, file=sys.stderr)
    start = time.perf_counter() - state["elapsed"]
    for pass_index in range(state["pass"], cfg.epochs):
        set_lr(optimizer, lr_for_pass(cfg, pass_index))
        order = pass_permutation(cfg.seed, pass_index, n)
        if state["step"] == 0:
            idx = hessian_sample(cfg.seed, pass_index, n, cfg.hessian_samples)
            step_stats = optimizer.prepare(model, data.train_x[idx], data.train_y[idx], loss_name)
            loss_sum = torch.zeros((), dtype=torch.float64)
        else:
            step_stats, loss_sum = state["step_stats"], state["loss_sum"]
        model.train()
        for step in range(state["step"], steps_per_pass):
            idx = order[step * batch:(step + 1) * batch]
            outputs = model(data.train_x[idx])
            loss = loss_fn(outputs, data.train_y[idx], j)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            done = step + 1
            if done % 1000 == 0 or done == steps_per_pass:
                bar.update(done - bar.n + pass_index * steps_per_pass)
                if not torch.isfinite(loss_sum):
                    diverged(pass_index, done, time.perf_counter() - start)
            if done % cfg.checkpoint_every == 0 and done < steps_per_pass:
                if not torch.isfinite(loss_sum):
                    diverged(pass_index, done, time.perf_counter() - start)
                checkpoint(pass_index, done, loss_sum, step_stats, time.perf_counter() - start)
            if pass_index * steps_per_pass + done == exit_at:
                os._exit(137)
        train_eval = evaluate(model, data.train_x, data.train_y, loss_name, j)
        test_eval = evaluate(model, data.test_x, data.test_y, loss_name, j)
        if not (math.isfinite(train_eval["loss"]) and math.isfinite(test_eval["loss"])):
            diverged(pass_index, steps_per_pass, time.perf_counter() - start)
        elapsed = time.perf_counter() - start
        line = {"pass": pass_index + 1, "lr": optimizer.param_groups[0]["lr"],
                "train_loss": (loss_sum / steps_per_pass).item(), "train_error_pct": train_eval["error_pct"],
                "test_error_pct": test_eval["error_pct"], "test_loss": test_eval["loss"],
                "effective_steps": step_stats, "wall_s": round(elapsed, 2)}
        state["log"].append(line)
        atomic.write_text(paths.log, "".join(json.dumps(entry) + "\n" for entry in state["log"]))
        if progress:
            tqdm.write(json.dumps(line), file=sys.stdout)
        state["step"] = 0
        checkpoint(pass_index + 1, 0, torch.zeros((), dtype=torch.float64), {}, elapsed)
    bar.close()

    test_eval = evaluate(model, data.test_x, data.test_y, loss_name, j)
    atomic.torch_save({"model": model.state_dict(), "config": config.to_dict()}, paths.model)
    atomic.write_text(paths.predictions, json.dumps({"labels": data.test_y.tolist(),
                                                     "predictions": test_eval["predictions"].tolist()}) + "\n")
    return _write_summary(paths, config, state["log"], "finished", time.perf_counter() - start, "",
                          trainable_params=totals(layer_counts(model))[0])


def _write_summary(paths: RunPaths, config: RunConfig, log: list[dict], status: str, wall_s: float,
                   message: str, trainable_params: int | None = None) -> dict:
    summary = {"status": status, "message": message, "config": config.to_dict(), "passes": len(log),
               "final_train_error_pct": log[-1]["train_error_pct"] if log else None,
               "final_test_error_pct": log[-1]["test_error_pct"] if log else None,
               "best_test_error_pct": min((e["test_error_pct"] for e in log), default=None),
               "wall_s": round(wall_s, 2), "trainable_params": trainable_params,
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    atomic.write_text(paths.summary, json.dumps(summary, indent=2) + "\n")
    return summary
