"""The run folder: its file names and formats, in one place. Training writes through this module; the study layer
(report, grid, figures, verify, rejection), the inference commands and the Ray back end read through it.

A run folder holds (repro/train.py writes them, in this order of a run's life):
- config.json: the RunConfig (`RunConfig.to_dict()`), written when the run starts;
- log.jsonl: one JSON object per finished pass (errors, losses, learning rate, SDLM's steps per layer, wall
  time), and log.csv, the same without the per-layer steps, for spreadsheets;
- test_predictions.json ({"labels": [...], "predictions": [...]}) and test_outputs.npz (`outputs`: the network's
  10 outputs per test pattern, RBF penalties or logits, float16), both of the latest pass;
- checkpoint.pt: the whole training state after each pass and every `checkpoint_every` updates (train.py's);
- at the end model.pt (`{"model": state_dict, "config": RunConfig.to_dict()}`, tensors and plain values only),
  nondigit_outputs.npz (MNIST runs: the outputs on repro/nondigits.py's sets, one float16 array per set) and
  summary.json (status, final and best errors, wall time and its phases, commit and machine).
A folder of several seeds holds one such folder per seed, `seed<N>/`.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import LeNet5Error, RunError

SEED_FOLDERS = "seed*"  # a result folder's runs: seed0/, seed1/, ...


@dataclass(frozen=True)
class RunPaths:
    """Where each file of the run folder `root` lies."""

    root: Path

    config = property(lambda self: self.root / "config.json")
    log = property(lambda self: self.root / "log.jsonl")
    log_csv = property(lambda self: self.root / "log.csv")  # the same, for spreadsheets (no per-layer steps)
    checkpoint = property(lambda self: self.root / "checkpoint.pt")
    model = property(lambda self: self.root / "model.pt")
    predictions = property(lambda self: self.root / "test_predictions.json")
    outputs = property(lambda self: self.root / "test_outputs.npz")  # `outputs`: (patterns, 10) float16
    nondigit_outputs = property(lambda self: self.root / "nondigit_outputs.npz")  # repro/nondigits.py: set -> (N, 10)
    summary = property(lambda self: self.root / "summary.json")

    def finished_files(self) -> list[Path]:
        """What a finished run leaves, besides its checkpoint: the files a run carries when it moves (a Ray
        worker returns them to the driver). The optional ones (nondigit outputs) only where they exist."""
        files = [self.config, self.log, self.log_csv, self.summary, self.predictions, self.outputs, self.model]
        return files + [p for p in [self.nondigit_outputs] if p.exists()]


# ---------------------------------------------------------------- reading


def read_run_config(run_dir: Path):
    """The RunConfig a run folder was started with (its config.json)."""
    from .config import RunConfig

    path = RunPaths(Path(run_dir)).config
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise RunError(f"cannot read the run's config {path} ({exc}); restore it, or choose another --out") from None


def read_summary(run_dir: Path) -> dict:
    """A run folder's summary.json (a finished, diverged or failed run's)."""
    return json.loads(RunPaths(Path(run_dir)).summary.read_text())


def read_log(run_dir: Path) -> list[dict]:
    """A run folder's per-pass log (log.jsonl), one dict per pass."""
    return [json.loads(line) for line in RunPaths(Path(run_dir)).log.read_text().splitlines() if line.strip()]


def passes_logged(run_dir: Path) -> int:
    """How many passes a run folder's log holds so far (0 before its first pass ends)."""
    log = RunPaths(Path(run_dir)).log
    return len(log.read_text().splitlines()) if log.exists() else 0


def read_predictions(run_dir: Path) -> dict:
    """A run folder's test predictions: {"labels": [...], "predictions": [...]}, of its latest pass."""
    return json.loads(RunPaths(Path(run_dir)).predictions.read_text())


def read_outputs(run_dir: Path) -> np.ndarray:
    """A run folder's test outputs (test_outputs.npz), (patterns, 10) float16."""
    with np.load(RunPaths(Path(run_dir)).outputs) as npz:
        return npz["outputs"]


def read_nondigit_outputs(run_dir: Path) -> dict[str, np.ndarray]:
    """A run folder's outputs on the non-digit sets, {set: (N, 10) float16}; {} for a run that has none."""
    path = RunPaths(Path(run_dir)).nondigit_outputs
    if not path.exists():
        return {}
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files}


