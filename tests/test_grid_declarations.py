"""The ablation grids as declared (repro/study/grids.py): one component per swap, the protocols and step sizes,
the ladder, the Fashion-MNIST twins, and what `lenet5 grid --dry-run` lists."""
import json
import re

import pytest

from repro.cli import main
from repro.config import ConfigError, config_differences, run_config
from repro.study.grids import (COMPONENTS, FASHION_SUFFIX, GRIDS, LADDER, PROTOCOLS, SDLM_ETA_BY_LOSS, STEP_SIZES,
                               own_lr_name)


# the grids of swaps from one preset (not the ladders, whose rungs accumulate): declared from their variants
SWAP_GRIDS = sorted(name for name, grid in GRIDS.items() if not any(v.name.startswith("+") for v in grid.variants))


def allowed_differences(v, protocol) -> set:
    """The fields a swap may change: its component, plus the optimizer's own settings, under SDLM the loss's eta
    for the head, and for BatchNorm what the protocol makes it carry (repro/study/grids.py)."""
    allowed = {v.component}
    if v.component == "norm":
        allowed |= set(protocol.batchnorm_fields)
    if v.component == "optimizer":
        allowed |= set(protocol.optimizer_settings[v.value]) | {"lr"}
    if v.component == "head" and v.config.train.optimizer == "sdlm":
        allowed |= {"lr"}
    return allowed


@pytest.mark.parametrize("name", SWAP_GRIDS)
def test_each_variant_differs_from_the_reference_in_exactly_one_component(name):
    grid = GRIDS[name]
    reference = grid.reference.config.flat()
    assert grid.reference.component is None and grid.reference.baseline is None
    pure = [v for v in grid.variants[1:] if not v.own_lr]
    assert [v.component for v in pure] == list(COMPONENTS)
    for v in pure:
        diff = {k for k, value in v.config.flat().items() if reference[k] != value}
        assert v.component in diff and diff <= allowed_differences(v, PROTOCOLS[grid.protocol]), (v.name, diff)
        assert v.config.flat()[v.component] == v.value, (v.name, v.config.flat()[v.component])
        assert v.baseline == grid.reference.name


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_a_variant_at_its_own_step_size_differs_from_its_pure_swap_in_lr_only(name):
    grid, chosen = GRIDS[name], STEP_SIZES.get(name, {})
    pure = [v for v in grid.variants if not v.own_lr]
    assert set(chosen) <= {v.name for v in pure}, "STEP_SIZES names a variant the grid does not have"
    # an `@lr=` variant for each pure one whose chosen step size is not its protocol's, and no other: none at all
    # in a grid without chosen step sizes (one_at_a_time_minibatch)
    expected = {own_lr_name(v.name, chosen[v.name]) for v in pure
                if v.name in chosen and chosen[v.name] != v.config.train.lr}
    assert {v.name for v in grid.variants if v.own_lr} == expected and bool(expected) == (name in STEP_SIZES)
    for v in grid.variants:
        if v.own_lr:
            swap = grid.variant(v.name.split("@lr=")[0])
            assert config_differences(swap.config, v.config).keys() == {"lr"}
            assert v.config.train.lr == chosen[swap.name]


@pytest.mark.parametrize("name", SWAP_GRIDS)
def test_grids_start_from_their_presets_under_their_protocols(name):
    grid = GRIDS[name]
    era = {"paper": 1, "modern": 0}[grid.preset]  # the paper preset swaps to modern values, and the reverse
    protocol = PROTOCOLS[grid.protocol]
    assert grid.reference.config.model == run_config(grid.preset).model
    assert [v.value for v in grid.variants[1:] if not v.own_lr] == [vals[era] for vals in COMPONENTS.values()]
    for v in grid.variants:
        assert all(v.config.flat()[k] == value for k, value in protocol.fields.items())
        assert v.config.loss == ("map" if v.config.model.head == "rbf" else "cross_entropy")


def test_the_references_and_step_sizes_follow_their_protocols():
    # the paper protocol's reference is the paper preset itself, so that the reproduction runs are its runs
    assert GRIDS["one_at_a_time"].reference.config == run_config("paper")
    # under the mini-batch protocol SDLM's eta follows the loss; under the paper's a pure swap keeps it
    mini, paper = GRIDS["one_at_a_time_minibatch"], GRIDS["one_at_a_time"]
    for v in (mini.reference, mini.variant("head=linear"), GRIDS["leave_one_in"].variant("optimizer=sdlm")):
        assert v.config.train.lr == SDLM_ETA_BY_LOSS[v.config.loss]
    assert SDLM_ETA_BY_LOSS["map"] != SDLM_ETA_BY_LOSS["cross_entropy"]
    assert paper.variant("head=linear").config.train.lr == paper.reference.config.train.lr
    # within a grid the digests name the runs: all distinct
    for grid in GRIDS.values():
        digests = [v.config.digest() for v in grid.variants]
        assert len(set(digests)) == len(digests), grid.name


