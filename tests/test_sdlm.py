"""SDLM's Hessian estimate (App. C) against brute force, and its update."""
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from repro.components import (RBF_CURVATURE, BatchNorm2d, Conv2d, FullFieldConv2d, Linear, MaxPool, ScaledTanh,
                              TableConv2d, TrainableSubsampling, c3_connection_mask)
from repro.config import ModelConfig, run_config
from repro.model import LeNet5
from repro.optim import make_optimizer
from repro.sdlm import SDLM, gauss_newton_diagonal


def brute_force_gauss_newton(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """diag(J^T (2 I) J) per sample from per-sample Jacobians, averaged: the exact Gauss-Newton diagonal of
    E = sum of squared output errors (curvature 2 per output, as for the RBF head's MLE)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, xi):
        return functional_call(model, p, (xi[None],)).flatten()

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    return {k: (RBF_CURVATURE * jac[k].pow(2)).sum(dim=1).mean(dim=0) for k in jac}


SINGLE_LAYERS = {
    "conv": (lambda: nn.Sequential(Conv2d(2, 3, 3)), (6, 2, 7, 7)),
    "conv_padded": (lambda: nn.Sequential(Conv2d(1, 2, 5, padding=2)), (4, 1, 8, 8)),
    "table_conv": (lambda: nn.Sequential(TableConv2d(c3_connection_mask()[:5], 3)), (6, 6, 5, 5)),
    "linear": (lambda: nn.Sequential(Linear(9, 4)), (6, 9)),
    "full_field_conv": (lambda: nn.Sequential(FullFieldConv2d(3, 4, 5)), (6, 3, 5, 5)),
    # max-pooling passes each output's curvature to the one input it took, which feeds no other output
    "conv_max_pool": (lambda: nn.Sequential(Conv2d(2, 3, 3), MaxPool()), (6, 2, 8, 8)),
    # BatchNorm as it evaluates (running statistics): a per-map affine map after the convolution
    "conv_batch_norm": (lambda: nn.Sequential(Conv2d(2, 3, 3), _with_statistics(BatchNorm2d(3))), (6, 2, 7, 7)),
    # a squashing function as the last layer: App. C starts from the loss's curvature at its output y, and
    # f'(a) is computed from y (Component.loss_curvature must hand it y); w_ij still reaches one output only
    "linear_tanh": (lambda: nn.Sequential(Linear(5, 3), ScaledTanh()), (6, 5)),
}


def _with_statistics(norm: BatchNorm2d) -> BatchNorm2d:
    with torch.no_grad():
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm


@pytest.mark.parametrize("name", SINGLE_LAYERS)
def test_single_layer_estimate_is_exact_gauss_newton(name):
    make, shape = SINGLE_LAYERS[name]
    model = make().eval()
    x = torch.randn(*shape)
    estimate = gauss_newton_diagonal(model, x, torch.zeros(shape[0], dtype=torch.long), "mle")
    exact = brute_force_gauss_newton(model, x)
    for pname, p in model.named_parameters():
        torch.testing.assert_close(estimate[p], exact[pname], rtol=1e-5, atol=1e-5)


def test_cross_entropy_curvature_of_a_linear_output_is_exact():
    """With softmax cross-entropy the Gauss-Newton matrix at the logits is diag(p) - p p^T; App. C keeps its
    diagonal p_i (1 - p_i). A weight w_ij of a linear output layer reaches logit i only, so for it (and for the
    biases) the diagonal rule is exact: x_j^2 p_i (1 - p_i)."""
    layer = Linear(9, 4)
    x, y = torch.randn(6, 9), torch.randint(0, 4, (6,))
    estimate = gauss_newton_diagonal(nn.Sequential(layer), x, y, "cross_entropy")
    with torch.no_grad():
        p = torch.softmax(layer(x), dim=1)
        h = p * (1 - p)
    torch.testing.assert_close(estimate[layer.weight], (h[:, :, None] * x[:, None, :] ** 2).mean(0))
    torch.testing.assert_close(estimate[layer.bias], h.mean(0))


def test_two_layers_one_output_is_exact():
    # with a single output unit the diagonal approximation drops no cross term, so it is exact
    model = nn.Sequential(Linear(5, 4), ScaledTanh(), Linear(4, 1))
    x = torch.randn(7, 5)
    estimate = gauss_newton_diagonal(model, x, torch.zeros(7, dtype=torch.long), "mle")
    exact = brute_force_gauss_newton(model, x)
    for pname, p in model.named_parameters():
        torch.testing.assert_close(estimate[p], exact[pname], rtol=1e-5, atol=1e-6)


def test_deeper_network_follows_documented_approximation():
    """App. C's rules written out by hand, per sample, for Linear -> tanh -> Linear -> tanh -> Linear."""
    layers = [Linear(5, 4), Linear(4, 3), Linear(3, 2)]
    model = nn.Sequential(layers[0], ScaledTanh(), layers[1], ScaledTanh(), layers[2])
    x = torch.randn(6, 5)
    estimate = gauss_newton_diagonal(model, x, torch.zeros(6, dtype=torch.long), "mle")
    expected = {p: torch.zeros_like(p) for p in model.parameters()}
    with torch.no_grad():
        for xi in x:
            inputs, pre = [xi], []
            for i, layer in enumerate(layers):  # forward, keeping each layer's input and pre-activation
                pre.append(layer(inputs[-1]))
                if i < len(layers) - 1:
                    inputs.append(1.7159 * torch.tanh(2 / 3 * pre[-1]))
            h_a = torch.full((2,), 2.0)  # d2E/da^2 = 2 at the outputs (squared error)
            for i in reversed(range(len(layers))):
                expected[layers[i].weight] += torch.outer(h_a, inputs[i] ** 2)  # sum x^2 h_a
                expected[layers[i].bias] += h_a
                if i:
                    h_x = (layers[i].weight ** 2).t() @ h_a  # sum_i w_ij^2 h_ai
                    fprime = 1.7159 * 2 / 3 * (1 - torch.tanh(2 / 3 * pre[i - 1]) ** 2)
                    h_a = fprime ** 2 * h_x  # f'(a)^2, the f'' term dropped
    for p in model.parameters():
        torch.testing.assert_close(estimate[p], expected[p] / 6, rtol=1e-5, atol=1e-6)
    # the first layer's curvature passes through units that fan out: there the diagonal rule drops cross
    # terms and differs from the exact Gauss-Newton diagonal; the last two layers are still exact
    exact = brute_force_gauss_newton(model, x)
    assert not torch.allclose(estimate[layers[0].weight], exact["0.weight"], rtol=1e-3)
    torch.testing.assert_close(estimate[layers[1].weight], exact["2.weight"], rtol=1e-5, atol=1e-6)


def test_subsampling_rule_sums_squared_inputs_over_its_four_connections():
    layer = TrainableSubsampling(2)
    with torch.no_grad():
        layer.coefficient.copy_(torch.tensor([0.5, -2.0]))
    model = nn.Sequential(layer)
    x = torch.randn(3, 2, 4, 4)
    estimate = gauss_newton_diagonal(model, x, torch.zeros(3, dtype=torch.long), "mle")
    blocks = x.unfold(2, 2, 2).unfold(3, 2, 2)  # (3, 2, 2, 2, 2, 2)
    expected = 2.0 * blocks.pow(2).sum(dim=(-1, -2)).sum(dim=(0, 2, 3)) / 3
    torch.testing.assert_close(estimate[layer.coefficient], expected)
    torch.testing.assert_close(estimate[layer.bias], torch.full((2,), 2.0 * 4))


# Each switch value alone is covered, under every loss, by test_components.test_the_curvature_is_sound_under_every_loss;
# these are the mixes where two components' curvature rules meet (ReLU's zero slope into BatchNorm, tanh into
# average pooling), and the paper preset itself.
@pytest.mark.parametrize("overrides", [{}, {"activation": "relu", "norm": "batch"},
                                       {"pooling": "avg", "activation": "tanh"}])
def test_hessian_of_mixed_switches_is_never_negative_and_covers_every_parameter(overrides):
    config = run_config("paper", overrides)
    model = LeNet5(config.model)
    x = torch.randn(20, 1, 32, 32) * 0.6
    y = torch.randint(0, 10, (20,))
    hessian = gauss_newton_diagonal(model, x, y, config.loss)
    assert set(hessian) == {p for p in model.parameters()}
    assert all((h >= 0).all() and torch.isfinite(h).all() for h in hessian.values())
    assert all(h.abs().sum() > 0 for h in hessian.values())


def test_masked_c3_weights_get_no_step():
    config = run_config("paper")
    model = LeNet5(config.model)
    opt = make_optimizer(config.train, model)
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    opt.prepare(model, x, y, config.loss)
    conv = model.c3[0]
    outside = ~conv.weight_mask.bool().expand_as(conv.weight)
    assert (opt.state[conv.weight]["hessian"][outside] == 0).all()
    for i in range(4):
        opt.zero_grad()
        model(x[i:i + 1]).gather(1, y[i:i + 1, None]).sum().backward()
        opt.step()
    assert (conv.weight[outside] == 0).all()


def test_step_is_eta_over_mu_plus_h_times_gradient():
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = SDLM([w], lr=0.1, mu=0.5, batch_size=3)
    opt.state[w]["hessian"], opt.state[w]["step_lr"] = torch.tensor([0.5, 1.5]), None
    w.grad = torch.tensor([1.0, 1.0])
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([1.0 - 3 * 0.1 / 1.0, 2.0 - 3 * 0.1 / 2.0]))


