import pytest
import torch

from conftest import make_mnist

from repro import data
from repro.data import DataError, RAW_FILES, load_mnist, preprocess


def test_preprocess_32_maps_background_and_ink():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 10, 10] = 255
    x = preprocess(images, "32")
    assert x.shape == (2, 1, 32, 32)
    assert x[0, 0, 0, 0].item() == pytest.approx(-0.1)  # the padding is background
    assert x[0, 0, 12, 12].item() == pytest.approx(1.175)  # pixel (10, 10) moved by the 2-pixel pad
    assert x.min().item() == pytest.approx(-0.1)


def test_preprocess_28_is_totensor_scaling():
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8).expand(1, 28, 2).contiguous()
    assert preprocess(images, "28")[0, 0, 0].tolist() == [0.0, 1.0]


def test_load_small_idx_files(tiny_mnist):
    d = load_mnist("32", tiny_mnist, download=False)
    assert d.train_x.shape == (32, 1, 32, 32) and d.test_x.shape == (16, 1, 32, 32)
    assert d.train_y.tolist()[:12] == list(range(10)) + [0, 1]
    assert d.train_x.dtype == torch.float32
    assert load_mnist("28", tiny_mnist, download=False, train_size=8).train_x.shape == (8, 1, 28, 28)


def test_root_from_environment(tiny_mnist, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tiny_mnist))
    assert load_mnist("28", download=False).test_y.numel() == 16


def test_missing_root_names_paths_variable_and_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_try_download", lambda root, dataset: "torchvision's download failed: URLError")
    with pytest.raises(DataError) as err:
        load_mnist("32", tmp_path / "nowhere")
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "nowhere" / "MNIST" / "raw" / "train-images-idx3-ubyte") in msg
    assert "LENET5_DATA" in msg and "--data-root" in msg and "download failed" in msg


def test_truncated_file_is_named(tiny_mnist):
    path = tiny_mnist / "MNIST" / "raw" / RAW_FILES[("train", "images")]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte has .* bytes but its header .*needs .*truncated or corrupt"):
        load_mnist("32", tiny_mnist, download=False)


def test_corrupt_magic_is_named(tiny_mnist):
    path = tiny_mnist / "MNIST" / "raw" / RAW_FILES[("test", "labels")]
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is not a labels IDX file of MNIST"):
        load_mnist("32", tiny_mnist, download=False)


def test_bad_train_size(tiny_mnist):
    with pytest.raises(DataError, match="train_size=100 is outside 1..32"):
        load_mnist("32", tiny_mnist, download=False, train_size=100)


def test_real_mnist(real_data_root):
    d = load_mnist("32", real_data_root, download=False)
    assert d.train_x.shape == (60_000, 1, 32, 32) and d.test_x.shape == (10_000, 1, 32, 32)
    assert torch.bincount(d.train_y).tolist()[:3] == [5923, 6742, 5958]
    assert d.train_x.min().item() == pytest.approx(-0.1) and d.train_x.max().item() == pytest.approx(1.175)


def test_validation_split_holds_out_the_last_training_patterns(tmp_path):
    from conftest import make_mnist
    root = make_mnist(tmp_path, data.VALIDATION_SIZE + 40, 16)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (root / "MNIST" / "raw" / name).write_bytes(b"")  # the test set is never read
    full_y = data.load_raw(root, "train", download=False)[1]
    d = load_mnist("32", root, download=False, evaluate_on="validation")
    assert d.train_x.shape[0] == 40 and d.test_x.shape[0] == data.VALIDATION_SIZE
    assert torch.equal(d.test_y, full_y[-data.VALIDATION_SIZE:]) and torch.equal(d.train_y, full_y[:40])
    assert load_mnist("32", root, download=False, evaluate_on="validation", train_size=8).train_x.shape[0] == 8


def test_validation_split_needs_enough_training_patterns(tiny_mnist):
    with pytest.raises(DataError, match="too few to hold out a validation split"):
        load_mnist("32", tiny_mnist, download=False, evaluate_on="validation")


