import json

import pytest
import torch

from repro.cli import main
from repro.components import REGISTRIES, Conv2d, TableConv2d, c3_connection_mask
from repro.config import model_config
from repro.counts import PAPER_COUNTS, layer_counts, totals
from repro.model import LeNet5


def counts_for(**overrides):
    return layer_counts(LeNet5(model_config("paper", overrides)))


def test_paper_counts_per_layer():
    counts = counts_for()
    for c in counts:
        assert (c.params, c.connections) == PAPER_COUNTS[c.layer], c.layer
    assert [c.layer for c in counts] == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    assert counts[-1].fixed_params == 840
    assert totals(counts) == (60_000, 340_908)


# the paper preset's parameter count with one switch changed, for every value of every registry but the paper's
SINGLE_SWAP_PARAMS = {
    ("c3", "full"): 60_900,          # 16 x (6*25 + 1) = 2,416 instead of 1,516
    ("pooling", "max"): 59_956,      # S2 and S4 lose their 12 + 32 parameters
    ("pooling", "avg"): 59_956,
    ("head", "linear"): 60_850,      # 84*10 + 10 trained instead of 840 fixed
    ("norm", "batch"): 60_022,       # BatchNorm's scale and shift on 6 + 16 maps replace C1's and C3's biases
    ("activation", "relu"): 60_000,
    ("activation", "tanh"): 60_000,
    ("input", "28"): 60_000,
    ("init", "default"): 60_000,
}


def test_every_switch_value_has_its_expected_count():
    paper = model_config("paper")
    swaps = {(key, value) for key, registry in REGISTRIES.items() for value in registry
             if value != getattr(paper, key)}
    assert swaps == set(SINGLE_SWAP_PARAMS), "give each new switch value its expected parameter count"


@pytest.mark.parametrize("key, value", SINGLE_SWAP_PARAMS)
def test_single_swap_counts(key, value):
    assert totals(counts_for(**{key: value}))[0] == SINGLE_SWAP_PARAMS[key, value]


def test_single_swap_connections():
    assert totals(counts_for(c3="full"))[1] == 340_908 + 100 * (2_416 - 1_516)
    assert totals(counts_for(pooling="max"))[1] == 340_908 - 5_880 - 2_000 + 6 * 196 * 4 + 16 * 25 * 4
    assert totals(counts_for(head="linear"))[1] == 340_908 + 10
    # average pooling: 4 connections per unit like max-pooling, no bias
    assert totals(counts_for(pooling="avg"))[1] == 340_908 - 5_880 - 2_000 + 6 * 196 * 4 + 16 * 25 * 4
    # BatchNorm after C1 and C3: a scale and a shift per unit (2 connections) in place of the convolution's bias (1)
    assert totals(counts_for(norm="batch"))[1] == 340_908 + 6 * 28 * 28 + 16 * 10 * 10


def test_convolution_connections_beyond_square_kernels_and_maps():
    """Sec. II-B's count, output units x (inputs + bias), by hand for the shapes LeNet-5 does not use: a 3x5
    kernel with padding (2, 1) on 2 maps of 6x7 gives 8x5 outputs of 2*15 + 1 connections on each of 3 maps; a
    Table I convolution (its first 5 maps: 3 inputs each) with a 3x2 kernel on 5x4 maps gives 3x3 outputs of
    3*6 + 1 on each of 5 maps. Per-map fan-ins are what LeCun's init divides by (App. A)."""
    conv = Conv2d(2, 3, (3, 5), padding=(2, 1))
    assert conv.fan_in_per_map().tolist() == [30.0] * 3
    assert conv.connections(conv(torch.zeros(1, 2, 6, 7))) == 8 * 5 * 3 * (2 * 15 + 1)
    table = TableConv2d(c3_connection_mask()[:5], (3, 2))
    assert table.fan_in_per_map().tolist() == [18.0] * 5
    assert table.connections(table(torch.zeros(1, 6, 5, 4))) == 3 * 3 * 5 * (3 * 6 + 1)


def test_modern_preset_counts():
    counts = {c.layer: c for c in layer_counts(LeNet5(model_config("modern")))}
    assert counts["C1"].params == 156 - 6 + 12  # BatchNorm's shift replaces the convolution's bias
    assert counts["C3"].params == 2_416 - 16 + 32
    assert counts["S2"].params == counts["S4"].params == 0
    assert counts["output"].params == 850
    assert totals(list(counts.values()))[0] == 61_728


def test_counts_cli_table_and_json(capsys):
    assert main(["counts", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    for text in ["156", "122,304", "1,516", "151,600", "48,120", "10,164", "840 fixed", "60,000", "340,908"]:
        assert text in out
    assert main(["counts", "--preset", "paper", "--set", "c3=full", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 60_900 and data["config"]["c3"] == "full"


def test_counts_cli_rejects_bad_override(capsys):
    assert main(["counts", "--set", "pooling=median"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "lenet5: error: invalid value 'median' for 'pooling'; valid choices: trainable, max, avg"
