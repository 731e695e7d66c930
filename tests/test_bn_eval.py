"""`bn_eval` (repro/components/norm.py): how BatchNorm evaluates. per_pattern evaluates each pattern with its own
statistics, the function BatchNorm trains at batch 1; running (the default) is nn.BatchNorm2d's. The choice
changes what a run measures, never how it trains."""
import copy
import json

import pytest
import torch

from conftest import make_mnist
from repro.components import (EVALUATION_STATISTICS, BatchNorm2d, set_evaluation_statistics,
                              using_running_statistics)
from repro.config import RunConfig, run_config
from repro.errors import ConfigError
from repro.inference import evaluate_model, load_model
from repro.model import build_model
from repro.sdlm import gauss_newton_diagonal
from repro.study.grids import GRIDS
from repro.train import read_log, train


def trained_like(bn_eval: str) -> torch.nn.Module:
    """A paper + BatchNorm network whose running statistics are far from any pattern's own (as after training)."""
    torch.manual_seed(0)
    model = build_model(run_config("paper", {"norm": "batch", "bn_eval": bn_eval}))
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            m.running_mean.fill_(0.5)
            m.running_var.fill_(3.0)
    return model


def test_per_pattern_evaluation_is_the_function_trained_at_batch_one():
    x = torch.rand(5, 1, 32, 32)
    model = trained_like("per_pattern")
    trained = copy.deepcopy(model).train()
    with torch.no_grad():
        expected = torch.cat([trained(x[i:i + 1]) for i in range(len(x))])
        got = model.eval()(x)
        running = set_evaluation_statistics(copy.deepcopy(model), "running").eval()(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (running - expected).abs().max() > 1e-2  # the running statistics give another function


def test_per_pattern_evaluation_of_one_layer_is_its_training_at_batch_one():
    """The same property for one BatchNorm2d, with a scale, a shift and an eps away from their defaults (a fresh
    layer's scale 1, shift 0 and eps 1e-5 are what F.instance_norm assumes when one is left out)."""
    norm = BatchNorm2d(3, eps=0.05)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0, -1.5]))
        norm.bias.copy_(torch.tensor([0.3, -0.7, 1.1]))
    x = torch.randn(4, 3, 5, 6) * 2 + 1
    trained = copy.deepcopy(norm).train()
    with torch.no_grad():
        expected = torch.cat([trained(x[i:i + 1]) for i in range(len(x))])
        got = set_evaluation_statistics(norm, "per_pattern").eval()(x)
    torch.testing.assert_close(got, expected)


def test_an_unknown_bn_eval_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"^bn_eval 'median' is not one of \('running', 'per_pattern'\)$"):
        set_evaluation_statistics(torch.nn.Sequential(BatchNorm2d(2)), "median")


def test_sdlm_curvature_does_not_depend_on_bn_eval():
    x, y = torch.rand(6, 1, 32, 32), torch.arange(6)
    per_pattern, running = trained_like("per_pattern"), trained_like("running")
    h_pp = gauss_newton_diagonal(per_pattern, x, y, "map")
    h_run = gauss_newton_diagonal(running, x, y, "map")
    for (name, p), q in zip(per_pattern.named_parameters(), running.parameters()):
        torch.testing.assert_close(h_pp[p], h_run[q], rtol=0, atol=0, msg=name)
    assert all(m.per_pattern_eval for m in per_pattern.modules() if isinstance(m, BatchNorm2d))  # restored
    with using_running_statistics(per_pattern):
        assert not any(m.per_pattern_eval for m in per_pattern.modules() if isinstance(m, BatchNorm2d))


@pytest.mark.parametrize("overrides, words", [
    ({"bn_eval": "per_pattern"}, "norm=none"),
    ({"norm": "batch", "bn_eval": "per_pattern", "batch_size": 64}, "batch_size=64"),
    ({"norm": "batch", "bn_eval": "instance"}, "valid choices"),
])
def test_impossible_bn_eval_is_one_line(overrides, words):
    with pytest.raises(ConfigError) as info:
        run_config("paper", overrides)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_default_keeps_committed_digests():
    """bn_eval came after results/paper_final's runs: at its default a config keeps the name (digest) it had,
    and a config.json written before the field existed reads back as that config; another value is another run,
    with another name."""
    paper = run_config("paper")
    assert paper.digest() == "8f83a42159"  # results/paper_final's runs, from before bn_eval
    before = paper.to_dict()
    del before["train"]["bn_eval"]
    assert RunConfig.from_dict(before) == paper and paper.train.bn_eval == "running"
    running = run_config("paper", {"norm": "batch"})
    assert run_config("paper", {"norm": "batch", "bn_eval": "per_pattern"}).digest() != running.digest()


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_grids_batchnorm_at_batch_one_evaluates_per_pattern(name):
    grid = GRIDS[name]
    for v in grid.variants:
        at_batch_one = v.config.model.norm == "batch" and v.config.train.batch_size == 1
        assert v.config.train.bn_eval == ("per_pattern" if at_batch_one else "running"), v.name


