"""MNIST (or Fashion-MNIST), read once into tensors and preprocessed for the chosen input mode (Sec. II-B,
III-A).

The data root comes from `--data-root`, else the LENET5_DATA environment variable, else ./data. The files
are the four IDX files that torchvision.datasets.MNIST (FashionMNIST) expects under <root>/MNIST/raw/
(<root>/FashionMNIST/raw/), `DATASETS`. If they are missing we try torchvision's download; if that fails we
stop with one message naming the expected paths and the fix. Each file's IDX header and size are checked first,
so a truncated or corrupt file gives a clear error.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .components import INPUTS
from .errors import DataError

ENV_VAR = "LENET5_DATA"
DEFAULT_ROOT = "./data"
RAW_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Dataset:
    """A dataset in MNIST's format: torchvision's class and folder name (<root>/<folder>/raw/), and its classes."""

    folder: str
    title: str
    classes: tuple[str, ...]


DATASETS = {
    "mnist": Dataset("MNIST", "MNIST", tuple(str(d) for d in range(10))),
    # Xiao, Rasul & Vollgraf 2017: 10 classes of clothing in MNIST's format, a harder task for the same networks
    "fashion_mnist": Dataset("FashionMNIST", "Fashion-MNIST", ("T-shirt/top", "trouser", "pullover", "dress", "coat",
                                                               "sandal", "shirt", "sneaker", "bag", "ankle boot")),
}
# IDX magic numbers: 0x0000 0803 = unsigned bytes, 3 dimensions (images); 0x0000 0801 = 1 dimension (labels).
IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}



def resolve_root(data_root: str | os.PathLike | None = None) -> Path:
    return Path(data_root or os.environ.get(ENV_VAR) or DEFAULT_ROOT)


def _dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def raw_paths(root: Path, dataset: str = "mnist") -> dict[tuple[str, str], Path]:
    return {key: root / _dataset(dataset).folder / "raw" / name for key, name in RAW_FILES.items()}


def _missing_message(root: Path, missing: list[Path], reason: str, dataset: str) -> str:
    spec = _dataset(dataset)
    return (f"{spec.title} not found under {root} ({reason}); expected files: "
            f"{', '.join(str(p) for p in missing)}. Fix: point --data-root or the {ENV_VAR} environment variable "
            f"at the folder that holds {spec.folder}/raw/ with those four files (e.g. {ENV_VAR}=$HOME/data when they "
            f"are in $HOME/data/{spec.folder}/raw/), or run once with internet access so torchvision downloads them "
            f"there.")


def _unpack_gzipped(root: Path, missing: list[Path], dataset: str) -> None:
    """Decompress FILE.gz beside each missing FILE, or in the data root itself (where a download from MNIST's own
    site leaves them), into <root>/<folder>/raw/, where torchvision reads them."""
    for path in missing:
        packed = next((p for p in (path.with_name(path.name + ".gz"), root / (path.name + ".gz")) if p.is_file()),
                      None)
        if packed is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(packed, "rb") as source:
                data = source.read()
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except (OSError, EOFError) as exc:
            raise DataError(f"found {packed} but cannot unpack it into {path} ({exc}); unpack it there with "
                            f"gunzip, or point --data-root at a writable copy of {root}") from None


def _torchvision_class(dataset: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, _dataset(dataset).folder)


def _try_download(root: Path, dataset: str) -> str | None:
    """torchvision's own download; returns None on success, else a short reason."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            _torchvision_class(dataset)(str(root), train=True, download=True)
        return None
    except Exception as exc:  # any failure of the download means the same thing to the user
        return f"torchvision's download failed: {type(exc).__name__}"


