"""Trained networks shipped inside the package, one line away and offline: `repro.pretrained("paper")`.

Each is the median seed (by final test error) of a committed result folder, copied by
experiments/ship_pretrained.py, which writes repro/weights/MANIFEST.json (source run, seed, test error, sha256);
docs/model_card.md says what they are for and how they fail. The files are model.pt files as a run writes them
(repro/inference.py), so `lenet5 evaluate` and `lenet5 predict` take a name wherever they take a model file:
`lenet5 predict paper digit.png`.

    import repro
    model = repro.pretrained("paper")       # LeNet5 in eval mode; model.run_config is its RunConfig
    labels = model.predict(model(x))       # x: (N, 1, 32, 32) in [-0.1, 1.175] (repro.components.INPUTS)
"""
from __future__ import annotations

import json
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# name -> the result folder its network comes from. ladder_best: the ladder's rung with the lowest mean test error
# (repro.study.report.best_rung; experiments/ship_pretrained.py refuses to ship it if that rung has changed)
PRETRAINED = {"paper": "results/paper_final", "paper_distortions": "results/paper_distortions",
              "modern": "results/modern", "ladder_best": "results/grids/ladder/+init-default"}
LADDER_BEST = "ladder_best"


def manifest() -> dict:
    """repro/weights/MANIFEST.json: per name, the run it was copied from and its numbers."""
    return json.loads((WEIGHTS_DIR / "MANIFEST.json").read_text())


def weights_file(name: str) -> Path:
    """The shipped model.pt of a pretrained network."""
    from .errors import ConfigError

    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained network {name!r}; valid: {', '.join(PRETRAINED)}")
    return WEIGHTS_DIR / f"{name}.pt"


def pretrained(name: str = "paper"):
    """The pretrained LeNet5 `name` (PRETRAINED), in eval mode on the CPU, with its RunConfig as `run_config`."""
    from .run_folder import read_model

    model, config = read_model(weights_file(name), advice="reinstall the package (its repro/weights/ files are "
                                                          "damaged)")
    model.run_config = config
    return model
