"""How well `lenet5 predict` reads digits that look like photos rather than MNIST (the front-door issue).

A seeded generator turns MNIST test digits into photo-like JPEGs: a canvas of 40-120 x 40-120 pixels with a
light flat colour, grey, gradient or textured background; the digit in a dark or coloured ink at 40-80% of the
canvas's shorter side, anywhere with a margin; a blur of up to 1.2 pixels; JPEG at quality 30-90. Each goes
through `lenet5 predict`'s own reading (repro.inference.read_image_with_notes: grayscale, inversion, the
MNIST-style preparation) and the pretrained `paper` network; the same network also reads the digits themselves.

    python -m experiments.photo_digits --data-root ../shared/data                 # the test set: the measure
    python -m experiments.photo_digits --data-root ../shared/data --split validation --count 1000 --tune

Writes results/photo_digits.json: both accuracies, their ratio (target: at least 0.97), and the count of inputs
noted as unlike MNIST. The preparation's two constants (repro.inference.INK_FLOOR, MIN_PART) were chosen with
--tune on the first 1,000 digits of the validation split (results/photo_digits_tuning.jsonl); the test set only
measures.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from repro import atomic
from repro.data import VALIDATION_SIZE, load_raw
from repro.errors import run_script
from repro.inference import predict_images, read_image_with_notes
from repro.pretrained import pretrained

SEED = 32
OUT = Path("results/photo_digits.json")


def photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """One MNIST digit (28x28, light on dark) as a photo-like JPEG."""
    from PIL import Image, ImageFilter

    w, h = (int(v) for v in rng.integers(40, 121, size=2))
    kind = rng.choice(["colour", "grey", "gradient", "texture"])
    base = rng.integers(150, 256, size=3).astype(float) if kind != "grey" else np.full(3, rng.integers(150, 256))
    canvas = np.ones((h, w, 3)) * base
    if kind == "gradient":
        canvas *= np.linspace(1.0, rng.uniform(0.75, 1.0), w)[None, :, None]
    if kind == "texture":
        from scipy import ndimage
        canvas += ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 2.0)[:, :, None] * rng.uniform(10, 25) * 3
    ink = rng.integers(0, 90, size=3).astype(float)
    if rng.random() < 0.3:  # a red or blue pen
        ink[rng.integers(0, 3, endpoint=False) if rng.random() < 0.5 else 0] = rng.integers(150, 230)
    size = int(rng.uniform(0.4, 0.8) * min(w, h) * 28 / 20)  # the 20x20 box at 40-80% of the shorter side
    alpha = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR), dtype=float) / 255.0
    top, left = int(rng.integers(0, max(1, h - size + 1))), int(rng.integers(0, max(1, w - size + 1)))
    region = canvas[top:top + size, left:left + size]
    a = alpha[:region.shape[0], :region.shape[1], None]
    canvas[top:top + size, left:left + size] = region * (1 - a) + ink * a
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    radius = rng.uniform(0, 1.2)
    if radius > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(30, 91)))
    return buffer.getvalue()


def _show(images, prepared, labels, predicted, path: Path) -> None:
    from PIL import Image

    wrong = [i for i in range(len(labels)) if predicted[i] != labels[i]][:40]
    tiles = [np.hstack([images[i].numpy(), prepared[i].numpy()]) for i in wrong]
    if tiles:
        rows = [np.hstack(tiles[k:k + 8] + [np.zeros((28, 56), np.uint8)] * (8 - len(tiles[k:k + 8])))
                for k in range(0, len(tiles), 8)]
        Image.fromarray(np.vstack(rows)).resize((8 * 56 * 2, len(rows) * 28 * 2)).save(path)


TUNING = {"INK_FLOOR": (0.15, 0.25, 0.35), "MIN_PART": (0.05, 0.1, 0.2)}


def tune(paths: list[str], labels, model, out: Path) -> None:
    """Accuracy on the prepared photos for each setting of the preparation's constants (validation split only)."""
    import itertools

    import repro.inference as inference

    rows = []
    saved = {name: getattr(inference, name) for name in TUNING}
    try:
        for values in itertools.product(*TUNING.values()):
            for name, value in zip(TUNING, values):
                setattr(inference, name, value)
            prepared = torch.stack([read_image_with_notes(p)[0] for p in paths])
            predicted = [r["predicted"] for r in predict_images(model, model.run_config, prepared)]
            rows.append({**dict(zip(TUNING, values)),
                         "accuracy_on_photos_pct": 100 * float(np.mean(np.array(predicted) == labels.numpy()))})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        for name, value in saved.items():
            setattr(inference, name, value)
    atomic.write_text(out, "".join(json.dumps(r) + "\n" for r in rows))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--show", type=Path, default=None, help="write a PNG of the misread inputs, as prepared")
    parser.add_argument("--count", type=int, default=10_000, help="the first N test digits (default: all)")
    parser.add_argument("--split", choices=("test", "validation"), default="test",
                        help="validation: the last 10,000 training digits, where the preparation was tuned")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--tune", action="store_true",
                        help="with --split validation: the accuracy for each setting of the preparation's constants "
                             "(writes results/photo_digits_tuning.jsonl)")
    args = parser.parse_args(argv)
    if args.tune and args.split != "validation":
        parser.error("--tune chooses constants: only on --split validation, never on the test set")
    if args.split == "test":
        images, labels = load_raw(args.data_root, "test", download=False)
    else:
        images, labels = (t[-VALIDATION_SIZE:] for t in load_raw(args.data_root, "train", download=False))
    images, labels = images[:args.count], labels[:args.count]
    model = pretrained("paper")
    rng = np.random.default_rng(SEED)
    prepared, unlike = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, digit in enumerate(images):
            path = Path(tmp) / f"{i}.jpg"
            path.write_bytes(photo(digit.numpy(), rng))
            paths.append(str(path))
        if args.tune:
            return tune(paths, labels, model, args.out or OUT.with_name("photo_digits_tuning.jsonl"))
        for path in paths:
            image, notes = read_image_with_notes(path)
            prepared.append(image)
            unlike += bool(notes)
    on_digits = [r["predicted"] for r in predict_images(model, model.run_config, images)]
    on_photos = [r["predicted"] for r in predict_images(model, model.run_config, torch.stack(prepared))]
    digits_acc = float(np.mean(np.array(on_digits) == labels.numpy()))
    photos_acc = float(np.mean(np.array(on_photos) == labels.numpy()))
    result = {"split": args.split, "count": len(labels), "seed": SEED, "network": "paper (repro.pretrained)",
              "accuracy_on_digits_pct": 100 * digits_acc, "accuracy_on_photos_pct": 100 * photos_acc,
              "ratio": photos_acc / digits_acc, "target_ratio": 0.97, "noted_unlike_mnist": unlike,
              "command": f"python -m experiments.photo_digits --data-root DATA_ROOT --split {args.split}" +
                         (f" --count {args.count}" if args.count != 10_000 else "")}
    out = args.out or (OUT if args.split == "test" else OUT.with_name("photo_digits_validation.json"))
    atomic.write_text(out, json.dumps(result, indent=2) + "\n")
    if args.show:
        _show(images, prepared, labels, on_photos, args.show)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
