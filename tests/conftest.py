import os
from pathlib import Path

import pytest
import torch

from repro.data import ENV_VAR, RAW_FILES


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


def write_idx(path: Path, array: torch.Tensor, magic: int) -> None:
    """Write a uint8 tensor as an IDX file (big-endian header, then the bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.to(torch.uint8).numpy().tobytes())


def make_mnist(root: Path, n_train: int, n_test: int, folder: str = "MNIST") -> Path:
    """Write a synthetic MNIST (or, with folder="FashionMNIST", Fashion-MNIST) in torchvision's raw layout."""
    gen = torch.Generator().manual_seed(1 if folder == "MNIST" else 2)
    for split, n in (("train", n_train), ("test", n_test)):
        raw = root / folder / "raw"
        images = torch.randint(0, 256, (n, 28, 28), generator=gen)
        labels = torch.arange(n) % 10
        write_idx(raw / RAW_FILES[(split, "images")], images, 0x803)
        write_idx(raw / RAW_FILES[(split, "labels")], labels, 0x801)
    return root


@pytest.fixture
def tiny_mnist(tmp_path) -> Path:
    """A data root holding a small synthetic MNIST (32 train, 16 test)."""
    return make_mnist(tmp_path, 32, 16)


@pytest.fixture
def tiny_mnist_large(tmp_path) -> Path:
    """A synthetic MNIST big enough for a few batches of 64 (640 train, 64 test)."""
    return make_mnist(tmp_path, 640, 64)


@pytest.fixture
def real_data_root() -> Path:
    root = os.environ.get(ENV_VAR)
    if not root or not (Path(root) / "MNIST" / "raw" / RAW_FILES[("train", "images")]).is_file():
        pytest.skip(f"real MNIST not available: set {ENV_VAR} to a folder holding MNIST/raw/ (CI does)")
    return Path(root)