def test_fashion_mnist_is_read_from_its_own_folder_through_the_same_checks(tmp_path, monkeypatch):
    make_mnist(tmp_path, 32, 16)
    with pytest.raises(DataError) as err:  # no Fashion-MNIST yet: the message names its folder
        monkeypatch.setattr(data, "_try_download", lambda root, dataset: "offline")
        load_mnist("32", tmp_path, dataset="fashion_mnist")
    assert str(tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte") in str(err.value)
    assert str(err.value).startswith("Fashion-MNIST not found") and "\n" not in str(err.value)
    make_mnist(tmp_path, 24, 8, folder="FashionMNIST")
    fashion, digits = load_mnist("28", tmp_path, dataset="fashion_mnist"), load_mnist("28", tmp_path)
    assert fashion.train_x.shape == (24, 1, 28, 28) and digits.train_x.shape == (32, 1, 28, 28)
    path = tmp_path / "FashionMNIST" / "raw" / RAW_FILES[("test", "labels")]
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is not a labels IDX file of Fashion-MNIST"):
        load_mnist("32", tmp_path, dataset="fashion_mnist")


def test_a_run_trains_on_the_dataset_its_config_names(tmp_path, monkeypatch):
    import json

    from repro.config import ConfigError, run_config
    from repro.inference import evaluate_model, load_model
    from repro.train import train
    # nothing may come from the internet, and the two datasets differ in size, so that a run or an evaluation
    # that read the wrong one fails
    monkeypatch.setattr(data, "_try_download", lambda root, dataset: "no download in this test")
    make_mnist(tmp_path, 32, 12, folder="FashionMNIST")
    config = run_config("paper", {"dataset": "fashion_mnist", "epochs": 1, "hessian_samples": 8})
    summary = train(config, tmp_path / "run", data_root=tmp_path, progress=False)
    assert summary["status"] == "finished" and summary["config"]["train"]["dataset"] == "fashion_mnist"
    predictions = json.loads((tmp_path / "run" / "test_predictions.json").read_text())
    assert len(predictions["labels"]) == 12
    make_mnist(tmp_path, 40, 20)
    evaluation = evaluate_model(*load_model(tmp_path / "run"), data_root=tmp_path)
    assert evaluation["patterns"] == 12 and evaluation["error_pct"] == summary["final_test_error_pct"]
    assert run_config("paper").digest() == run_config("paper", {"dataset": "mnist"}).digest()
    with pytest.raises(ConfigError, match="dataset"):
        run_config("paper", {"dataset": "cifar10"})


def test_real_fashion_mnist(real_data_root):
    if not (real_data_root / "FashionMNIST" / "raw" / RAW_FILES[("train", "images")]).is_file():
        pytest.skip("Fashion-MNIST not under the data root")
    d = load_mnist("32", real_data_root, download=False, dataset="fashion_mnist")
    assert d.train_x.shape == (60_000, 1, 32, 32) and d.test_x.shape == (10_000, 1, 32, 32)
    assert torch.bincount(d.train_y).tolist() == [6000] * 10  # Fashion-MNIST is balanced


def test_a_data_root_of_the_four_gz_files_is_read(tmp_path):
    """As MNIST's own site serves them: FILE.gz in the data root (or in MNIST/raw/), unpacked where torchvision
    reads them."""
    import gzip

    from repro.data import load_raw
    source = make_mnist(tmp_path / "plain", 20, 10)
    packed_root = tmp_path / "packed"
    packed_root.mkdir()
    for name in RAW_FILES.values():
        (packed_root / f"{name}.gz").write_bytes(gzip.compress((source / "MNIST" / "raw" / name).read_bytes()))
    images, labels = load_raw(packed_root, "train", download=False)
    expected, expected_labels = load_raw(source, "train", download=False)
    assert torch.equal(images, expected) and torch.equal(labels, expected_labels)


# --- what mutation testing (experiments/mutation.py) found unchecked ---

def test_an_unknown_dataset_is_named_with_the_valid_ones(tmp_path):
    with pytest.raises(DataError, match=r"^unknown dataset 'cifar10'; valid datasets: mnist, fashion_mnist$"):
        data.raw_paths(tmp_path, "cifar10")


def test_raw_paths_default_to_mnist(tmp_path):
    assert data.raw_paths(tmp_path) == {key: tmp_path / "MNIST" / "raw" / name for key, name in RAW_FILES.items()}


def test_the_missing_message_lists_every_missing_path(tmp_path):
    missing = [tmp_path / "a", tmp_path / "b"]
    assert f"expected files: {tmp_path / 'a'}, {tmp_path / 'b'}. Fix:" in data._missing_message(
        tmp_path, missing, "offline", "mnist")


def test_load_raw_defaults_to_the_training_split(tiny_mnist):
    images, labels = data.load_raw(tiny_mnist)
    assert images.shape == (32, 28, 28) and labels.shape == (32,)


def test_load_raw_downloads_by_default_and_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def fake_download(root, dataset):
        calls.append((root, dataset))
        return "offline"

    monkeypatch.setattr(data, "_try_download", fake_download)
    with pytest.raises(DataError, match=rf"^MNIST not found under {tmp_path} \(offline\)"):
        data.load_raw(tmp_path)
    assert calls == [(tmp_path, "mnist")]
    with pytest.raises(DataError, match=r"\(download not attempted\)"):
        data.load_raw(tmp_path, download=False)
    assert len(calls) == 1


def test_load_mnist_passes_download_and_dataset_to_both_splits(tiny_mnist, monkeypatch):
    calls, load_raw = [], data.load_raw

    def recording(data_root, split, download, dataset):
        calls.append((split, download, dataset))
        return load_raw(data_root, split, download, dataset)

    monkeypatch.setattr(data, "load_raw", recording)
    load_mnist("28", tiny_mnist, download=False)
    load_mnist("28", tiny_mnist)
    assert calls == [("train", False, "mnist"), ("test", False, "mnist"), ("train", True, "mnist"),
                     ("test", True, "mnist")]


def test_try_download_runs_torchvision_quietly_and_names_its_failure(tmp_path, monkeypatch, capsys):
    import sys
    calls = []

    class FakeMNIST:
        def __init__(self, *args, **kwargs):
            calls.append((args, kwargs))
            sys.stdout.write("Downloading...\n")
            sys.stderr.write("progress\n")

    class Offline:
        def __init__(self, *args, **kwargs):
            raise ConnectionError("no network")

    classes = {"fashion_mnist": FakeMNIST, "mnist": Offline}
    monkeypatch.setattr(data, "_torchvision_class", lambda dataset: classes[dataset])
    assert data._try_download(tmp_path, "fashion_mnist") is None
    assert calls == [((str(tmp_path),), {"train": True, "download": True})]
    assert capsys.readouterr() == ("", "")
    assert data._try_download(tmp_path, "mnist") == "torchvision's download failed: ConnectionError"


def test_gz_files_beside_the_missing_ones_are_unpacked_each(tmp_path):
    import gzip
    source = make_mnist(tmp_path / "plain", 20, 10) / "MNIST" / "raw"
    paths = data.raw_paths(tmp_path / "packed")
    raw = paths[("train", "images")].parent
    raw.mkdir(parents=True)
    for name in list(RAW_FILES.values())[1:]:  # no .gz for the first missing file: the others are still unpacked
        (raw / f"{name}.gz").write_bytes(gzip.compress((source / name).read_bytes()))
    data._unpack_gzipped(tmp_path / "packed", list(paths.values()), "mnist")
    assert sorted(p.name for p in raw.iterdir() if not p.name.endswith(".gz")) == sorted(list(RAW_FILES.values())[1:])
    for name in list(RAW_FILES.values())[1:]:
        assert (raw / name).read_bytes() == (source / name).read_bytes()


def test_a_corrupt_gz_file_is_named(tmp_path):
    (tmp_path / f"{RAW_FILES[('train', 'images')]}.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"found .*train-images-idx3-ubyte.gz but cannot unpack it into .*gunzip"):
        data.load_raw(tmp_path, download=False)


def test_check_idx_file_names_mnist_by_default(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x00\x00\x08\x03" + bytes(8))
    with pytest.raises(DataError, match=r"is not a labels IDX file of MNIST \(bad magic number\); "
                                        r"replace it with a fresh copy of MNIST$"):
        data.check_idx_file(path, "labels")


def test_a_header_cut_inside_its_dimensions_is_named(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big"))  # 3 dimensions announced, 1 present
    with pytest.raises(DataError, match="images is truncated inside its header; replace it with a fresh copy of MNIST"):
        data.check_idx_file(path, "images")


def test_check_idx_file_reads_every_dimension_whole(tmp_path):
    path = tmp_path / "images"
    shape = (1, 2, 70_000)  # a last dimension over 2**16 needs all four of its bytes
    path.write_bytes(b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in shape) + bytes(140_000))
    assert data.check_idx_file(path, "images") == shape


def test_a_validation_split_needs_more_than_its_own_size(tmp_path):
    root = make_mnist(tmp_path, data.VALIDATION_SIZE, 4)
    with pytest.raises(DataError, match="has 10000 patterns, too few to hold out a validation split"):
        load_mnist("28", root, download=False, evaluate_on="validation")


@pytest.mark.parametrize("size, ok", [(0, False), (1, True), (32, True), (33, False)])
def test_train_size_bounds(tiny_mnist, size, ok):
    if ok:
        assert load_mnist("28", tiny_mnist, download=False, train_size=size).train_y.shape == (size,)
    else:
        with pytest.raises(DataError, match=f"train_size={size} is outside 1..32"):
            load_mnist("28", tiny_mnist, download=False, train_size=size)


def test_a_download_that_leaves_files_missing_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_try_download", lambda root, dataset: None)  # "succeeded", wrote nothing
    with pytest.raises(DataError, match=rf"^MNIST not found under {tmp_path} \(download left files missing\)"):
        data.load_raw(tmp_path)


def test_reading_the_files_never_downloads(tiny_mnist, monkeypatch):
    calls, torchvision_class = [], data._torchvision_class

    def recording(dataset):
        def make(*args, **kwargs):
            calls.append(kwargs)
            return torchvision_class(dataset)(*args, **kwargs)
        return make

    monkeypatch.setattr(data, "_torchvision_class", recording)
    data.load_raw(tiny_mnist, "test")
    assert calls == [{"train": False, "download": False}]


def test_a_bad_image_file_names_its_dataset(tmp_path):
    make_mnist(tmp_path, 8, 4, folder="FashionMNIST")
    path = tmp_path / "FashionMNIST" / "raw" / RAW_FILES[("train", "images")]
    path.write_bytes(b"\x00\x00\x08\x01" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is not a images IDX file of Fashion-MNIST"):
        data.load_raw(tmp_path, "train", download=False, dataset="fashion_mnist")


@pytest.mark.parametrize("images, labels", [((8, 28, 28), (7,)), ((8, 27, 27), (8,))])
def test_images_that_do_not_match_their_labels_are_named(tmp_path, images, labels):
    from conftest import write_idx
    make_mnist(tmp_path, 8, 4)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / RAW_FILES[("train", "images")], torch.zeros(images, dtype=torch.uint8), 0x803)
    write_idx(raw / RAW_FILES[("train", "labels")], torch.zeros(labels, dtype=torch.uint8), 0x801)
    with pytest.raises(DataError, match=rf"train-images-idx3-ubyte holds \({images[0]}, {images[1]}, {images[2]}\) "
                                        rf"images for {labels[0]} labels; replace the train files with a fresh copy "
                                        r"of MNIST$"):
        data.load_raw(tmp_path, "train", download=False)


def test_a_label_outside_0_to_9_is_named(tmp_path):
    from conftest import write_idx
    make_mnist(tmp_path, 11, 4)
    write_idx(tmp_path / "MNIST" / "raw" / RAW_FILES[("train", "labels")], torch.arange(11), 0x801)  # 0..10
    with pytest.raises(DataError, match="train-labels-idx1-ubyte holds labels outside 0-9"):
        data.load_raw(tmp_path, "train", download=False)


def test_an_unknown_input_mode_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"^invalid input mode '64'; valid choices: 32, 28$"):
        preprocess(torch.zeros(1, 28, 28, dtype=torch.uint8), "64")
