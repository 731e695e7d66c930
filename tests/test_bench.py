import json

import pytest
import torch

from repro.bench import SeedBlogLeNet, format_report, online_variants, run_bench
from repro.cli import main
from repro.config import run_config
from repro.study.grids import GRIDS


def test_seed_blog_network_matches_modern_preset_counts():
    from repro.config import model_config
    from repro.model import LeNet5
    blog = sum(p.numel() for p in SeedBlogLeNet().parameters())
    ours = sum(p.numel() for p in LeNet5(model_config("modern")).parameters())
    # the blog keeps a bias before each BatchNorm, which BatchNorm's shift makes redundant (repro/components/norm.py)
    assert blog == 61_750 and ours == blog - 6 - 16


def test_bench_variants_are_the_one_at_a_time_grid():
    grid = GRIDS["one_at_a_time"]
    assert [name for name, _ in online_variants()] == [v.name for v in grid.variants if not v.own_lr]
    for name, overrides in online_variants():
        assert run_config("paper", overrides).model == grid.variant(name).config.model, name


@pytest.mark.slow
def test_bench_measures_every_variant_against_its_reference(tiny_mnist_large):
    torch.set_num_threads(1)
    rows = run_bench(tiny_mnist_large, quick=True, lockstep_seeds=2, seconds=0.05,
                     variants=["paper", "pooling=max", "optimizer=adam"],
                     measures=["seed_blog_loop", "modern_batch64", "online"])
    online = [r for r in rows if r["measure"] == "online"]
    assert [(r["variant"], r["engine"], r["seeds"]) for r in online] == [
        (v, e, s) for v in ("paper", "pooling=max", "optimizer=adam")
        for e, s in (("reference", 1), ("online", 1), ("online", 2))]
    assert all(r["batch_size"] == 1 for r in online)
    assert all(r["samples_per_s"] > 0 and r["threads"] == 1 and 0 < r["fraction_of_peak"] for r in rows[1:])
    for r in online:
        reference = next(x for x in online if x["variant"] == r["variant"] and x["engine"] == "reference")
        assert r["vs_reference"] == pytest.approx(r["samples_per_s"] / reference["samples_per_s"])
    report = format_report(rows)
    assert "pooling=max" in report and "2 seeds in lockstep" in report


@pytest.mark.slow
def test_bench_cli_json(tiny_mnist_large, capsys, monkeypatch):
    import repro.bench as bench
    real = bench.run_bench
    monkeypatch.setattr(bench, "run_bench", lambda root, quick, variants, measures: real(
        root, quick, 2, 0.05, variants, measures, whole={"train_size": 96, "epochs": 2}))
    assert main(["bench", "--quick", "--json", "--data-root", str(tiny_mnist_large), "--threads", "1",
                 "--variants", "paper"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["measure"], r["engine"]) for r in lines] == [
        ("seed_blog_loop", "seed blog"), ("modern_batch64", "reference"), ("modern_batch64", "online"),
        ("online", "reference"), ("online", "online"), ("online", "online"), ("curvature", "reference"),
        ("curvature", "online"), ("evaluation", "reference"), ("evaluation", "online"), ("whole_run", "online")]
    assert {"variant", "engine", "batch_size", "samples_per_s"} <= set(lines[-1])
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--measures", "no_such_measure"])
    assert stop.value.code == 2 and "invalid choice: 'no_such_measure'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_whole_run_row_splits_a_real_run_into_its_phases(tiny_mnist_large):
    torch.set_num_threads(1)
    rows = run_bench(tiny_mnist_large, quick=True, seconds=0.05, measures=["whole_run", "curvature", "evaluation"],
                     whole={"train_size": 120, "epochs": 2})
    step = next(r for r in rows if r["measure"] == "online" and r["engine"] == "online")
    run = next(r for r in rows if r["measure"] == "whole_run")
    # 2 passes of 120 patterns: 240 updates, h before each pass (hessian_every=500 > 120), 2 x (120 + 64) evaluated
    assert (run["updates"], run["curvature_estimates"], run["evaluated_patterns"]) == (240, 2, 368)
    assert run["vs_step"] == pytest.approx(run["samples_per_s"] / step["samples_per_s"])
    assert run["vs_reference"] == run["vs_step"]
    # every phase and the wall time are kept to 0.01 s (7 roundings), and `other` is never below 0
    rounding = 7 * 0.005 / (run["wall_s"] - run["compile_s"])
    assert sum(run["phases"].values()) == pytest.approx(1.0, abs=max(0.02, rounding))
    assert run["samples_per_s"] == pytest.approx(240 / (run["wall_s"] - run["compile_s"]))
    # the full run: 20 passes of 60,000, h before each pass and every 500 updates within it (20 x 120 estimates),
    # 20 x 70,000 patterns evaluated
    per_update = run["phases_s"]["updates"] / 240
    assert run["full_run_s"]["updates"] == pytest.approx(per_update * 1_200_000)
    assert run["full_run_s"]["curvature"] == pytest.approx(run["phases_s"]["curvature"] / 2 * 2_400)
    assert run["full_run_s"]["evaluation"] == pytest.approx(run["phases_s"]["evaluation"] / 368 * 1_400_000)
    for measure in ("curvature", "evaluation"):
        reference, ours = (r for r in rows if r["measure"] == measure)
        assert reference["engine"] == "reference" and ours["vs_reference"] == pytest.approx(
            ours["samples_per_s"] / reference["samples_per_s"])
    report = format_report(rows)
    assert "whole run: paper preset, 2 passes of 120 patterns" in report and "full 20-pass paper run" in report


def test_bench_rejects_an_unknown_variant(capsys):
    assert main(["bench", "--variants", "pooling=median"]) == 2
    assert "unknown bench variant 'pooling=median'" in capsys.readouterr().err
