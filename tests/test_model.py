import itertools

import pytest
import torch

from repro import components
from repro.config import CHOICES, MODEL_KEYS, ConfigError, ModelConfig, model_config, parse_overrides
from repro.model import LeNet5

ALL_CONFIGS = [ModelConfig(**dict(zip(MODEL_KEYS, values)))
               for values in itertools.product(*(CHOICES[k] for k in MODEL_KEYS))]


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda c: "-".join(vars(c).values()))
def test_every_combination_builds_and_trains(config):
    model = LeNet5(config)
    x = torch.randn(3, 1, model.input_size, model.input_size)
    out = model(x)
    assert out.shape == (3, 10)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.predict(out).shape == (3,)


def test_presets():
    assert model_config("paper") == ModelConfig()
    modern = model_config("modern")
    assert (modern.activation, modern.pooling, modern.c3, modern.head, modern.norm, modern.input, modern.init) == \
        ("relu", "max", "full", "linear", "batch", "28", "default")


def test_wrong_input_shape_is_named():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, 32, 32\)"):
        LeNet5()(torch.zeros(1, 1, 28, 28))


@pytest.mark.parametrize("overrides, message", [
    ({"c3": "ful"}, "invalid value 'ful' for 'c3'; valid choices: table, full"),
    ({"activaton": "relu"}, "unknown config key 'activaton'; valid keys: activation"),
    ({"head": "softmax"}, "invalid value 'softmax' for 'head'; valid choices: rbf, linear"),
])
def test_config_errors_name_key_value_and_choices(overrides, message):
    with pytest.raises(ConfigError) as err:
        model_config("paper", overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset_and_bad_override_syntax():
    with pytest.raises(ConfigError, match="unknown preset .papr.; valid presets: paper, paper_distortions, modern"):
        model_config("papr")
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse_overrides(["c3"])


def test_scaled_tanh_fixed_points_and_slope():
    f = components.ScaledTanh()
    assert f(torch.tensor([1.0, -1.0])).tolist() == pytest.approx([1.0, -1.0], abs=1e-4)
    a = torch.zeros(1, requires_grad=True)
    f(a).backward()
    assert a.grad.item() == pytest.approx(1.7159 * 2 / 3, rel=1e-6)


def test_the_compiled_tanh_formula_is_torch_tanh(monkeypatch):
    """activation.tanh's docstring: inside torch.compile it is (1 - e) / (1 + e), e = exp(-2|a|), sign restored,
    the same function as torch.tanh to within 3e-7. Checked here without compiling, by making the function
    believe it is being compiled, over the operating range, both tails and 0."""
    from repro.components.activation import tanh
    a = torch.cat([torch.linspace(-20.0, 20.0, 4001), torch.tensor([0.0, 1e-8, -1e-8, 60.0, -60.0])])
    expected = torch.tanh(a)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    got = tanh(a)
    torch.testing.assert_close(got, expected, rtol=0, atol=3e-7)


def test_init_default_starts_the_trainable_subsampling_as_average_pooling():
    """init=default's [assumption] (init_default_subsampling_): S2 and S4 start as 2x2 average pooling,
    coefficient 1/4 and bias 0, their nearest modern counterpart."""
    model = LeNet5(model_config("paper", {"init": "default"}))
    for layer, maps in ((model.s2[0], 6), (model.s4[0], 16)):
        x = torch.randn(2, maps, 4, 4)
        torch.testing.assert_close(layer(x), torch.nn.functional.avg_pool2d(x, 2))


def test_a_module_without_a_fan_in_rule_is_named():
    with pytest.raises(TypeError, match="^no fan-in rule for MaxPool$"):
        components.unit_fan_in(components.MaxPool())


def test_trainable_subsampling_is_coefficient_times_sum_plus_bias():
    layer = components.TrainableSubsampling(2)
    with torch.no_grad():
        layer.coefficient.copy_(torch.tensor([2.0, -1.0]))
        layer.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0).reshape(1, 2, 4, 4)
    out = layer(x)
    assert out.shape == (1, 2, 2, 2)
    assert out[0, 0, 0, 0].item() == pytest.approx(2.0 * (0 + 1 + 4 + 5) + 0.5)
    assert out[0, 1, 1, 1].item() == pytest.approx(-1.0 * (26 + 27 + 30 + 31))


