"""Using a trained LeNet-5: `lenet5 evaluate` (error, per-class error, confusion matrix) and `lenet5 predict`
(the class of each image), and the library functions behind them.

What model.pt holds. A finished run writes `<run folder>/model.pt` (repro/train.py, `_finish_run`) with
torch.save: `{"model": LeNet5.state_dict(), "config": RunConfig.to_dict()}`, plain tensors and JSON-like values,
so `torch.load(path, weights_only=True)` reads it. The config fixes the architecture (its `model` switches) and
how the run was trained and measured (its `train` fields: `evaluate_on`, `train_size`, the loss's `map_j`).

From Python:

    import torch
    from repro.components import INPUTS
    from repro.inference import load_model
    model, config = load_model("results/paper_final/seed0")  # a run folder or its model.pt; eval mode, CPU
    with torch.no_grad():  # images_uint8: uint8 (N, 28, 28), e.g. repro.data.load_raw(split="test")[0]
        outputs = model(INPUTS[config.model.input].preprocess(images_uint8))
    labels = model.predict(outputs)  # or, all in one: repro.inference.predict_images(model, config, images_uint8)

Preprocessing a caller must apply: the model takes MNIST-like images, uint8 (N, 28, 28), the digit light (255)
on a dark (0) background and centred in the 28x28 field as MNIST's are (size-normalised to 20x20 and centred by
centre of mass, Sec. III-A), passed through `repro.components.INPUTS[config.model.input].preprocess`. For
input=32 (the paper's) that pads the field with 2 pixels of background to 32x32 and maps 0..255 linearly onto
[-0.1, 1.175], background -0.1 and ink 1.175 (Sec. II-B); input=28 (the modern preset's) scales to [0, 1].

What the outputs mean: (N, 10), one column per digit 0-9. head=rbf (the paper's): the Euclidean RBF units'
penalties y_i = sum_j (x_j - w_ij)^2 (Eq. 7), the squared distance of F6's output to class i's fixed prototype;
lower is better and the class is the argmin (`model.predict`). head=linear: logits; softmax gives probabilities
and the class is the argmax.
"""
from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .components import HEADS, INPUTS
from .config import RunConfig
from .data import IDX_MAGIC, load_mnist, load_raw, preprocess
from .errors import ConfigError, DataError, LeNet5Error, RunError
from .evaluation import evaluate
from .model import LeNet5
from .pretrained import PRETRAINED, weights_file
from .run_folder import RunPaths, first_line, read_model

SPLITS = ("test", "validation", "train")
INVERT_CHOICES = ("auto", "yes", "no")
MNIST_SIZE = 28
# An IDX entry is FILE:INDEX where FILE is an IDX file, by its usual names (t10k-images-idx3-ubyte,
# train-images.idx3-ubyte, digits.idx), optionally gzipped as MNIST is distributed.
IDX_ENTRY = re.compile(r"^(?P<file>.+(?:-ubyte|\.idx\d?)(?:\.gz)?)(?::(?P<index>[^:]*))?$")


def model_file(path: str | Path) -> Path:
    """The model.pt that `path` names: the file itself, the one in a run folder, or, for a name of
    repro.pretrained.PRETRAINED that is not a path here ("paper"), the network shipped in the package."""

    if str(path) in PRETRAINED and not Path(path).exists():
        return weights_file(str(path))
    path = Path(path)
    if path.is_dir():
        paths = RunPaths(path)
        if paths.model.is_file():
            return paths.model
        if paths.checkpoint.is_file() or paths.config.is_file():
            raise RunError(f"{path} holds no model.pt: the run has not finished (model.pt is written after its "
                           f"last pass); finish it with `lenet5 train --resume --out {path}`, or pass a finished "
                           f"run's folder")
        inside = next(iter(sorted(path.glob("*/model.pt"))), None)
        example = f" such as {inside.parent}" if inside else ""
        raise RunError(f"{path} is not a run folder (it holds no model.pt); pass a finished run's folder{example}, "
                       f"or its model.pt")
    if not path.is_file():
        raise RunError(f"{path} does not exist; pass a run folder with model.pt, the model.pt a finished run "
                       f"wrote, or a pretrained network's name ({', '.join(PRETRAINED)})")
    return path