def check_idx_file(path: Path, kind: str, title: str = "MNIST") -> tuple[int, ...]:
    """Validate an IDX file's magic number, dimensions and size; return its shape."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(4)
        if len(header) < 4 or int.from_bytes(header, "big") != IDX_MAGIC[kind]:
            raise DataError(f"{path} is not a {kind} IDX file of {title} (bad magic number); "
                            f"replace it with a fresh copy of {title}")
        ndim = header[3]
        dims_bytes = f.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DataError(f"{path} is truncated inside its header; replace it with a fresh copy of {title}")
    shape = tuple(int.from_bytes(dims_bytes[4 * i:4 * i + 4], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(torch.tensor(shape).prod())
    if size != expected:
        raise DataError(f"{path} has {size:,} bytes but its header {shape} needs {expected:,} "
                        f"(truncated or corrupt); replace it with a fresh copy of {title}")
    return shape


def load_raw(data_root=None, split: str = "train", download: bool = True,
             dataset: str = "mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and int64 labels (N,) of one split, read through torchvision."""
    root = resolve_root(data_root)
    paths = raw_paths(root, dataset)
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        _unpack_gzipped(root, missing, dataset)  # the four .gz files as MNIST's own site serves them
        missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        reason = _try_download(root, dataset) if download else "download not attempted"
        missing = [p for p in paths.values() if not p.is_file()]
        if missing:
            raise DataError(_missing_message(root, missing, reason or "download left files missing", dataset))
    title = _dataset(dataset).title
    image_shape = check_idx_file(paths[(split, "images")], "images", title)
    label_shape = check_idx_file(paths[(split, "labels")], "labels", title)
    if image_shape[0] != label_shape[0] or image_shape[1:] != (28, 28):
        raise DataError(f"{paths[(split, 'images')]} holds {image_shape} images for {label_shape[0]} labels; "
                        f"replace the {split} files with a fresh copy of {_dataset(dataset).title}")
    data = _torchvision_class(dataset)(str(root), train=(split == "train"), download=False)
    images, labels = data.data, data.targets.long()
    if labels.numel() and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{paths[(split, 'labels')]} holds labels outside 0-9; replace it with a fresh copy")
    return images, labels


def preprocess(images: torch.Tensor, input_mode: str) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, S, S) for the model's input switch (repro/components/input.py):
    "32": padded to 32x32 and mapped to [-0.1, 1.175] (Sec. II-B); "28": ToTensor's [0, 1], as in the seed blog."""
    if input_mode not in INPUTS:
        raise ValueError(f"invalid input mode {input_mode!r}; valid choices: {', '.join(INPUTS)}")
    return INPUTS[input_mode].preprocess(images)


@dataclass
class MNISTTensors:
    """Both splits, preprocessed once: x float32 (N, 1, S, S), y int64 (N,); and the training images as read,
    uint8 (N, 28, 28), for distortions."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_raw: torch.Tensor | None = None


VALIDATION_SIZE = 10_000  # the last 10,000 training patterns: where every choice of ours is made


def load_mnist(input_mode: str, data_root=None, download: bool = True, train_size: int | None = None,
               evaluate_on: str = "test", dataset: str = "mnist") -> MNISTTensors:
    """Load and preprocess MNIST (or another of DATASETS); `train_size` keeps the first N training patterns
    (Fig. 6 uses subsets).

    evaluate_on="validation": the last VALIDATION_SIZE training patterns take the test set's place and are
    removed from the training set (train_size then counts from the rest); the test set is not read."""
    train_images, train_y = load_raw(data_root, "train", download, dataset)
    if evaluate_on == "validation":
        if len(train_y) <= VALIDATION_SIZE:
            raise DataError(f"the training set has {len(train_y)} patterns, too few to hold out a validation split "
                            f"of {VALIDATION_SIZE:,}; use evaluate_on=test")
        test_images, test_y = train_images[-VALIDATION_SIZE:], train_y[-VALIDATION_SIZE:]
        train_images, train_y = train_images[:-VALIDATION_SIZE], train_y[:-VALIDATION_SIZE]
    else:
        test_images, test_y = load_raw(data_root, "test", download, dataset)
    if train_size is not None:
        if not 0 < train_size <= len(train_y):
            raise DataError(f"train_size={train_size} is outside 1..{len(train_y)}; choose a smaller subset")
        train_images, train_y = train_images[:train_size], train_y[:train_size]
    return MNISTTensors(preprocess(train_images, input_mode), train_y, preprocess(test_images, input_mode), test_y,
                        train_images)