def tiny_bn_config(**overrides):
    return run_config("paper", {"norm": "batch", "epochs": 2, "train_size": 64, "hessian_samples": 16,
                                "hessian_every": 16, **overrides})


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    return make_mnist(tmp_path_factory.mktemp("mnist"), 96, 32)


@pytest.mark.parametrize("engine", ["reference", "online"])
def test_bn_eval_changes_what_a_run_measures_not_how_it_trains(engine, mnist_root, tmp_path):
    runs = {}
    for bn_eval in EVALUATION_STATISTICS:
        config = tiny_bn_config(bn_eval=bn_eval, engine=engine)
        train(config, tmp_path / bn_eval, data_root=mnist_root, progress=False)
        runs[bn_eval] = (read_log(tmp_path / bn_eval), torch.load(tmp_path / bn_eval / "model.pt")["model"])
    (log_run, weights_run), (log_pp, weights_pp) = runs["running"], runs["per_pattern"]
    assert [e["train_loss"] for e in log_run] == [e["train_loss"] for e in log_pp]
    assert weights_run.keys() == weights_pp.keys()
    for key in weights_run:
        assert torch.equal(weights_run[key], weights_pp[key]), key
    assert [e["test_loss"] for e in log_run] != [e["test_loss"] for e in log_pp]  # measured differently


def test_saved_per_pattern_run_reproduces_its_summary(mnist_root, tmp_path):
    config = tiny_bn_config(bn_eval="per_pattern", epochs=1)
    summary = train(config, tmp_path / "run", data_root=mnist_root, progress=False)
    model, loaded = load_model(tmp_path / "run")
    assert loaded.train.bn_eval == "per_pattern"
    assert all(m.per_pattern_eval for m in model.modules() if isinstance(m, BatchNorm2d))
    result = evaluate_model(model, loaded, data_root=mnist_root)
    assert result["error_pct"] == summary["final_test_error_pct"]
    assert result["loss"] == pytest.approx(read_log(tmp_path / "run")[-1]["test_loss"], rel=1e-6)
    saved = json.loads((tmp_path / "run" / "test_predictions.json").read_text())
    assert result["predictions"] == saved["predictions"]
    running = evaluate_model(set_evaluation_statistics(model, "running"), loaded, data_root=mnist_root)
    assert running["loss"] != pytest.approx(result["loss"], rel=1e-6)


NOTE = ("note: BatchNorm at batch_size 1 evaluates with its running statistics here; --set bn_eval=per_pattern "
        "evaluates it as it trains (paper_notes/normalisation.md)")


@pytest.mark.parametrize("settings, progress, noted", [
    ({}, True, True),
    ({"bn_eval": "per_pattern"}, True, False),
    ({"batch_size": 4}, True, False),  # a batch's own statistics train it: nothing to note
    ({"norm": "none"}, True, False),
    ({}, False, False),  # a quiet run prints nothing
], ids=["running", "per_pattern", "batch_4", "no_batchnorm", "quiet"])
def test_batchnorm_at_batch_one_with_running_statistics_gets_a_note(settings, progress, noted, mnist_root, tmp_path,
                                                                    capsys):
    train(tiny_bn_config(epochs=1, train_size=16, **settings), tmp_path / "run", data_root=mnist_root,
          progress=progress)
    err = capsys.readouterr().err
    assert (NOTE + "\n" in err) == noted and ("BatchNorm" in err) == noted


def test_bn_eval_screen_measures_both_ways_and_retrains_a_missing_network(tmp_path):
    from experiments.bn_eval_screen import main
    from repro.study.grid import append_row

    root = make_mnist(tmp_path / "mnist", 10_064, 16)  # the validation split is the last 10,000
    screen = tmp_path / "screen"
    config = tiny_bn_config(bn_eval="per_pattern", epochs=1, train_size=0, evaluate_on="validation")
    summary = train(config, screen / "norm-batch@lr-0.0001" / "seed0", data_root=root, progress=False)
    append_row(screen / "runs.jsonl", {"variant": "norm=batch@lr=0.0001", "seed": 0, "status": "finished",
                                       "lr": config.train.lr, "passes": 1, "run_dir": "norm-batch@lr-0.0001/seed0"})
    (screen / "norm-batch@lr-0.0001" / "seed0" / "model.pt").unlink()  # as on a fresh clone
    main(["--data-root", str(root), "--screen", str(screen), "--out", str(tmp_path / "bn_eval.jsonl")])
    rows = {r["bn_eval"]: r for r in map(json.loads, (tmp_path / "bn_eval.jsonl").read_text().splitlines())}
    assert set(rows) == set(EVALUATION_STATISTICS) and rows["per_pattern"]["patterns"] == 10_000
    assert rows["per_pattern"]["validation_error_pct"] == pytest.approx(summary["final_test_error_pct"], abs=1e-4)
