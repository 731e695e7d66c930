"""Distorted training patterns (Sec. III-C): parameters, warping, each pass's draw from the pool."""
import pytest
import torch

from repro.config import ConfigError, config_differences, run_config
from repro.data import preprocess
from repro.distortions import (AFFINE_RANGES, DISTORTED_COPIES, affine_parameters, distorted_pass, warp)


def test_parameters_are_a_function_of_the_seed_within_their_ranges():
    a, b = affine_parameters(0, 500, 1.0), affine_parameters(0, 500, 1.0)
    assert a.shape == (DISTORTED_COPIES, 500, 5) and torch.equal(a, b)
    assert not torch.equal(a, affine_parameters(1, 500, 1.0))
    bounds = torch.tensor([AFFINE_RANGES.translate_px, AFFINE_RANGES.translate_px, AFFINE_RANGES.scale,
                           AFFINE_RANGES.squeeze, AFFINE_RANGES.shear])
    assert (a.abs() <= bounds).all() and (a.abs().amax(dim=(0, 1)) > 0.9 * bounds).all()
    torch.testing.assert_close(affine_parameters(0, 500, 0.5), a * 0.5)


def test_identity_leaves_an_image_unchanged_and_a_shift_moves_it():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(warp(images, torch.zeros(3, 5)), images)
    shift = torch.zeros(3, 5)
    shift[:, 0] = 1.0  # sample one pixel to the right: the image moves one pixel left
    moved = warp(images, shift)
    assert torch.equal(moved[:, :, :-1], images[:, :, 1:]) and (moved[:, :, -1] == 0).all()


def test_each_pass_draws_from_originals_and_distorted_copies_deterministically():
    n = 1000
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.arange(n) % 10
    params = affine_parameters(3, n, 1.0)
    x, y = distorted_pass(raw, labels, params, 3, 0, "32")
    x2, y2 = distorted_pass(raw, labels, params, 3, 0, "32")
    assert x.shape == (n, 1, 32, 32) and torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, distorted_pass(raw, labels, params, 3, 1, "32")[0])
    # about one pattern in ten is an original (copy 0 of 10), the rest are distorted
    pre = preprocess(raw, "32")
    exact = sum(bool((x[i] == pre).flatten(1).all(1).any()) for i in range(300))
    assert 10 <= exact <= 60
    assert torch.bincount(y, minlength=10).min() > 50


def test_distortion_settings_are_checked():
    plain, affine = run_config("paper"), run_config("paper", {"distortions": "affine"})
    assert config_differences(plain, affine) == {"distortions": ("none", "affine")}  # that switch alone
    assert run_config("paper", {"distortion_strength": "0.5"}).train.distortion_strength == 0.5  # as --set gives it
    with pytest.raises(ConfigError, match="invalid value 'elastic' for 'distortions'"):
        run_config("paper", {"distortions": "elastic"})
    with pytest.raises(ConfigError, match="'distortion_strength'; must be positive"):
        run_config("paper", {"distortion_strength": 0})
    # the fields came after the first committed runs, which keep their names at the defaults (test_bn_eval.py pins
    # one); a run that distorts, or distorts at another strength, is another run and must get another name
    names = {plain.digest(), affine.digest(), run_config("paper", {"distortions": "affine",
                                                                   "distortion_strength": 0.5}).digest()}
    assert len(names) == 3


def test_a_run_with_distortions_trains_on_other_patterns(tiny_mnist, tmp_path):
    from repro.train import train
    settings = {"epochs": 1, "hessian_samples": 8, "engine": "reference"}
    train(run_config("paper", settings), tmp_path / "plain", data_root=tiny_mnist, progress=False)
    train(run_config("paper", {**settings, "distortions": "affine"}), tmp_path / "distorted", data_root=tiny_mnist,
          progress=False)
    a = torch.load(tmp_path / "plain" / "model.pt")["model"]
    b = torch.load(tmp_path / "distorted" / "model.pt")["model"]
    assert not torch.equal(a["c1.0.weight"], b["c1.0.weight"])