def read_model(file: Path, advice: str = "pass a run folder with model.pt or the model.pt a finished run wrote"):
    """The LeNet5 (in eval mode, on the CPU) and RunConfig saved in a model.pt (`file`, or a run folder holding
    one); a RunError naming `file` and `advice` for anything else (a checkpoint, a file torch cannot read, weights
    that do not fit their config)."""
    from .config import RunConfig
    from .model import build_model

    if Path(file).is_dir():
        file = RunPaths(Path(file)).model

    try:
        # weights_only: a model.pt is tensors and plain values, so nothing in it needs to run code to load
        saved = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch cannot read gets the same advice
        raise RunError(f"{file} is not a lenet5 model.pt ({first_line(exc)}); {advice}") from None
    missing = [key for key in ("model", "config") if not (isinstance(saved, dict) and key in saved)]
    if missing:
        what = "a training checkpoint" if isinstance(saved, dict) and "optimizer" in saved else "not a lenet5 model.pt"
        raise RunError(f"{file} is {what} (no {missing[0]!r} entry); {advice}")
    try:
        config = RunConfig.from_dict(saved["config"])
        model = build_model(config)
        model.load_state_dict(saved["model"])
    except (LeNet5Error, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise RunError(f"{file} holds weights that do not fit its own config ({first_line(exc)}); {advice}") \
            from None
    return model.eval(), config


def read_weights(file: Path) -> dict[str, torch.Tensor]:
    """The state dict in a model.pt, without building the network (figures and comparisons need only weights)."""
    return torch.load(file, map_location="cpu", weights_only=True)["model"]


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message cut to its first line, for a one-line error."""
    text = str(exc).strip()
    # torch's weights-only refusal is a page of advice; its cause is the first line after this marker
    _, marker, cause = text.partition("WeightsUnpickler error:")
    if marker and cause.strip():
        text = "weights-only unpickler: " + cause.strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


# ---------------------------------------------------------------- finding


def finished_runs(folder: Path, with_model: bool = False) -> list[tuple[Path, dict]]:
    """The finished runs of a result folder's seed<N>/ folders, in name order: (run folder, its summary); with
    `with_model`, only those whose model.pt is there (grid folders commit none)."""
    out = []
    for path in sorted(Path(folder).glob(f"{SEED_FOLDERS}/summary.json")):
        summary = json.loads(path.read_text())
        if summary.get("status") == "finished" and (not with_model or RunPaths(path.parent).model.exists()):
            out.append((path.parent, summary))
    return out


def run_folders(tree: Path) -> list[Path]:
    """Every run folder (one with a summary.json) at or below `tree`."""
    tree = Path(tree)
    if RunPaths(tree).summary.exists():
        return [tree]
    return sorted(p.parent for p in tree.rglob("summary.json"))


# ---------------------------------------------------------------- formats written


def model_state(model: torch.nn.Module, config) -> dict:
    """model.pt's content: the weights and the RunConfig, tensors and plain values only (`read_model`)."""
    return {"model": model.state_dict(), "config": config.to_dict()}


def outputs_npz(outputs: torch.Tensor) -> bytes:
    """test_outputs.npz's content: compressed float16 (~0.1 per cent of a penalty; a run's 10,000 x 10 take
    ~150 KB), enough to rank patterns by confidence (rejection, paper_notes/rbf_output.md)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, outputs=outputs.detach().to(torch.float16).numpy())
    return buffer.getvalue()


def nondigit_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """nondigit_outputs.npz's content: one float16 array of outputs per non-digit set."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: out.astype(np.float16) for name, out in arrays.items()})
    return buffer.getvalue()


def predictions_json(labels: list[int], predictions: list[int]) -> str:
    """test_predictions.json's content."""
    return json.dumps({"labels": labels, "predictions": predictions}) + "\n"


def log_jsonl(log: list[dict]) -> str:
    """log.jsonl's content: one JSON line per pass."""
    return "".join(json.dumps(entry) + "\n" for entry in log)


CSV_FIELDS = ("pass", "lr", "train_loss", "train_error_pct", "test_error_pct", "test_loss", "wall_s")


def log_csv(log: list[dict]) -> str:
    """log.csv's content: log.jsonl's numbers (CSV_FIELDS) as CSV, a header line first."""
    lines = [",".join(CSV_FIELDS)] + [",".join(str(entry[k]) for k in CSV_FIELDS) for entry in log]
    return "\n".join(lines) + "\n"