def test_step_before_prepare_is_an_error():
    model = LeNet5(ModelConfig())
    opt = SDLM(model.parameters())
    model(torch.randn(1, 1, 32, 32)).sum().backward()
    with pytest.raises(RuntimeError, match=r"^SDLM\.step\(\) before prepare\(\): estimate the Hessian first$"):
        opt.step()


def test_prepare_reports_steps_per_layer():
    config = run_config("paper")
    model = LeNet5(config.model)
    opt = make_optimizer(config.train, model)
    summary = opt.prepare(model, torch.randn(10, 1, 32, 32), torch.randint(0, 10, (10,)), "map")
    assert list(summary) == ["C1", "S2", "C3", "S4", "C5", "F6"]
    ceiling = config.train.lr / config.train.mu
    assert all(0 < lo <= med <= hi <= ceiling for lo, med, hi in summary.values())


def test_full_field_rule_equals_the_convolution_rule():
    """C5's matrix-product curvature against the generic convolution rule, through a layer below it."""
    torch.manual_seed(0)
    full = nn.Sequential(Conv2d(2, 3, 3), ScaledTanh(), FullFieldConv2d(3, 4, 5))
    plain = nn.Sequential(Conv2d(2, 3, 3), ScaledTanh(), Conv2d(3, 4, 5))
    plain.load_state_dict(full.state_dict())
    x, y = torch.randn(6, 2, 7, 7), torch.zeros(6, dtype=torch.long)
    a, b = gauss_newton_diagonal(full, x, y, "mle"), gauss_newton_diagonal(plain, x, y, "mle")
    for p, q in zip(full.parameters(), plain.parameters()):
        torch.testing.assert_close(a[p], b[q], rtol=1e-5, atol=1e-7)


