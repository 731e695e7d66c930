"""Patterns that are not digits, to measure how a network trained on MNIST tells them apart (repro/rejection.py):

- `fashion`: the 10,000 Fashion-MNIST test images (clothes, in MNIST's own format);
- `letters`: A-Z rendered with the DejaVu Sans font that matplotlib ships, at 3 stroke widths and 3 small
  rotations, then size-normalised and centred as MNIST's digits were (`mnist_centre`);
- `noise`: 300 images of uniform pixel noise and 300 of blurred Gaussian noise, from a seeded generator;
- `blank`: the empty field, and four uniform grey levels.

Each set is a uint8 (N, 28, 28) tensor, light ink on a dark background as MNIST's; they are generated, never
committed, and their digests are tested (tests/test_rejection.py).
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch

NONDIGIT_SETS = ("fashion", "letters", "noise", "blank")
NOISE_SEED = 1998
LETTER_STROKES = (0, 3, 6)  # pixels of extra stroke around the glyph at the rendering size
LETTER_ROTATIONS = (-12, 0, 12)  # degrees
RENDER_SIZE = 96  # pixels per em when rendering, before the glyph is scaled down to MNIST's 20x20 box
MNIST_BOX, MNIST_FIELD = 20, 28


def mnist_centre(image: np.ndarray) -> np.ndarray:
    """An image (H, W) of light ink on a dark background, as MNIST's digits were made (LeCun et al. 1998,
    Sec. III-A): the ink's bounding box scaled to fit 20x20 with its aspect ratio kept (anti-aliased), then
    placed in a 28x28 field so that its centre of mass is the field's centre. uint8 in, uint8 out."""
    from PIL import Image
    from scipy import ndimage

    ink = np.asarray(image, dtype=np.float64)
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0), np.flatnonzero(ink.max(axis=0) > 0)
    if not len(rows):  # nothing drawn: an empty field
        return np.zeros((MNIST_FIELD, MNIST_FIELD), dtype=np.uint8)
    box = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = MNIST_BOX / max(box.shape)
    size = (max(1, round(box.shape[1] * scale)), max(1, round(box.shape[0] * scale)))
    small = np.asarray(Image.fromarray(box.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
    field = np.zeros((MNIST_FIELD, MNIST_FIELD))
    top, left = (MNIST_FIELD - small.shape[0]) // 2, (MNIST_FIELD - small.shape[1]) // 2
    field[top:top + small.shape[0], left:left + small.shape[1]] = small
    cy, cx = ndimage.center_of_mass(field)
    shift = (round(MNIST_FIELD / 2 - 0.5 - cy), round(MNIST_FIELD / 2 - 0.5 - cx))
    field = ndimage.shift(field, shift, order=0, mode="constant", cval=0.0)
    return np.clip(field, 0, 255).round().astype(np.uint8)


def font_path() -> Path:
    """DejaVu Sans, as matplotlib ships it."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


@functools.lru_cache(maxsize=1)  # every finished run is shown them: drawn once per process
def letters() -> torch.Tensor:
    """A-Z, each at every stroke width and rotation, centred as MNIST: (26 x 3 x 3, 28, 28) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path()), RENDER_SIZE)
    images = []
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        for stroke in LETTER_STROKES:
            canvas = Image.new("L", (2 * RENDER_SIZE, 2 * RENDER_SIZE), 0)
            ImageDraw.Draw(canvas).text((RENDER_SIZE // 2, RENDER_SIZE // 4), letter, fill=255, font=font,
                                        stroke_width=stroke, stroke_fill=255)
            for angle in LETTER_ROTATIONS:
                turned = canvas.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=0)
                images.append(mnist_centre(np.asarray(turned)))
    return torch.from_numpy(np.stack(images))


@functools.lru_cache(maxsize=1)
def noise(n_each: int = 300, seed: int = NOISE_SEED) -> torch.Tensor:
    """Uniform pixel noise, then Gaussian noise blurred into blobs (sigma 1.5 pixels, stretched to 0..255)."""
    from scipy import ndimage

    gen = torch.Generator().manual_seed(seed)
    uniform = torch.randint(0, 256, (n_each, MNIST_FIELD, MNIST_FIELD), generator=gen, dtype=torch.int64)
    gaussian = torch.randn(n_each, MNIST_FIELD, MNIST_FIELD, generator=gen, dtype=torch.float64).numpy()
    blobs = np.stack([ndimage.gaussian_filter(g, 1.5) for g in gaussian])
    low, high = blobs.min(axis=(1, 2), keepdims=True), blobs.max(axis=(1, 2), keepdims=True)
    blobs = np.round(255 * (blobs - low) / (high - low))
    return torch.cat([uniform.to(torch.uint8), torch.from_numpy(blobs).to(torch.uint8)])


def blank() -> torch.Tensor:
    """The empty field (background only), and the field filled with grey levels 64, 128, 192, 255."""
    return torch.stack([torch.full((MNIST_FIELD, MNIST_FIELD), level, dtype=torch.uint8)
                        for level in (0, 64, 128, 192, 255)])


def nondigit_set(name: str, data_root=None) -> torch.Tensor:
    """One of NONDIGIT_SETS as uint8 (N, 28, 28)."""
    if name == "fashion":
        from .data import load_raw

        return load_raw(data_root, "test", download=False, dataset="fashion_mnist")[0]
    makers = {"letters": letters, "noise": noise, "blank": blank}
    if name not in makers:
        raise ValueError(f"unknown non-digit set {name!r}; valid: {', '.join(NONDIGIT_SETS)}")
    return makers[name]()


def digest(images: torch.Tensor) -> str:
    """sha256 of the images' bytes, with their shape: what tests pin each generated set by."""
    return hashlib.sha256(str(tuple(images.shape)).encode() + images.contiguous().numpy().tobytes()).hexdigest()[:16]


# what each run keeps (nondigit_outputs.npz beside test_outputs.npz): the network's outputs on every generated set
# and on the first FASHION_KEPT Fashion-MNIST test images, float16 (~60 KB a run; all 10,000 would be 200 KB)
FASHION_KEPT = 2_000


@torch.no_grad()
def nondigit_outputs(model, config, data_root=None, fashion: int | None = FASHION_KEPT) -> dict[str, np.ndarray]:
    """{set: the model's (N, 10) outputs on it} for every set of NONDIGIT_SETS (Fashion-MNIST: its first `fashion`
    test images, or all with None); a set whose data cannot be read is left out."""
    from .components import INPUTS
    from .errors import DataError

    was_training = model.training
    model.eval()
    outputs = {}
    try:
        for name in NONDIGIT_SETS:
            try:
                images = nondigit_set(name, data_root)
            except DataError:  # Fashion-MNIST absent: the other sets still say something
                continue
            images = images[:fashion] if name == "fashion" and fashion else images
            x = INPUTS[config.model.input].preprocess(images)
            outputs[name] = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)]).numpy()
    finally:
        model.train(was_training)
    return outputs