def load_model(path: str | Path) -> tuple[LeNet5, RunConfig]:
    """The LeNet5 (in eval mode, on the CPU) and RunConfig saved in a model.pt, a run folder holding one, or a
    pretrained network's name (`model_file`)."""
    return read_model(model_file(path))


def default_split(config: RunConfig) -> str:
    """The split the run itself reported as its "test" error (summary.json's final_test_error_pct)."""
    return "validation" if config.train.evaluate_on == "validation" else "test"


def split_data(config: RunConfig, split: str, data_root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's inputs and the labels of one split, as training saw them: validation is the last 10,000
    training patterns; train is the training set the run used (without the validation split if it held one
    out, and its first `train_size` patterns)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    mode, dataset = config.model.input, config.train.dataset
    if split == "test":  # read only the test files (load_mnist would read and preprocess the training set too)
        images, labels = load_raw(data_root, "test", dataset=dataset)
        return preprocess(images, mode), labels
    if split == "validation":
        data = load_mnist(mode, data_root, evaluate_on="validation", dataset=dataset)
        return data.test_x, data.test_y
    data = load_mnist(mode, data_root, train_size=config.train.train_size or None,
                      evaluate_on=config.train.evaluate_on, dataset=dataset)
    return data.train_x, data.train_y


def evaluate_model(model: LeNet5, config: RunConfig, split: str | None = None, data_root=None) -> dict:
    """Error rate on one split (default: `default_split(config)`, so that it equals the run's summary.json).

    Returns {"split", "patterns", "errors", "error_pct", "loss", "per_class_error_pct" (10 values, None for a
    class absent from the split), "confusion" (10x10 counts, rows the true class, columns the predicted one),
    "predictions", "labels", "misclassified" (indices into the split), "outputs" (N, 10) numpy}."""
    split = split or default_split(config)
    x, y = split_data(config, split, data_root)
    result = evaluate(model, x, y, config.loss, config.train.map_j)
    predicted = result["predictions"]
    confusion = torch.bincount(y * 10 + predicted, minlength=100).view(10, 10)
    per_class = 100.0 * (1.0 - confusion.diag().double() / confusion.sum(1).double())
    return {"outputs": result["outputs"].numpy(), "split": split, "patterns": len(y),
            "errors": int((predicted != y).sum()),
            "error_pct": result["error_pct"], "loss": result["loss"],
            "per_class_error_pct": [None if math.isnan(e) else e for e in per_class.tolist()],
            "confusion": confusion.tolist(), "predictions": predicted.tolist(), "labels": y.tolist(),
            "misclassified": (predicted != y).nonzero().flatten().tolist()}


def _read_idx_entry(file: Path, index_text: str | None) -> torch.Tensor:
    """Image `index` of an IDX images file (MNIST's format: big-endian magic 0x00000803, N, rows, cols, then
    N*rows*cols bytes), gzipped or not, reading only that image."""
    if index_text is None or not re.fullmatch(r"-?\d+", index_text):
        raise DataError(f"{file} is an IDX file; name one of its images as {file}:INDEX (e.g. {file}:0)")
    index = int(index_text)
    opener = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rb") as f:
            header = f.read(16)
            fields = [int.from_bytes(header[i:i + 4], "big") for i in range(0, len(header) - 3, 4)]
            if len(fields) < 4 or fields[0] != IDX_MAGIC["images"]:
                raise DataError(f"{file} is not an IDX images file (bad magic number or header); pass an images "
                                f"file such as t10k-images-idx3-ubyte")
            count, rows, cols = fields[1:]
            if not 0 <= index < count:
                raise DataError(f"image index {index} is out of range for {file}, which holds {count:,} images; "
                                f"use an index in 0..{count - 1}")
            f.seek(16 + index * rows * cols)
            data = f.read(rows * cols)
    except (OSError, EOFError) as exc:  # a missing file, or a damaged gzip stream
        raise DataError(f"cannot read {file} ({first_line(exc)}); check the path, or replace the file") from None
    if len(data) < rows * cols:
        raise DataError(f"{file} is truncated before image {index}; replace it with a fresh copy")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(rows, cols)


def _read_picture(file: Path) -> torch.Tensor:
    """A PNG/JPEG/... as 8-bit grayscale at its own size; transparency is laid over white (drawing programs
    leave the canvas transparent and the ink dark)."""
    from PIL import Image, UnidentifiedImageError

    if not file.is_file():
        raise DataError(f"image {file} does not exist; check the path (an IDX image is named FILE-ubyte:INDEX)")
    try:
        with Image.open(file) as img:
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
            gray = img.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {file} ({first_line(exc)}); pass a PNG or JPEG file, or an IDX "
                        f"entry FILE-ubyte:INDEX") from None
    return torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8).view(gray.height, gray.width)