# --- found unchecked by mutation testing (experiments/mutation.py) ---

def test_sdlm_defaults_are_the_papers():
    opt = SDLM([nn.Parameter(torch.ones(2))])
    assert opt.defaults == {"lr": 0.0005, "mu": 0.02, "batch_size": 1}


@pytest.mark.parametrize("training", [True, False])
def test_the_estimate_leaves_the_model_in_its_mode(training):
    model = nn.Sequential(Linear(3, 2), ScaledTanh(), Linear(2, 2)).train(training)
    x, y = torch.randn(4, 3), torch.zeros(4, dtype=torch.long)
    gauss_newton_diagonal(model, x, y, "mle")
    assert model.training is training and all(m.training is training for m in model.modules())
    from repro.sdlm import CurvatureEstimator
    CurvatureEstimator(model, "mle")(x, y)
    assert model.training is training and all(m.training is training for m in model.modules())


def test_a_layer_without_a_curvature_rule_is_named():
    with pytest.raises(TypeError, match="SDLM has no curvature rule for Tanh: build the model from repro.components"):
        gauss_newton_diagonal(nn.Sequential(Linear(3, 2), nn.Tanh(), Linear(2, 2)), torch.randn(4, 3),
                              torch.zeros(4, dtype=torch.long), "mle")


def test_effective_steps_and_step_sizes_follow_eta_and_h():
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = SDLM([w], lr=0.1, mu=0.5, batch_size=4)
    opt.state[w]["hessian"], opt.state[w]["step_lr"] = torch.tensor([0.5, 1.5]), None
    torch.testing.assert_close(opt.effective_steps()[w], torch.tensor([0.1 / 1.0, 0.1 / 2.0]))
    group = opt.param_groups[0]
    torch.testing.assert_close(opt.step_size(w, group), torch.tensor([0.4, 0.2]))
    assert opt.step_size(w, group) is opt.step_size(w, group)  # cached while eta and h stay
    group["lr"] = 0.05  # a new pass's eta: the cached steps follow it
    torch.testing.assert_close(opt.step_size(w, group), torch.tensor([0.2, 0.1]))
    torch.testing.assert_close(opt.effective_steps()[w], torch.tensor([0.05, 0.025]))


def test_prepare_replaces_h_and_the_cached_steps():
    model = LeNet5(ModelConfig())
    opt = SDLM(model.parameters(), lr=0.1, mu=0.5)
    y = torch.randint(0, 10, (4,))
    weight = model.c5[0].weight
    for scale in (1.0, 3.0):
        x = torch.randn(4, 1, 32, 32) * scale
        opt.prepare(model, x, y, "mle")
        h = gauss_newton_diagonal(model, x, y, "mle")[weight]
        torch.testing.assert_close(opt.step_size(weight, opt.param_groups[0]), 0.1 / (0.5 + h))


