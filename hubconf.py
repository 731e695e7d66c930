"""torch.hub entry point: `torch.hub.load(REPO_OR_DIR, "lenet5", preset="paper", pretrained=True)`.

With a clone of this repository: `torch.hub.load("path/to/lenet5-repro", "lenet5", source="local")`. The
pretrained networks are the ones repro.pretrained ships (repro/weights/, docs/model_card.md); nothing is
downloaded.
"""
dependencies = ["torch", "torchvision", "scipy", "numpy"]


def lenet5(preset: str = "paper", pretrained: bool = True):
    """LeNet-5 by the name of a shipped network (paper, paper_distortions, modern, ladder_best; repro.pretrained):
    trained (in eval mode, with `run_config`) or, with pretrained=False, its architecture freshly initialised
    as training would start it (for a preset, the preset's own config)."""
    from repro.config import PRESETS, run_config
    from repro.model import build_model
    from repro.pretrained import pretrained as load_pretrained

    if pretrained:
        return load_pretrained(preset)
    config = run_config(preset) if preset in PRESETS else load_pretrained(preset).run_config
    model = build_model(config)
    model.run_config = config
    return model
