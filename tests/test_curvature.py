"""SDLM's curvature estimator (repro/sdlm.py, `CurvatureEstimator`) against the definition
(`gauss_newton_diagonal`, traced with hooks) and against brute-force per-sample Jacobians.

Generated from the registries: eagerly for every switch value under every loss its head allows; compiled for
the configs that take the k-th value of every registry (k = 0, 1, 2, ...), which together hold every switch value,
so a new value is compiled here without anyone listing it.
"""
import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from repro.components import REGISTRIES, MaxPool, TrainableSubsampling
from repro.config import HEAD_LOSSES, run_config
from repro.model import LeNet5
from repro.sdlm import SDLM, CurvatureEstimator, gauss_newton_diagonal

from test_components import COMPONENT_CASES, built_with, component_case, patterns, switch_values
from test_sdlm import SINGLE_LAYERS, brute_force_gauss_newton


def _assert_same_h(estimate: dict, definition: dict, model, rtol: float, atol: float) -> None:
    names = {p: n for n, p in model.named_parameters()}
    assert set(estimate) == set(definition)
    for p, h in definition.items():
        torch.testing.assert_close(estimate[p], h, rtol=rtol, atol=atol, msg=lambda m: f"{names[p]}: {m}")


@pytest.mark.parametrize("switch,value", switch_values())
def test_the_estimator_is_the_definition_for_every_switch_value(switch, value):
    model, config = built_with(switch, value)
    x, y = patterns(model, 12)
    for loss in HEAD_LOSSES[config.model.head]:
        estimate = CurvatureEstimator(model, loss)(x, y)
        _assert_same_h(estimate, gauss_newton_diagonal(model, x, y, loss), model, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", SINGLE_LAYERS)
def test_the_estimator_is_exact_gauss_newton_where_app_c_is_exact(name):
    make, shape = SINGLE_LAYERS[name]
    model = make().eval()
    x = torch.randn(*shape)
    estimate = CurvatureEstimator(model, "mle")(x, torch.zeros(shape[0], dtype=torch.long))
    exact = brute_force_gauss_newton(model, x)
    for pname, p in model.named_parameters():
        torch.testing.assert_close(estimate[p], exact[pname], rtol=1e-5, atol=1e-5)


# max-pooling floors an odd size as nn.MaxPool2d does: the last row and column feed no output and get no curvature,
# but h_x must still have the input's shape (LeNet-5's maps are even, and the online engine takes even maps only)
CURVATURE_CASES = COMPONENT_CASES | {"max_pool_odd_input": (MaxPool, (2, 5, 5))}


@pytest.mark.parametrize("name", CURVATURE_CASES)
def test_each_components_rule_is_the_gauss_newton_diagonal_of_its_own_map(name):
    """App. C's rules for one component against its Jacobians J (autograd, per pattern): for a diagonal
    d2E/dy2 = h_y, the Gauss-Newton diagonal is sum_i J_ij^2 h_yi, for each input x_j (returned, in x's shape) and
    each parameter w_j (added into `hessian`: a parameter that also gets curvature elsewhere sums both, App. C).
    This covers the RBF head's rule too, which no network reaches (the head is always the last layer).
    The one exception is App. C's own: the subsampling coefficient sums x^2 over its 4 connections rather than
    squaring their sum (as in tests/test_sdlm.py)."""
    module = component_case(name, CURVATURE_CASES).eval()  # BatchNorm: the affine map of its running statistics
    shape = CURVATURE_CASES[name][1]
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, *shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = module(x)
    h_y = torch.rand(y.shape, generator=gen, dtype=torch.float64) + 0.1
    params = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}
    before = {p: torch.rand(p.shape, generator=gen, dtype=torch.float64) for p in module.parameters()}
    hessian = {p: h.clone() for p, h in before.items()}
    with torch.no_grad():
        h_x = module.curvature(x, y, h_y, hessian, need_input=True)

    def f(p, xi):
        return functional_call(module, p, (xi[None],)).flatten()

    h = h_y.flatten(1)
    jac_x = vmap(jacrev(f, argnums=1), in_dims=(None, 0))(params, x).flatten(2)  # (N, out, in)
    torch.testing.assert_close(h_x, (jac_x.pow(2) * h[:, :, None]).sum(1).view_as(x))
    jac_w = vmap(jacrev(f), in_dims=(None, 0))(params, x) if params else {}
    assert set(jac_w) == set(params)
    for n, p in module.named_parameters():
        if isinstance(module, TrainableSubsampling) and n == "coefficient":
            blocks = x.unfold(2, 2, 2).unfold(3, 2, 2)  # (N, maps, H/2, W/2, 2, 2)
            expected = (blocks.pow(2).sum(dim=(-1, -2)) * h_y).sum(dim=(0, 2, 3))
        else:
            expected = (jac_w[n].flatten(2).pow(2) * h[:, :, None]).sum((0, 1)).view_as(p)
        torch.testing.assert_close(hessian[p], before[p] + expected, msg=lambda m: f"{n}: {m}")


def registry_sweeps() -> list:
    """Overrides of the paper preset taking the k-th value of every registry, for k up to the longest one."""
    longest = max(len(r) for r in REGISTRIES.values())
    return [pytest.param({switch: list(r)[k % len(r)] for switch, r in REGISTRIES.items()}, id=f"value{k}")
            for k in range(longest)]


def test_the_sweeps_hold_every_switch_value():
    held = {(switch, overrides[switch]) for p in registry_sweeps() for overrides in p.values
            for switch in overrides}
    assert held == {(switch, value) for switch, r in REGISTRIES.items() for value in r}


@pytest.mark.slow
@pytest.mark.parametrize("overrides", registry_sweeps())
def test_the_compiled_estimator_is_the_definition(overrides):
    config = run_config("paper", overrides)
    torch.manual_seed(0)
    model = LeNet5(config.model)
    x, y = patterns(model, 24)
    estimator = CurvatureEstimator(model, config.loss, compiled=True)
    first = estimator(x, y)
    # float rounding only (compiled code fuses and reorders sums, and its tanh is another formula)
    _assert_same_h(first, gauss_newton_diagonal(model, x, y, config.loss), model, rtol=2e-4, atol=1e-8)
    assert estimator.compile_s > 0
    with torch.no_grad():  # the same compiled function follows the weights as they change
        for p in model.parameters():
            p.mul_(1.1)
    _assert_same_h(estimator(x, y), gauss_newton_diagonal(model, x, y, config.loss), model, rtol=2e-4, atol=1e-8)


def test_sdlm_keeps_its_estimator_and_builds_a_new_one_when_asked_for_another():
    config = run_config("paper")
    model = LeNet5(config.model)
    opt = SDLM(model.parameters(), lr=config.train.lr)
    x, y = patterns(model, 6)
    opt.prepare(model, x, y, "map")
    first = opt._estimator
    opt.prepare(model, x, y, "map")
    assert opt._estimator is first
    opt.prepare(model, x, y, "mle")
    assert opt._estimator is not first and opt._estimator.loss == "mle"
    assert torch.equal(opt.state[model.c1[0].weight]["hessian"],
                       gauss_newton_diagonal(model, x, y, "mle")[model.c1[0].weight])