def test_compile_s_adds_the_estimators_before_to_the_current_one():
    from types import SimpleNamespace
    opt = SDLM([nn.Parameter(torch.ones(2))])
    assert opt.compile_s == 0.0
    opt._compiled_before, opt._estimator = 1.5, SimpleNamespace(compile_s=2.0)
    assert opt.compile_s == 3.5


def test_a_new_estimator_keeps_the_compile_time_of_the_one_before(monkeypatch):
    model = LeNet5(ModelConfig())
    opt = SDLM(model.parameters())
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 10, (4,))
    opt.prepare(model, x, y, "mle")
    monkeypatch.setattr(type(opt._estimator), "compile_s", property(lambda self: 2.0))
    opt.prepare(model, x, y, "map")  # another loss: another estimator
    assert opt.compile_s == 4.0


def test_the_step_summary_is_min_median_max_over_the_connections_that_exist():
    config = run_config("paper")
    torch.manual_seed(0)
    model = LeNet5(config.model)
    opt = make_optimizer(config.train, model)
    summary = opt.prepare(model, torch.randn(6, 1, 32, 32), torch.randint(0, 10, (6,)), config.loss)
    steps = opt.effective_steps()
    conv = model.c3[0]
    kept = steps[conv.weight][conv.weight_mask.expand_as(conv.weight).bool()]
    c3 = torch.cat([kept, *(steps[p].flatten() for n, p in model.c3.named_parameters() if n != "0.weight")])
    assert summary["C3"] == [c3.min().item(), c3.median().item(), c3.max().item()]
    c1 = torch.cat([steps[p].flatten() for p in model.c1.parameters()])
    assert summary["C1"] == [c1.min().item(), c1.median().item(), c1.max().item()]


def test_prepare_hands_its_patterns_and_compile_switch_to_one_kept_estimator(monkeypatch):
    import repro.sdlm
    made = []

    class Recording:
        def __init__(self, model, loss, compiled=False):
            self.model, self.loss, self.compiled, self.compile_s, self.calls = model, loss, compiled, 0.0, []
            made.append(self)

        def __call__(self, x, targets):
            self.calls.append((x, targets))
            return {p: torch.zeros_like(p) for p in model.parameters()}

    monkeypatch.setattr(repro.sdlm, "CurvatureEstimator", Recording)
    model = LeNet5(ModelConfig())
    opt = SDLM(model.parameters())
    x, y = torch.randn(2, 1, 32, 32), torch.tensor([3, 4])
    opt.prepare(model, x, y, "map", compiled=True)
    opt.prepare(model, x, y, "map", compiled=True)
    assert len(made) == 1 and (made[0].loss, made[0].compiled) == ("map", True)
    assert all(cx is x and cy is y for cx, cy in made[0].calls) and len(made[0].calls) == 2


def test_a_compiled_estimator_compiles_its_walk_for_fixed_shapes_and_times_the_first_call(monkeypatch):
    """What `compiled=True` hands torch.compile, checked without compiling (tests/test_curvature.py compiles it,
    in the slow suite): the walk, with dynamic=False; and the first call is timed as compilation."""
    from repro.sdlm import CurvatureEstimator
    compiled = []

    def fake_compile(fn, **options):
        compiled.append((fn, options))
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = nn.Sequential(Linear(3, 2), ScaledTanh(), Linear(2, 2))
    estimator = CurvatureEstimator(model, "mle", compiled=True)
    assert compiled == [(estimator.walk, {"dynamic": False})]
    x, y = torch.randn(4, 3), torch.zeros(4, dtype=torch.long)
    h = estimator(x, y)
    assert estimator.compile_s > 0
    for p, expected in gauss_newton_diagonal(model, x, y, "mle").items():
        torch.testing.assert_close(h[p], expected)
    assert CurvatureEstimator(model, "mle").compile_s == 0 and len(compiled) == 1


def test_the_estimator_passes_curvature_through_every_layer_above_the_first():
    """A convolution skips its input's curvature only where nothing below needs it (the first layer); with two
    of them below the head, the second must still pass it on."""
    from repro.sdlm import CurvatureEstimator
    model = nn.Sequential(Conv2d(1, 2, 3), Conv2d(2, 3, 3), Conv2d(3, 2, 3))
    x, y = torch.randn(4, 1, 9, 9), torch.zeros(4, dtype=torch.long)
    h = CurvatureEstimator(model, "mle")(x, y)
    for p, expected in gauss_newton_diagonal(model, x, y, "mle").items():
        torch.testing.assert_close(h[p], expected)
