"""torch.hub entry point: `torch.hub.load(REPO_OR_DIR, "lenet5", preset="paper", pretrained=True)`.

With a clone of this repository: `torch.hub.load("path/to/lenet5-repro", "lenet5", source="local")`. The
pretrained networks are the ones repro.pretrained ships (repro/weights/, docs/model_card.md); nothing is
downloaded.
"""
dependencies = ["torch", "torchvision", "scipy", "numpy"]


def lenet5(preset: str = "paper", pretrained: bool = True):
    """LeNet-5 of a preset (paper, paper_distortions, modern): trained (in eval mode, with `run_config`) or,
    with pretrained=False, freshly initialised as training would start it."""
    from repro.config import run_config
    from repro.model import build_model
    from repro.pretrained import pretrained as load_pretrained

    if pretrained:
        return load_pretrained(preset)
    model = build_model(run_config(preset))
    model.run_config = run_config(preset)
    return model