@pytest.mark.parametrize("name", sorted(n for n in GRIDS if n.endswith(FASHION_SUFFIX)))
def test_each_fashion_mnist_grid_is_its_mnist_twin_on_the_other_dataset(name):
    twin = GRIDS[name.removesuffix(FASHION_SUFFIX)]
    pure = [v for v in GRIDS[name].variants if not v.own_lr]
    assert [v.name for v in pure] == [v.name for v in twin.variants if not v.own_lr]
    for v, w in zip(pure, twin.variants):
        assert config_differences(w.config, v.config) == {"dataset": ("mnist", "fashion_mnist")}
        assert v.baseline == w.baseline


def test_the_ladder_climbs_one_rung_at_a_time_from_the_paper_preset_to_the_modern_one():
    ladder = GRIDS["ladder"]
    rungs = [v for v in ladder.variants if not v.own_lr]
    assert rungs[0].config == run_config("paper") and [(v.component, v.value) for v in rungs[1:]] == list(LADDER)
    # every component the presets differ in is a rung, and the last rung is the modern preset at its protocol
    assert {c for c, _ in LADDER} == set(COMPONENTS) | {"protocol"}
    assert rungs[-1].config == GRIDS["leave_one_in"].reference.config
    for before, after in zip(rungs, rungs[1:]):
        assert after.baseline == before.name
        diff = set(config_differences(before.config, after.config))
        if after.component == "protocol":
            assert diff <= set(PROTOCOLS["minibatch"].fields) | {"lr"} and "batch_size" in diff
        else:
            assert after.component in diff and diff <= allowed_differences(after, PROTOCOLS["minibatch"]), diff


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_a_chosen_variant_runs_with_the_baseline_it_is_compared_with(name):
    grid = GRIDS[name]
    for v in grid.variants:
        assert grid.with_baselines([v.name]) == {v.name} | ({v.baseline} if v.baseline else set())
    with pytest.raises(ConfigError, match=f"grid {name} has no variant 'nosuch'; its variants: "):
        grid.with_baselines([grid.reference.name, "nosuch"])


def test_dry_run_lists_every_variant(tmp_path, capsys):
    from repro.provenance import this_making

    # a results tree of its own, holding one finished run of the paper preset, seed 0, as results/paper_final does
    results, paper = tmp_path / "results", run_config("paper")
    finished = results / "paper_final" / "seed0"
    finished.mkdir(parents=True)
    # made by this code on this kind of machine: a grid copies only such runs (repro/study/grid.py, finished_runs)
    here = this_making()
    (finished / "summary.json").write_text(json.dumps({"status": "finished", "config": paper.to_dict(),
                                                       "commit": here["commit"], "machine": {
                                                           "cpu": here["cpu"],
                                                           "cpu_capability": here["cpu_capability"]}}))
    (finished / "model.pt").write_bytes(b"")
    out_dir = results / "grids" / "one_at_a_time"
    assert main(["grid", "one_at_a_time", "--dry-run", "--seeds", "0", "1", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    n = len(GRIDS["one_at_a_time"].variants)
    assert "optimizer=adam" in out
    assert f"{2 * n} runs: {n} variants x seeds [0, 1]; 1 to copy from other folders, {2 * n - 1} to run or " \
           f"resume in {out_dir}" in out
    # the reference is the paper preset: its seed 0 is that run, to be copied; its seed 1 is nowhere yet
    assert re.search(rf"^  paper +seed 0: to copy from {re.escape(str(finished))}$", out, re.M), out
    assert re.search(r"^  paper +seed 1: to do$", out, re.M), out


def test_dry_run_of_chosen_variants_lists_only_them_and_their_baselines(tmp_path, capsys):
    assert main(["grid", "ladder", "--dry-run", "--variants", "+norm=batch", "--seeds", "5", "6",
                 "--out", str(tmp_path / "ladder")]) == 0
    out = capsys.readouterr().out
    assert "4 runs: 2 variants x seeds [5, 6]" in out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert listed == {"+norm=batch", "+optimizer=adam"}

