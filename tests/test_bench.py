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
                     variants=["paper", "pooling=max", "optimizer=adam"])
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
    monkeypatch.setattr(bench, "run_bench", lambda root, quick, variants: real(root, quick, 2, 0.05, variants))
    assert main(["bench", "--quick", "--json", "--data-root", str(tiny_mnist_large), "--threads", "1",
                 "--variants", "paper"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 6 and {"variant", "engine", "batch_size", "samples_per_s"} <= set(lines[-1])


def test_bench_rejects_an_unknown_variant(capsys):
    assert main(["bench", "--variants", "pooling=median"]) == 2
    assert "unknown bench variant 'pooling=median'" in capsys.readouterr().err
