"""Rejection (repro/rejection.py) on crafted cases with known answers, the non-digit sets (repro/nondigits.py)
by digest, and the commands that report them."""
import json

import numpy as np
import pytest
import torch

from repro.cli import main
from repro.config import run_config
from repro.nondigits import blank, digest, letters, mnist_centre, noise
from repro.rejection import (accepted_share, auroc, confidence, error_at_reject, error_reject_curve, keep_threshold,
                             reject_for_error, rejection_summary)

# pinned digests of the generated sets: noise and blank come from torch's seeded generator; the letters also
# depend on FreeType's rendering (checked where Pillow's FreeType is the one they were made with)
DIGESTS = {"noise": "d712b4cbca20c3ce", "blank": "76f810fab23aa8ed", "letters": "edc187253610305a"}
LETTERS_FREETYPE = "2.13.3"


def test_confidence_is_the_gap_between_the_best_two_or_the_best_posterior():
    penalties = np.array([[3.0, 1.0, 7.0], [2.0, 2.0, 9.0]])
    assert confidence(penalties, lower_is_better=True, kind="margin").tolist() == [2.0, 0.0]
    logits = np.array([[0.0, np.log(3.0)], [5.0, 5.0]])
    assert confidence(logits, lower_is_better=False, kind="probability") == pytest.approx([0.75, 0.5])
    assert confidence(logits, lower_is_better=False, kind="margin") == pytest.approx([np.log(3.0), 0.0])
    # MAP's posterior of the best class keeps e^-j in the competition (Eq. 9)
    expected = np.exp(-1.0) / (np.exp(-0.1) + np.exp(-3.0) + np.exp(-1.0) + np.exp(-7.0))
    assert confidence(penalties[:1], True, "probability", j=0.1)[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown confidence"):
        confidence(penalties, True, "entropy")


def test_the_error_reject_curve_of_a_hand_made_set():
    # ten patterns, confidences 1..10; the wrong ones are the two least confident and the most confident
    conf = np.arange(1, 11, dtype=float)
    correct = np.array([False, False] + [True] * 7 + [False])
    reject, error = error_reject_curve(conf, correct)
    assert reject.tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert error[:4] == pytest.approx([30.0, 200 / 9, 12.5, 100 / 7])
    assert error[-2:].tolist() == [100.0, 0.0]  # the last one is wrong; nothing accepted counts as no error
    assert reject_for_error((reject, error), 15.0) == 20.0 and reject_for_error((reject, error), 12.0) == 100.0
    assert error_at_reject((reject, error), 5.0) == pytest.approx(200 / 9)  # at least 5%: the first pattern


def test_ties_are_rejected_together():
    conf = np.array([1.0, 1.0, 1.0, 2.0])
    correct = np.array([False, True, True, True])
    reject, error = error_reject_curve(conf, correct)
    assert reject.tolist() == [0, 75, 100]  # no threshold rejects one of three equally confident patterns
    assert error.tolist() == [25.0, 0.0, 0.0]
    assert error_at_reject((reject, error), 10.0) == 0.0 and reject_for_error((reject, error), 0.5) == 75.0


def test_auroc_of_known_rankings():
    assert auroc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auroc([0, 1], [2, 3]) == 0.0
    assert auroc([1, 3], [2, 4]) == 0.25  # one of four pairs in order
    assert auroc([1, 1], [1, 1]) == 0.5  # ties count one half
    assert np.isnan(auroc([1.0], []))


def test_the_threshold_keeps_the_share_of_digits_asked_for():
    digits = np.arange(100, dtype=float)  # 0..99
    threshold = keep_threshold(digits, 99.0)
    assert threshold == 1.0 and accepted_share(digits, threshold) == 99.0
    assert keep_threshold(digits, 100.0) == 0.0
    assert accepted_share(np.array([0.5, 1.0, 2.0, 3.0]), threshold) == 75.0


def test_the_summary_names_what_the_issue_asks_for():
    outputs = np.array([[0.0, 5.0], [0.0, 0.5], [4.0, 0.0], [0.0, 3.0]])  # penalties; margins 5, 0.5, 4, 3
    summary = rejection_summary(outputs, [0, 1, 1, 0], lower_is_better=True, kind="margin")
    assert summary == {"confidence": "margin", "error_pct": 25.0, "reject_pct_for_0_5pct_error": 25.0,
                       "error_pct_at_1pct_reject": 0.0, "error_pct_at_5pct_reject": 0.0}


def test_the_generated_sets_are_reproducible():
    assert digest(noise()) == DIGESTS["noise"] and digest(blank()) == DIGESTS["blank"]
    a = letters()
    # drawn anew (letters() is cached): the same pixels
    assert a.shape == (26 * 3 * 3, 28, 28) and a.dtype == torch.uint8 and torch.equal(a, letters.__wrapped__())
    from PIL import features
    if features.version("freetype2") == LETTERS_FREETYPE:
        assert digest(a) == DIGESTS["letters"]


def test_mnist_centre_fits_20x20_and_centres_the_mass():
    image = np.zeros((60, 90), dtype=np.uint8)
    image[10:50, 20:30] = 255  # a tall bar, 40 x 10
    field = mnist_centre(image)
    rows, cols = np.flatnonzero(field.max(axis=1)), np.flatnonzero(field.max(axis=0))
    assert field.shape == (28, 28) and rows[-1] - rows[0] + 1 == 20 and 4 <= cols[-1] - cols[0] + 1 <= 6
    from scipy import ndimage
    cy, cx = ndimage.center_of_mass(field.astype(float))
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5
    assert not mnist_centre(np.zeros((5, 5))).any()


@pytest.fixture
def tiny_run(tiny_mnist, tmp_path):
    from repro.train import train
    config = run_config("paper", {"epochs": 1, "hessian_samples": 8})
    train(config, tmp_path / "run", data_root=tiny_mnist, progress=False)
    return tmp_path / "run", tiny_mnist


def test_a_finished_run_keeps_its_outputs_on_non_digits(tiny_run):
    from repro.train import read_nondigit_outputs
    run_dir, _ = tiny_run
    kept = read_nondigit_outputs(run_dir)
    # the synthetic data root has no Fashion-MNIST: the generated sets are kept all the same
    assert {k: v.shape for k, v in kept.items()} == {"letters": (234, 10), "noise": (600, 10), "blank": (5, 10)}
    assert all(v.dtype == np.float16 for v in kept.values())


def test_evaluate_reject_json(tiny_run, capsys):
    run_dir, root = tiny_run
    assert main(["evaluate", str(run_dir), "--data-root", str(root), "--reject", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"reject_pct_for_0_5pct_error", "error_pct_at_1pct_reject", "error_pct_at_5pct_reject"} <= set(result)
    assert set(result["auroc"]) == {"letters", "noise", "blank"} and all(0 <= v <= 1 for v in result["auroc"].values())
    assert result["confidence"] == "margin" and result["curve"]["0"] == result["error_pct"]


def test_predict_says_which_images_would_be_rejected(tiny_run, tmp_path, capsys):
    from PIL import Image
    run_dir, root = tiny_run
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "blank.png")
    assert main(["predict", str(run_dir), str(tmp_path / "blank.png"), "--reject-at", "100", "--data-root",
                 str(root), "--json"]) == 0
    image = json.loads(capsys.readouterr().out)["images"][0]
    assert {"confidence", "threshold", "rejected"} <= set(image)
    assert image["rejected"] == (image["confidence"] < image["threshold"])
    with pytest.raises(SystemExit):
        main(["predict", str(run_dir), str(tmp_path / "blank.png"), "--reject-at", "0"])


def test_the_second_axis_bolds_each_resolved_delta_and_says_which_way_it_goes():
    """repro/study/rejection.py, `second_axis`: resolved = the interval excludes zero and Holm p < 0.05; for the
    share rejected lower is better, for an AUROC higher is."""
    import pandas as pd

    from repro.study.rejection import second_axis

    def swap(name, paired, **deltas):  # key: (delta, half, Holm p)
        row = {"variant": name, "paired": paired}
        for key, (delta, half, p) in deltas.items():
            row.update({f"delta_{key}": delta, f"dhalf_{key}": half, f"p_holm_{key}": p})
        return row
    frame = pd.DataFrame([
        {"variant": "paper", "paired": None},
        swap("head=linear", 5, reject_pct_for_0_5pct_error=(0.5, 0.3, 0.04), auroc_letters=(0.1, 0.05, 0.01),
             auroc_fashion=(-0.07, 0.1, 0.2), auroc_noise=(-0.2, 0.1, 0.06)),  # noise: interval only
        swap("norm=batch", 4, auroc_blank=(0.05, 0.06, 0.001)),  # Holm only
        swap("c3=full@lr=3e-05", 5, auroc_letters=(0.5, 0.1, 0.001)),  # at its own step size: not a pure swap
        swap("input=28", 0),  # no paired seed yet
    ])
    text = second_axis(frame, "paper")
    assert "| `head=linear` | 5 | **+0.50 ± 0.30** | -0.07 ± 0.10 | **+0.10 ± 0.05** | -0.20 ± 0.10 | – |" in text
    assert "| `norm=batch` | 4 | – | – | – | – | +0.05 ± 0.06 |" in text
    assert "c3=full@lr" not in text and "input=28" not in text and "paper" not in text
    assert text.endswith("in bold): `head=linear` rejected for 0.5% error, % +0.50 (worse); `head=linear` AUROC "
                         "digits vs letters +0.10 (better).")
    assert second_axis(frame.iloc[[0, 4]], "paper") == "_No swap has paired seeds with kept outputs yet._"
