"""`lenet5 evaluate` and `lenet5 predict` (repro/inference.py): a saved model reproduces its run's numbers, images
are read as MNIST's are, and every failure is one line of the right error class."""
import argparse
import contextlib
import gzip
import io
import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import make_mnist, write_idx
from repro.config import run_config
from repro.data import ENV_VAR, RAW_FILES, load_raw
from repro.errors import ConfigError, DataError, RunError
from repro.inference import (add_parsers, evaluate_model, load_model, needs_inversion, predict_images,
                             read_image, read_image_with_notes)
from repro.train import train

REPO = Path(__file__).resolve().parents[1]
PAPER_RUN = REPO / "results" / "paper_final" / "seed0"

def readme_snippet() -> str:
    """docs/using-a-model.md's "From Python" example, between its markers, as a user copies it."""
    block = (REPO / "docs" / "using-a-model.md").read_text().split("<!-- from-python:begin -->\n")[1].split("<!-- from-python:end -->")[0]
    return block.split("```python\n")[1].split("```")[0]


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and message
    return message


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = os.environ.get(ENV_VAR)
    if not root or not (Path(root) / "MNIST" / "raw" / RAW_FILES[("test", "images")]).is_file():
        pytest.skip(f"real MNIST not available: set {ENV_VAR} to a folder holding MNIST/raw/")
    return Path(root)