def test_c3_table_matches_table_one():
    mask = components.c3_connection_mask()
    assert mask.shape == (16, 6)
    assert mask.sum(1).tolist() == [3] * 6 + [4] * 9 + [6]
    assert int(mask.sum()) == 60
    assert mask[9].nonzero().flatten().tolist() == [0, 3, 4, 5]
    assert mask[14].nonzero().flatten().tolist() == [0, 2, 3, 5]
    # a bool matrix (its docstring), so that a row selects its S2 maps: Table I read back
    assert tuple(tuple(torch.arange(6)[row].tolist()) for row in mask) == components.C3_TABLE


@pytest.mark.parametrize("make_optimizer", [
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
    lambda ps: torch.optim.Adam(ps, lr=1e-2),
])
def test_c3_weights_outside_table_stay_zero_and_contribute_nothing(make_optimizer):
    model = LeNet5()
    conv = model.c3[0]
    outside = ~conv.weight_mask.bool().expand_as(conv.weight)
    opt = make_optimizer(model.parameters())
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 1, 32, 32)).sum().backward()
        assert (conv.weight.grad[outside] == 0).all()
        opt.step()
    assert (conv.weight[outside] == 0).all()
    # even a nonzero value planted outside the table changes nothing
    x = torch.randn(2, 1, 32, 32)
    before = model(x)
    with torch.no_grad():
        conv.weight[outside] = 5.0
    assert torch.equal(model(x), before)


def test_lecun_init_bounds():
    model = LeNet5()
    assert model.c1[0].weight.abs().max() <= 2.4 / 25
    assert model.c5[0].weight.abs().max() <= 2.4 / 400
    assert model.f6[0].weight.abs().max() <= 2.4 / 120
    c3 = model.c3[0]
    bound = (2.4 / c3.fan_in_per_map()).view(-1, 1, 1, 1)
    assert (c3.weight.abs() <= bound).all()
    # the per-map bound is used, not a single global one: the 3-input maps reach beyond 2.4/100
    assert c3.weight[:6].abs().max() > 2.4 / 100
    assert model.s2[0].coefficient.abs().max() <= 2.4 / 4


def test_rbf_head_is_fixed_and_argmin():
    model = LeNet5()
    assert not any("prototypes" in name for name, _ in model.named_parameters())
    protos = model.output.prototypes
    out = model.output(protos[[3, 7]])
    assert out[0, 3] == 0 and out[1, 7] == 0
    assert model.predict(out).tolist() == [3, 7]


def test_same_seed_same_weights():
    torch.manual_seed(5)
    a = LeNet5().state_dict()
    torch.manual_seed(5)
    b = LeNet5().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_full_field_conv_equals_convolution():
    from repro.components import FullFieldConv2d
    conv = FullFieldConv2d(16, 120, 5)
    x = torch.randn(3, 16, 5, 5)
    torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias))
    big = torch.randn(2, 16, 7, 7)
    assert conv(big).shape == (2, 120, 3, 3)


@pytest.mark.parametrize("padding", [1, (1, 0), (0, 1)])
def test_a_padded_full_field_conv_is_the_padded_convolution(padding):
    """A padded kernel no longer covers its input in one weighted sum: the shortcut must not be taken, whichever
    side is padded (the class is an nn.Conv2d, whatever its arguments)."""
    from repro.components import FullFieldConv2d
    conv = FullFieldConv2d(2, 3, 3, padding=padding)
    x = torch.randn(2, 2, 3, 3)
    torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=padding))


def test_a_fresh_model_has_the_layout_of_the_shipped_weights():
    """Weights saved today load where the shipped ones (repro/weights/) did, and back: a freshly built network's
    state dict has the shipped paper network's entries with their shapes and dtypes (C3's Table I mask included)."""
    from repro.config import RunConfig
    from repro.model import build_model
    from repro.pretrained import weights_file
    saved = torch.load(weights_file("paper"), map_location="cpu", weights_only=True)
    fresh = build_model(RunConfig.from_dict(saved["config"])).state_dict()
    assert {k: (v.shape, v.dtype) for k, v in fresh.items()} == \
        {k: (v.shape, v.dtype) for k, v in saved["model"].items()}