def needs_inversion(image: torch.Tensor) -> bool:
    """The `auto` rule: MNIST's digits are light on a dark background, so an image whose one-pixel border is
    mostly light (more than half its pixels at 128 or above) is taken to be dark on light and is inverted."""
    return bool((border_pixels(image) >= 128).double().mean() > 0.5)


def border_pixels(image: torch.Tensor) -> torch.Tensor:
    """The one-pixel border of an (H, W) image, each pixel once: where its background shows."""
    return torch.cat([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def read_image(spec: str, invert: str = "auto") -> torch.Tensor:
    """One image as MNIST's test images are: uint8 (28, 28), the digit light on a dark background.

    `spec` is an image file that PIL reads (PNG, JPEG, ...), or an IDX entry FILE:INDEX, where FILE is an IDX
    images file (its name ending in -ubyte or .idx, or either with .gz), e.g.
    $LENET5_DATA/MNIST/raw/t10k-images-idx3-ubyte:0 for the first test digit.
    Colour is converted to 8-bit grayscale. invert: "auto" inverts an image whose border is mostly light
    (`needs_inversion`), "yes" always, "no" never. MNIST's digits fill a 20x20 box centred in a black 28x28
    field (Sec. III-A),
    so any other image is prepared as MNIST's were (`prepare_like_mnist`)."""
    return read_image_with_notes(spec, invert)[0]


def read_image_with_notes(spec: str, invert: str = "auto") -> tuple[torch.Tensor, list[str]]:
    """`read_image`, and what about the image looked unlike MNIST (`prepare_like_mnist`)."""
    if invert not in INVERT_CHOICES:
        raise ConfigError(f"invalid value {invert!r} for invert; valid choices: {', '.join(INVERT_CHOICES)}")
    entry = IDX_ENTRY.match(spec)
    image = _read_idx_entry(Path(entry["file"]), entry["index"]) if entry else _read_picture(Path(spec))
    if invert == "yes" or (invert == "auto" and needs_inversion(image)):
        image = 255 - image
    if entry:  # an IDX entry is in MNIST's own format already
        return image, []
    return prepare_like_mnist(image)


# what an image must look like to be taken as MNIST's own (and left as it is): 28x28 with a black background
MNIST_BACKGROUND_MAX = 8  # the border's median grey level
# after the background is removed, grey levels below this share of the ink's are background; this and MIN_PART
# were chosen on the validation split (experiments/photo_digits.py --tune, results/photo_digits_tuning.jsonl)
INK_FLOOR = 0.25
UNLIKE_MNIST_BORDER_SPREAD = 24  # grey levels of spread in the border: a textured or uneven background
MIN_PART = 0.2  # connected parts of the ink smaller than this share of the largest are specks


def prepare_like_mnist(image: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """A light-on-dark grey image (H, W) made as MNIST's digits were made (LeCun et al. 1998, Sec. III-A), and
    what about it looked unlike MNIST.

    An image that already is MNIST's (28x28, black background) is returned as it is. Any other: the background
    (a grey-level opening wider than any stroke) is removed, grey levels below INK_FLOOR of the ink's are set to
    background and the rest stretched to the full 0-255 range, specks (parts under MIN_PART of the largest) are
    dropped, and the ink's bounding box is scaled to fit 20x20 keeping its aspect ratio and centred by its centre
    of mass in 28x28 (repro.nondigits.mnist_centre)."""
    from .nondigits import mnist_centre

    pixels = image.numpy().astype(np.float64)
    border = border_pixels(image).numpy().astype(np.float64)
    background = float(np.median(border))
    if pixels.shape == (MNIST_SIZE, MNIST_SIZE) and background <= MNIST_BACKGROUND_MAX:
        return image, []
    notes = [f"{pixels.shape[1]}x{pixels.shape[0]}, not 28x28"] if pixels.shape != (MNIST_SIZE, MNIST_SIZE) else []
    if background > MNIST_BACKGROUND_MAX:
        notes.append(f"background at grey {background:.0f}, not black")
    spread = float(np.percentile(border, 90) - np.percentile(border, 10))
    if spread > UNLIKE_MNIST_BORDER_SPREAD:
        notes.append(f"uneven or textured background (border spread {spread:.0f} grey levels)")
    ink = _remove_background(pixels)
    top = float(ink.max())
    if top < 64:
        notes.append(f"low contrast (ink {top:.0f} grey levels above the background)")
    if top == 0:
        return torch.zeros(MNIST_SIZE, MNIST_SIZE, dtype=torch.uint8), notes + ["nothing drawn"]
    floor = INK_FLOOR * top
    ink = np.where(ink < floor, 0.0, (ink - floor) / (top - floor) * 255.0)
    return torch.from_numpy(mnist_centre(_main_strokes(ink))), notes


def _remove_background(pixels):
    """The image minus its background, estimated by a grey-level opening wider than any stroke (it erases the
    strokes and keeps slow changes of the background: a gradient, a shadow, a texture's blotches)."""
    from scipy import ndimage

    size = max(5, min(pixels.shape) // 4)
    return np.clip(pixels - ndimage.grey_opening(pixels, size=(size, size)), 0, None)


def _main_strokes(ink):
    """The ink without specks: connected parts smaller than MIN_PART of the largest are background noise."""
    from scipy import ndimage

    parts, count = ndimage.label(ink > 0)
    if count <= 1:
        return ink
    sizes = ndimage.sum(np.ones_like(ink), parts, index=range(1, count + 1))
    keep = np.flatnonzero(sizes >= MIN_PART * sizes.max()) + 1
    return np.where(np.isin(parts, keep), ink, 0.0)


@torch.no_grad()
def predict_images(model: LeNet5, config: RunConfig, images_uint8: torch.Tensor) -> list[dict]:
    """Per image of uint8 (N, 28, 28) (or one (28, 28)): {"predicted": class, and "penalties" (head=rbf: the ten
    RBF penalties of Eq. 7, lower is better) or "probabilities" (head=linear: softmax of the ten logits)}."""
    images = images_uint8.reshape(-1, MNIST_SIZE, MNIST_SIZE)
    model.eval()
    outputs = model(INPUTS[config.model.input].preprocess(images))
    predicted = model.predict(outputs).tolist()
    if HEADS[config.model.head].lower_is_better:
        key, values = "penalties", outputs
    else:
        key, values = "probabilities", outputs.softmax(dim=1)
    return [{"predicted": p, key: v} for p, v in zip(predicted, values.tolist())]


# --- command line -------------------------------------------------------------------------------------------

def _summary_error_pct(file: Path, config: RunConfig) -> float | None:
    """final_test_error_pct of the summary.json beside model.pt, if that summary is of this model's run."""
    path = RunPaths(file.parent).summary
    try:
        summary = json.loads(path.read_text())
        same_run = RunConfig.from_dict(summary["config"]) == config
        return summary["final_test_error_pct"] if same_run else None
    except (OSError, ValueError, KeyError, TypeError, LeNet5Error):  # no summary, or not one we can trust
        return None


REJECT_TABLE_PCT = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)


def reject_report(model: LeNet5, config: RunConfig, split_result: dict, data_root=None,
                  kind: str | None = None) -> dict:
    """What `lenet5 evaluate --reject` shows (repro/rejection.py): the error-reject numbers on the split
    measured, its error at REJECT_TABLE_PCT rejected, and per non-digit set (all 10,000 Fashion-MNIST test images)
    the AUROC of telling the digits from it and the share accepted at the threshold that keeps 99% of the digits."""
    from .nondigits import nondigit_outputs
    from .rejection import (DEFAULT_CONFIDENCE, confidence, error_at_reject, error_reject_curve, nondigit_summary,
                            rejection_summary)

    lower, j = HEADS[config.model.head].lower_is_better, config.train.map_j
    kind = kind or DEFAULT_CONFIDENCE[config.model.head]
    outputs = split_result["outputs"]
    labels = split_result["labels"]
    summary = rejection_summary(outputs, labels, lower, kind, j)
    digits = confidence(outputs, lower, kind, j)
    curve = error_reject_curve(digits, model.predict(torch.as_tensor(outputs)).numpy() == labels)
    others = nondigit_summary(digits, {name: confidence(out, lower, kind, j) for name, out in
                                       nondigit_outputs(model, config, data_root, fashion=None).items()})
    return {**summary, "curve": {f"{p:g}": error_at_reject(curve, p) for p in REJECT_TABLE_PCT},
            "auroc": {name: m["auroc"] for name, m in others.items()},
            "accepted_pct_at_99pct_digits": {name: m["accepted_pct"] for name, m in others.items()}}


def cmd_evaluate(args) -> int:
    """`lenet5 evaluate RUN_DIR_OR_MODEL`: error, per-class error and confusion matrix on one split; with
    --reject, the error-reject table and the non-digit AUROCs."""
    file = model_file(args.model)
    model, config = load_model(file)
    result = evaluate_model(model, config, args.split, args.data_root)
    if args.reject:
        result["reject"] = reject_report(model, config, result, args.data_root, args.confidence)
    result.pop("outputs")
    reported = _summary_error_pct(file, config) if result["split"] == default_split(config) else None
    if reported is not None:
        result["summary_error_pct"] = reported
        result["equals_summary"] = math.isclose(result["error_pct"], reported, rel_tol=0, abs_tol=1e-9)
    if args.json:
        shown = {k: v for k, v in result.items() if k not in ("predictions", "labels", "reject")}
        print(json.dumps({"model": str(file), "config": config.to_dict(), **shown, **result.get("reject", {})}))
        return 0
    m = config.model
    print(f"model: {file} (head={m.head}, input={m.input}, activation={m.activation}, c3={m.c3})")
    print(f"{result['split']} split: {result['errors']:,} of {result['patterns']:,} patterns misclassified, "
          f"error {result['error_pct']:.2f}%")
    if reported is not None:
        verdict = "equal" if result["equals_summary"] else "DIFFERENT"
        print(f"summary.json final_test_error_pct {reported:.2f}%: {verdict}")
    per_class = pd.DataFrame([result["per_class_error_pct"]], index=["error %"], columns=range(10))
    print("per-class error (true class):\n" + per_class.to_string(float_format="{:.2f}".format, na_rep="-"))
    confusion = pd.DataFrame(result["confusion"], index=pd.Index(range(10), name="true"),
                             columns=pd.Index(range(10), name="predicted"))
    print("confusion matrix (rows: true class, columns: predicted class):\n" + confusion.to_string())
    if args.reject:
        r = result["reject"]
        print(f"rejection (confidence: {r['confidence']}; the least confident rejected first, ties together):")
        print("  rejected %  " + " ".join(f"{float(p):>6g}" for p in r["curve"]))
        print("  error %     " + " ".join(f"{e:>6.2f}" for e in r["curve"].values()))
        print(f"  {r['reject_pct_for_0_5pct_error']:.2f}% rejected for 0.5% error on the rest")
        for name, value in r["auroc"].items():
            print(f"  digits vs {name}: AUROC {value:.4f}; {r['accepted_pct_at_99pct_digits'][name]:.1f}% of "
                  f"{name} accepted where 99% of the digits are")
    return 0


def cmd_predict(args) -> int:
    """`lenet5 predict MODEL IMAGE...`: one line per image with its class and the ten outputs."""
    model, config = load_model(args.model)
    specs = expand_image_specs(args.images)
    read = [read_image_with_notes(spec, args.invert) for spec in specs]
    images = torch.stack([image for image, _ in read])
    rows = predict_images(model, config, images)
    for row, (_, notes) in zip(rows, read):
        row["unlike_mnist"] = notes
    if args.reject_at is not None:
        _mark_rejected(model, config, images, rows, args.reject_at, args.data_root)
    if args.json:
        print(json.dumps({"model": str(args.model), "head": config.model.head,
                          "images": [{"image": spec, **row} for spec, row in zip(specs, rows)]}))
        return 0
    key = "penalties" if "penalties" in rows[0] else "probabilities"
    meaning = "RBF penalties (Eq. 7): lower is better" if key == "penalties" else "softmax probabilities"
    width = max(len("image"), *(len(spec) for spec in specs))
    print(f"{'image':<{width}}  class  " + " ".join(f"{d:>8}" for d in range(10)) + f"   ({meaning})")
    for spec, row in zip(specs, rows):
        verdict = ("" if args.reject_at is None else
                   f"   {'REJECTED' if row['rejected'] else 'accepted'} (confidence {row['confidence']:.3g})")
        print(f"{spec:<{width}}  {row['predicted']:>5}  " + " ".join(f"{v:>8.3g}" for v in row[key]) + verdict)
    unlike = [(spec, row["unlike_mnist"]) for spec, row in zip(specs, rows) if row["unlike_mnist"]]
    for spec, notes in unlike:
        print(f"note: {spec} looks unlike MNIST ({'; '.join(notes)}): prepared as MNIST's digits were (cropped to "
              f"the ink, scaled to 20x20, centred in 28x28); expect less accuracy than on MNIST")
    if args.reject_at is not None:
        print(f"rejected: confidence ({rows[0]['confidence_kind']}) below {rows[0]['threshold']:.4g}, the threshold "
              f"that keeps {args.reject_at:g}% of the test digits")
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def expand_image_specs(specs: list[str]) -> list[str]:
    """The images to predict: each spec as given, a folder as its image files (by name)."""
    out = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path} is a folder with no image in it ({', '.join(IMAGE_SUFFIXES)}); pass image "
                                f"files, or a folder that holds some")
            out += found
        else:
            out.append(spec)
    return out


def _mark_rejected(model: LeNet5, config: RunConfig, images: torch.Tensor, rows: list[dict], keep_pct: float,
                   data_root=None) -> None:
    """Add to each row its confidence and whether it is rejected at the threshold that keeps keep_pct% of the
    test digits (repro/rejection.py)."""
    from .rejection import DEFAULT_CONFIDENCE, confidence, keep_threshold

    lower, j = HEADS[config.model.head].lower_is_better, config.train.map_j
    kind = DEFAULT_CONFIDENCE[config.model.head]
    x, _ = split_data(config, "test", data_root)
    with torch.no_grad():
        digits = confidence(evaluate(model, x, torch.zeros(len(x), dtype=torch.long), config.loss, j)["outputs"],
                            lower, kind, j)
        mine = confidence(model(INPUTS[config.model.input].preprocess(images)), lower, kind, j)
    threshold = keep_threshold(digits, keep_pct)
    for row, conf in zip(rows, mine):
        row.update(confidence=float(conf), confidence_kind=kind, threshold=threshold, rejected=bool(conf < threshold))


def reject_percentage(text: str) -> float:
    """--reject-at: the percentage of test digits to keep, in (0, 100]."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage in (0, 100] (e.g. 99 keeps 99% of the digits)")
    return value


def add_parsers(sub) -> None:
    """Add `evaluate` and `predict` to an argparse subparsers object (`lenet5`'s)."""
    p = sub.add_parser("evaluate", help="error, per-class error and confusion matrix of a trained model")
    p.add_argument("model", metavar="RUN_DIR_OR_MODEL",
                   help="a finished run's folder, its model.pt, or a pretrained network: paper, paper_distortions, "
                        "modern")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="where to measure (default: the split the run reported, test or validation)")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: $LENET5_DATA or ./data)")
    p.add_argument("--reject", action="store_true",
                   help="also the error-reject table (least confident rejected first) and how well the confidence "
                        "tells digits from non-digits (Fashion-MNIST, letters, noise, blank: AUROC)")
    p.add_argument("--confidence", choices=("margin", "probability"), default=None,
                   help="with --reject: the confidence (default: margin for head=rbf, probability for linear)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify images (PNG/JPEG, or IDX entries FILE-ubyte:INDEX)")
    p.add_argument("model", metavar="MODEL",
                   help="a finished run's folder, its model.pt, or a pretrained network: paper, paper_distortions, "
                        "modern")
    p.add_argument("images", metavar="IMAGE", nargs="+",
                   help="image files, folders of them, or IDX entries such as "
                        "data/MNIST/raw/t10k-images-idx3-ubyte:0")
    p.add_argument("--invert", choices=INVERT_CHOICES, default="auto",
                   help="auto (default): invert images whose border is mostly light, as MNIST's digits are light "
                        "on dark; yes; no")
    p.add_argument("--reject-at", type=reject_percentage, default=None, metavar="PCT",
                   help="say which images would be rejected at the confidence threshold that keeps PCT%% of the "
                        "test digits (e.g. 99); needs the test set (--data-root)")
    p.add_argument("--data-root", default=None, help="with --reject-at: folder holding MNIST/raw/")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    p.set_defaults(func=cmd_predict)