@pytest.fixture(scope="module")
def paper_eval(real_root):
    """The committed paper model, evaluated once on its own split."""
    model, config = load_model(PAPER_RUN)
    return model, config, evaluate_model(model, config, data_root=real_root)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A head=linear run trained for 4 steps on a synthetic MNIST: (run folder, data root, summary)."""
    root = make_mnist(tmp_path_factory.mktemp("mnist"), 640, 64)
    run_dir = tmp_path_factory.mktemp("runs") / "linear"
    config = run_config("modern", {"epochs": 1, "train_size": 256})
    summary = train(config, run_dir, data_root=root, progress=False)
    return run_dir, root, summary


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lenet5")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def run_cli(argv: list[str]) -> str:
    args = parse(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    return out.getvalue()


# --- evaluate ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_paper_model_reproduces_its_run(paper_eval):
    model, config, result = paper_eval
    assert not model.training and config.model.head == "rbf"
    summary = json.loads((PAPER_RUN / "summary.json").read_text())
    saved = json.loads((PAPER_RUN / "test_predictions.json").read_text())
    assert result["split"] == "test" and result["patterns"] == 10_000
    assert result["error_pct"] == summary["final_test_error_pct"]
    assert result["predictions"] == saved["predictions"] and result["labels"] == saved["labels"]
    confusion = torch.tensor(result["confusion"])
    assert confusion.sum() == 10_000
    assert confusion.diag().sum() == 10_000 - result["errors"] == 10_000 - len(result["misclassified"])
    assert torch.equal(confusion.sum(1), torch.bincount(torch.tensor(saved["labels"]), minlength=10))
    expected = 100 * (1 - confusion.diag().double() / confusion.sum(1))
    assert torch.allclose(torch.tensor(result["per_class_error_pct"], dtype=torch.float64), expected)


def test_linear_run_reproduces_its_summary(tiny_run):
    run_dir, root, summary = tiny_run
    model, config = load_model(run_dir / "model.pt")
    assert config.model.head == "linear" and config.train.train_size == 256
    result = evaluate_model(model, config, data_root=root)
    assert result["split"] == "test" and result["patterns"] == 64
    assert result["error_pct"] == summary["final_test_error_pct"]
    assert result["predictions"] == json.loads((run_dir / "test_predictions.json").read_text())["predictions"]
    train_result = evaluate_model(model, config, "train", data_root=root)
    assert train_result["patterns"] == 256 and train_result["error_pct"] == summary["final_train_error_pct"]


def test_read_model_takes_the_run_folder_or_its_model_file(tiny_run):
    from repro.run_folder import read_model

    run_dir = tiny_run[0]
    (from_folder, config), (from_file, _) = read_model(run_dir), read_model(run_dir / "model.pt")
    assert config.model.head == "linear"
    for (name, a), (_, b) in zip(from_folder.state_dict().items(), from_file.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_validation_run_evaluates_on_its_validation_split(real_root, tmp_path):
    config = run_config("modern", {"epochs": 1, "train_size": 256, "evaluate_on": "validation"})
    summary = train(config, tmp_path / "run", data_root=real_root, progress=False)
    model, saved = load_model(tmp_path / "run")
    result = evaluate_model(model, saved, data_root=real_root)
    assert result["split"] == "validation" and result["patterns"] == 10_000
    assert result["error_pct"] == summary["final_test_error_pct"]


def test_cli_evaluate(tiny_run):
    run_dir, root, summary = tiny_run
    text = run_cli(["evaluate", str(run_dir), "--data-root", str(root)])
    assert f"error {summary['final_test_error_pct']:.2f}%" in text
    assert "summary.json final_test_error_pct" in text and ": equal" in text
    assert "confusion matrix" in text and "per-class error" in text
    data = json.loads(run_cli(["evaluate", str(run_dir / "model.pt"), "--data-root", str(root), "--json"]))
    assert data["error_pct"] == summary["final_test_error_pct"] and data["equals_summary"] is True
    assert len(data["confusion"]) == 10 and len(data["per_class_error_pct"]) == 10
    text = run_cli(["evaluate", str(run_dir), "--data-root", str(root), "--split", "train"])
    assert f"error {summary['final_train_error_pct']:.2f}%" in text and "summary.json" not in text


# --- reading images and predict ----------------------------------------------------------------------------

def write_png(path: Path, image: torch.Tensor, mode: str = "L") -> Path:
    Image.fromarray(image.numpy()).convert(mode).save(path)
    return path


@pytest.mark.slow
def test_predict_png_matches_idx_entry(paper_eval, real_root, tmp_path):
    model, config, result = paper_eval
    idx_file = real_root / "MNIST" / "raw" / RAW_FILES[("test", "images")]
    test_images, _ = load_raw(real_root, "test", download=False)
    for index in (0, 1, 2):
        digit = read_image(f"{idx_file}:{index}")
        assert torch.equal(digit, test_images[index])
        png = write_png(tmp_path / f"{index}.png", digit)
        inverted = write_png(tmp_path / f"{index}-inverted.png", 255 - digit)
        big = tmp_path / f"{index}-big.png"
        Image.fromarray(digit.numpy()).resize((56, 56), Image.Resampling.NEAREST).convert("RGB").save(big)
        images = [read_image(str(p)) for p in (png, inverted, big)]
        assert torch.equal(images[0], digit) and torch.equal(images[1], digit) and images[2].shape == (28, 28)
        rows = predict_images(model, config, torch.stack([digit, *images]))
        assert {row["predicted"] for row in rows} == {result["predictions"][index]}
        assert len(rows[0]["penalties"]) == 10
        assert min(range(10), key=rows[0]["penalties"].__getitem__) == rows[0]["predicted"]


def test_predict_linear_gives_probabilities(tiny_run):
    run_dir, root, _ = tiny_run
    model, config = load_model(run_dir)
    images, _ = load_raw(root, "test", download=False)
    rows = predict_images(model, config, images[:5])
    assert len(rows) == 5 and all("penalties" not in row for row in rows)
    for row in rows:
        probs = torch.tensor(row["probabilities"])
        assert probs.shape == (10,) and abs(probs.sum().item() - 1) < 1e-5
        assert probs.argmax().item() == row["predicted"]
    single = predict_images(model, config, images[3])
    assert single[0]["predicted"] == rows[3]["predicted"]


def test_cli_predict(tiny_run):
    run_dir, root, _ = tiny_run
    idx_file = root / "MNIST" / "raw" / RAW_FILES[("test", "images")]
    specs = [f"{idx_file}:0", f"{idx_file}:7"]
    lines = run_cli(["predict", str(run_dir), *specs]).splitlines()
    assert len(lines) == 3 and "probabilities" in lines[0]  # IDX entries are MNIST's format: no note
    for spec, line in zip(specs, lines[1:]):
        assert line.startswith(spec) and len(line.split()) == 12  # image, class, ten probabilities
    data = json.loads(run_cli(["predict", str(run_dir / "model.pt"), *specs, "--invert", "no", "--json"]))
    assert [row["image"] for row in data["images"]] == specs and data["head"] == "linear"


def test_idx_entries(tmp_path):
    images = torch.randint(0, 256, (5, 28, 28), generator=torch.Generator().manual_seed(3))
    images[:, 0, :] = 0  # a dark border, so that auto leaves them as they are
    plain = tmp_path / "digits-idx3-ubyte"
    write_idx(plain, images, 0x803)
    packed = tmp_path / "digits-idx3-ubyte.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    (tmp_path / "digits.idx").write_bytes(plain.read_bytes())
    for name in (plain, packed, tmp_path / "digits.idx"):
        assert torch.equal(read_image(f"{name}:4", invert="no"), images[4])
    with pytest.raises(DataError) as exc:
        read_image(f"{plain}:5")
    assert "out of range" in one_line(exc) and "0..4" in str(exc.value)
    with pytest.raises(DataError) as exc:
        read_image(f"{packed}:-1")
    assert "out of range" in one_line(exc)
    with pytest.raises(DataError) as exc:
        read_image(str(plain))
    assert ":INDEX" in one_line(exc)
    labels = tmp_path / "labels-idx1-ubyte"
    write_idx(labels, torch.arange(5), 0x801)
    with pytest.raises(DataError) as exc:
        read_image(f"{labels}:0")
    assert "not an IDX images file" in one_line(exc)
    with pytest.raises(DataError) as exc:
        read_image(f"{tmp_path / 'absent-idx3-ubyte'}:0")
    assert "absent-idx3-ubyte" in one_line(exc)


def test_auto_inversion_and_image_errors(tmp_path):
    digit = torch.zeros(28, 28, dtype=torch.uint8)
    digit[6:22, 12:16] = 255  # a light "1" on a dark background, as MNIST's
    assert not needs_inversion(digit) and needs_inversion(255 - digit)
    dark_on_light = write_png(tmp_path / "one.png", 255 - digit)
    assert torch.equal(read_image(str(dark_on_light)), digit)
    assert torch.equal(read_image(str(dark_on_light), invert="yes"), digit)
    # not inverted, dark ink on a light field has no light ink to find: an empty field, and a note that says why
    image, notes = read_image_with_notes(str(dark_on_light), invert="no")
    assert not image.any() and "background at grey 255, not black" in notes and "nothing drawn" in notes
    assert torch.equal(read_image(str(write_png(tmp_path / "light.png", digit)), invert="no"), digit)
    transparent = Image.new("RGBA", (28, 28), (0, 0, 0, 0))  # dark ink drawn on a transparent canvas
    transparent.paste((0, 0, 0, 255), (12, 6, 16, 22))
    transparent.save(tmp_path / "drawn.png")
    assert torch.equal(read_image(str(tmp_path / "drawn.png")), digit)
    with pytest.raises(DataError) as exc:
        read_image(str(tmp_path / "missing.png"))
    assert "does not exist" in one_line(exc)
    (tmp_path / "junk.png").write_bytes(b"not an image\n" * 10)
    with pytest.raises(DataError) as exc:
        read_image(str(tmp_path / "junk.png"))
    assert "cannot read image" in one_line(exc)
    with pytest.raises(ConfigError):
        read_image(str(dark_on_light), invert="maybe")


def test_a_photo_like_digit_is_prepared_as_mnist_and_noted(tmp_path):
    digit = torch.zeros(28, 28, dtype=torch.uint8)
    digit[6:22, 12:16] = 255
    photo = Image.new("RGB", (60, 90), (200, 200, 200))  # a red bar on light grey, off centre
    photo.paste((200, 30, 30), (8, 10, 20, 70))
    photo.save(tmp_path / "photo.jpg", quality=85)
    image, notes = read_image_with_notes(str(tmp_path / "photo.jpg"))
    rows, cols = image.nonzero()[:, 0], image.nonzero()[:, 1]
    assert rows.max() - rows.min() + 1 == 20 and image.max() >= 200 and image[0].sum() == 0
    assert abs(float(cols.float().mean()) - 13.5) <= 1.0  # centred
    assert any("not 28x28" in n for n in notes)
    folder = tmp_path / "images"
    folder.mkdir()
    write_png(folder / "a.png", digit), write_png(folder / "b.png", digit)
    from repro.inference import expand_image_specs
    assert expand_image_specs([str(folder)]) == [str(folder / "a.png"), str(folder / "b.png")]
    with pytest.raises(DataError, match="a folder with no image in it"):
        expand_image_specs([str(tmp_path / "empty")] if (tmp_path / "empty").mkdir() is None else [])


def test_model_file_errors(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    with pytest.raises(RunError) as exc:
        load_model(tmp_path / "nowhere" / "model.pt")
    assert "does not exist" in one_line(exc)
    with pytest.raises(RunError) as exc:
        load_model(tmp_path)
    assert "is not a run folder" in one_line(exc)
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    with pytest.raises(RunError) as exc:
        load_model(tmp_path / "unfinished")
    assert "has not finished" in one_line(exc) and "--resume" in str(exc.value)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(64) + b"\n\n")
    with pytest.raises(RunError) as exc:
        load_model(junk)
    assert "is not a lenet5 model.pt" in one_line(exc) and str(junk) in str(exc.value)
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    torch.save({"model": saved["model"]}, tmp_path / "no-config.pt")
    with pytest.raises(RunError) as exc:
        load_model(tmp_path / "no-config.pt")
    assert "'config'" in one_line(exc)
    torch.save({"model": saved["model"], "config": run_config("paper").to_dict()}, tmp_path / "mismatch.pt")
    with pytest.raises(RunError) as exc:
        load_model(tmp_path / "mismatch.pt")
    assert "do not fit its own config" in one_line(exc)
    args = parse(["evaluate", str(junk)])
    with pytest.raises(RunError):
        args.func(args)


@pytest.mark.slow
def test_readme_snippet(real_root, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv(ENV_VAR, str(real_root))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_snippet(), "README snippet", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines == ["predicted: [7, 2, 1, 0, 4, 1, 4, 9]", "true:      [7, 2, 1, 0, 4, 1, 4, 9]"]
