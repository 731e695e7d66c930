"""The C kernel for C1-S2's curvature (repro/kernels/c1s2.c) against the definition (`gauss_newton_diagonal`),
for every switch value, generated from the registries: a value the kernel covers must give the same h, and a
value it does not cover must be one listed here (its networks keep the torch code), so that a new switch value
is either checked against the definition or declared outside the kernel. Then its build: cached, and a missing
compiler or LENET5_NATIVE_KERNELS=0 leaves the torch code in place with a warning.
"""
import ctypes
import re
import subprocess

import pytest
import torch

import repro.kernels as kernels
from torch import nn

from repro.components import Conv2d, MaxPool, TableConv2d, TrainableSubsampling
from repro.components.activation import Activation, ReLU, ScaledTanh
from repro.config import HEAD_LOSSES, run_config
import repro.kernels.c1s2 as c1s2_module
from repro.kernels.c1s2 import C1S2Block
from repro.layers import network_layers
from repro.model import LeNet5
from repro.sdlm import CurvatureEstimator, gauss_newton_diagonal

from test_components import built_with, patterns, switch_values

# the switch values whose C1-S2 block the kernel does not compute (their estimate stays in torch)
NOT_COVERED = {("pooling", "max"), ("pooling", "avg"), ("norm", "batch")}


def _with_kernel(model, loss: str, x) -> CurvatureEstimator:
    """An eager estimator whose C1-S2 block is the kernel (compiled runs use it the same way, compiled)."""
    estimator = CurvatureEstimator(model, loss, kernel=True)
    estimator(x[:1], torch.zeros(1, dtype=torch.long))  # traces the layers and matches the block
    return estimator


@pytest.mark.parametrize("switch,value", switch_values())
def test_the_kernel_gives_the_definitions_h_for_every_switch_value_it_covers(switch, value):
    model, config = built_with(switch, value)
    with torch.no_grad():  # weights away from their init, so that every unit's slope and sign vary
        for p in model.parameters():
            p.mul_(1.5)
    x, y = patterns(model, 40)
    estimator = _with_kernel(model, config.loss, x)
    covered = estimator.block is not None
    assert covered == ((switch, value) not in NOT_COVERED), (
        f"{switch}={value}: the C1-S2 kernel {'covers' if covered else 'does not cover'} it; update NOT_COVERED")
    if not covered:
        return
    for loss in HEAD_LOSSES[config.model.head]:
        estimator.loss = loss
        estimate, definition = estimator(x, y), gauss_newton_diagonal(model, x, y, loss)
        names = {p: n for n, p in model.named_parameters()}
        for p in estimator.block.params:  # float rounding only: another tanh formula, other summation orders
            torch.testing.assert_close(estimate[p], definition[p], rtol=2e-5, atol=1e-9,
                                       msg=lambda m: f"{names[p]} under {loss}: {m}")
        for p in set(definition) - set(estimator.block.params):
            torch.testing.assert_close(estimate[p], definition[p], rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize("activation", ["scaled_tanh", "relu"])
def test_the_kernels_forward_pass_is_the_models(activation):
    model = LeNet5(run_config("paper", {"activation": activation}).model)
    x, _ = patterns(model, 7)
    x[0] = 0.0  # ReLU's derivative at exactly 0 and tanh at 0
    x[1] *= 40.0  # saturated units: the exp's clamp
    block = C1S2Block.match(network_layers(model))
    padded, y1, y2 = block.forward(x)
    with torch.no_grad():  # summation order: the saturated pattern's sums reach ~100
        torch.testing.assert_close(block.c1_output(y1, len(x)), model.c1(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(y2, model.s2(model.c1(x)), rtol=1e-5, atol=1e-5)
    assert padded.shape == x.shape


def test_a_28_pixel_input_is_padded_as_c1_pads_it():
    model = LeNet5(run_config("paper", {"input": "28"}).model)
    x, _ = patterns(model, 3)
    block = C1S2Block.match(network_layers(model))
    padded, y1, _ = block.forward(x)
    assert padded.shape[-1] == 32 and torch.equal(padded[..., 2:30, 2:30], x) and padded[..., :2, :].abs().sum() == 0
    with torch.no_grad():
        torch.testing.assert_close(block.c1_output(y1, len(x)), model.c1(x), rtol=1e-5, atol=1e-5)


def test_a_double_precision_model_keeps_the_torch_code():
    model = LeNet5(run_config("paper").model).double()
    assert C1S2Block.match(network_layers(model)) is None


@pytest.fixture
def fresh_kernels(tmp_path, monkeypatch):
    """An empty kernel cache and no library loaded yet in this process."""
    monkeypatch.setenv("LENET5_KERNEL_CACHE", str(tmp_path / "kernels"))
    monkeypatch.setattr(kernels, "_loaded", {})
    return tmp_path / "kernels"


def test_the_library_is_built_once_and_cached(fresh_kernels, monkeypatch):
    library = kernels.load("c1s2")
    assert isinstance(library, ctypes.CDLL)
    built = list(fresh_kernels.glob("c1s2-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(kernels, "_loaded", {})  # another process: finds the cached library, builds nothing
    assert kernels.load("c1s2") is not None
    assert [p.stat().st_mtime_ns for p in fresh_kernels.glob("c1s2-*.so")] == [stamp]


def test_no_compiler_means_the_torch_code_and_one_warning(fresh_kernels, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.warns(RuntimeWarning, match=r"c1s2\.c is not available \(no C compiler \(no-such-compiler\).*"
                                            r"using torch's kernels"):
        assert kernels.load("c1s2") is None
    model = LeNet5(run_config("paper").model)
    assert C1S2Block.match(network_layers(model)) is None  # cached as unavailable: no second warning
    assert not fresh_kernels.exists() or not list(fresh_kernels.iterdir())


def test_without_cc_the_warning_names_cc(fresh_kernels, monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc on it
    with pytest.warns(RuntimeWarning, match=r"\(no C compiler \(cc\) on PATH\)"):
        assert kernels.load("c1s2") is None


def test_a_compiler_error_is_named_in_the_warning(fresh_kernels, monkeypatch, tmp_path):
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\n[ \"$1\" = --version ] && exit 0\n"
                      "printf 'c1s2.c: In function f:\\nc1s2.c:1: error: something broke\\n    1 | x\\n      | ^\\n"
                      "compilation terminated.\\n' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with pytest.warns(RuntimeWarning, match=r"\(c1s2.c:1: error: something broke\); using torch's"):
        assert kernels.load("c1s2") is None


def test_cc_may_carry_arguments(fresh_kernels, monkeypatch):
    monkeypatch.setenv("CC", "env cc")
    assert kernels.load("c1s2") is not None and len(list(fresh_kernels.glob("c1s2-*.so"))) == 1


@pytest.mark.parametrize("n", [1, 16, 17])
def test_one_pattern_and_whole_groups_give_the_definitions_h(n):
    model = LeNet5(run_config("paper").model)
    x, y = patterns(model, n)
    estimator = _with_kernel(model, "map", x)
    estimate, definition = estimator(x, y), gauss_newton_diagonal(model, x, y, "map")
    for p in estimator.block.params:
        torch.testing.assert_close(estimate[p], definition[p], rtol=2e-5, atol=1e-9)


def test_the_kernel_refuses_an_input_it_would_misread():
    model = LeNet5(run_config("paper").model)
    block = C1S2Block.match(network_layers(model))
    with pytest.raises(ValueError, match=r"expected float32 input of shape \(N, 1, 32, 32\), got torch.float64"):
        block.forward(torch.zeros(2, 1, 32, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"got torch.float32 \(2, 1, 28, 28\)"):
        block.forward(torch.zeros(2, 1, 28, 28))


def test_relu_keeps_a_nan_as_torch_does():
    model = LeNet5(run_config("paper", {"activation": "relu"}).model)
    x, _ = patterns(model, 2)
    x[0, 0, 10, 10] = float("nan")
    _, y1, y2 = C1S2Block.match(network_layers(model)).forward(x)
    with torch.no_grad():
        expected = model.s2(model.c1(x))
    assert torch.equal(y2.isnan(), expected.isnan()) and y2[0].isnan().any()


def test_lenet5_native_kernels_0_turns_the_kernel_off(fresh_kernels, monkeypatch):
    monkeypatch.setenv("LENET5_NATIVE_KERNELS", "0")
    model = LeNet5(run_config("paper").model)
    x, y = patterns(model, 5)
    estimator = CurvatureEstimator(model, "map", kernel=True)
    estimator(x, y)
    assert estimator.block is None and C1S2Block.match(network_layers(model)) is None
    assert not fresh_kernels.exists()


def test_the_estimator_uses_the_kernel_in_compiled_runs_unless_told():
    model = LeNet5(run_config("paper").model)
    x, y = patterns(model, 5)
    chosen = {}
    for name, kwargs in (("eager", {}), ("asked for", {"kernel": True}), ("refused", {"kernel": False})):
        estimator = CurvatureEstimator(model, "map", **kwargs)
        estimator(x, y)
        chosen[name] = estimator.block is not None
    assert chosen == {"eager": False, "asked for": True, "refused": False}
    assert CurvatureEstimator(model, "map", compiled=True).kernel is True
    assert CurvatureEstimator(model, "map", compiled=True, kernel=False).kernel is False


def test_the_build_flags_follow_the_instruction_set_torch_dispatches_to(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert kernels.build_flags()[-3:] == ["-mavx2", "-mfma", "-DLANES=8"]
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    assert kernels.build_flags() == kernels.BASE_FLAGS + ["-DLANES=4"]


@pytest.mark.parametrize("capability,lanes", [("AVX2", 8), ("DEFAULT", 4)])
def test_every_instruction_set_build_gives_the_same_h(capability, lanes, fresh_kernels, monkeypatch):
    """The builds for other instruction sets (other group sizes) on this machine, where it runs them."""
    import repro.kernels.c1s2 as c1s2
    model = LeNet5(run_config("paper").model)
    x, y = patterns(model, 21)  # one whole group and part of another
    expected = gauss_newton_diagonal(model, x, y, "map")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    if capability == "AVX2" and "avx2" not in open("/proc/cpuinfo").read():
        pytest.skip("this machine has no AVX2")
    estimator = _with_kernel(model, "map", x)
    assert estimator.block.library.c1s2_lanes() == lanes
    estimate = estimator(x, y)
    for p in estimator.block.params:
        torch.testing.assert_close(estimate[p], expected[p], rtol=2e-5, atol=1e-9)
    assert c1s2.C1S2Block.c1_output(estimator.block.forward(x)[1], len(x)).shape == (21, 6, 28, 28)


def _block(first=None, act1=ScaledTanh, subsampling=None, act2=ScaledTanh, size=32, channels=1, tail=True,
           dtype=torch.float32, height=None):
    """A network of components whose first four layers differ from C1-S2 in at most one way."""
    first = first if first is not None else Conv2d(1, 6, 5)
    layers = [first, act1(), subsampling if subsampling is not None else TrainableSubsampling(6), act2()]
    if tail:  # any layer will do: the kernel stops at S2's squashing
        layers.append(ScaledTanh())
    network = nn.Sequential(*layers).to(dtype)
    return network_layers(network, example=torch.zeros(1, channels, height or size, size, dtype=dtype))


@pytest.mark.parametrize("why,layers", [
    ("two input maps", lambda: _block(Conv2d(2, 6, 5), channels=2)),
    ("a 3x3 kernel", lambda: _block(Conv2d(1, 6, 3), size=30)),
    ("stride 2", lambda: _block(Conv2d(1, 6, 5, stride=2), size=60)),
    ("dilation 2", lambda: _block(Conv2d(1, 6, 5, dilation=2), size=36)),
    ("no bias", lambda: _block(Conv2d(1, 6, 5, bias=False))),
    ("padding only across", lambda: _block(Conv2d(1, 6, 5, padding=(0, 2)), size=32)),
    ("Table I's connections", lambda: _block(TableConv2d(torch.ones(6, 1, dtype=torch.bool), 5))),
    ("max-pooling", lambda: _block(subsampling=MaxPool())),
    ("one S2 coefficient for six maps", lambda: _block(subsampling=TrainableSubsampling(1))),
    ("one S2 coefficient, six biases", lambda: _block(subsampling=_one_coefficient())),
    ("a taller input than wide", lambda: _block(height=34)),
    ("reflected padding", lambda: _block(Conv2d(1, 6, 5, padding=2, padding_mode="reflect"), size=28)),
    ("padding by name", lambda: _block(Conv2d(1, 6, 5, padding="valid"))),
    ("two activations", lambda: _block(act2=ReLU)),
    ("an activation the kernel lacks", lambda: _block(act1=nn_identity(), act2=nn_identity())),
    ("26x26 maps", lambda: _block(size=30)),
    ("nothing after S2", lambda: _block(tail=False)),
    ("float64", lambda: _block(dtype=torch.float64)),
])
def test_a_block_the_kernel_does_not_compute_is_left_to_torch(why, layers):
    assert C1S2Block.match(_block()) is not None  # the block itself
    assert C1S2Block.match(layers()) is None, why


def _one_coefficient() -> TrainableSubsampling:
    s2 = TrainableSubsampling(6)
    s2.coefficient = nn.Parameter(torch.full((1,), 0.25))
    return s2


def nn_identity():
    """An Activation subclass the kernel has no code for."""
    class Identity(Activation):
        def forward(self, a):
            return a

        def derivative_from_output(self, y):
            return torch.ones_like(y)
    return Identity


def test_the_warning_reason_is_one_line_of_what_the_compiler_said():
    failed = subprocess.CalledProcessError(1, ["cc"], stderr="In function f:\nc1s2.c:3: Error: bad\n  | ^\n")
    assert kernels._reason(failed) == "c1s2.c:3: Error: bad"
    no_error_line = subprocess.CalledProcessError(1, ["cc"], stderr="\nld: cannot open output\nsecond line\n")
    assert kernels._reason(no_error_line) == "ld: cannot open output"
    # a timeout's output may come as bytes, undecodable ones too
    timed_out = subprocess.TimeoutExpired(["cc"], 120, stderr=b"c1s2.c:9: error: \xff\xfe slow\n")
    assert kernels._reason(timed_out) == "c1s2.c:9: error: \ufffd\ufffd slow"
    assert kernels._reason(OSError("no C compiler (x) on PATH")) == "no C compiler (x) on PATH"
    assert kernels._reason(OSError()) == "OSError"


def test_a_kernel_argument_must_be_a_contiguous_cpu_tensor():
    t = torch.zeros(3, 4)
    assert kernels.pointer(t).value == t.data_ptr()
    for bad in (t.t(), torch.zeros(3, 4, device="meta")):
        with pytest.raises(ValueError, match="^a kernel argument must be a contiguous CPU tensor$"):
            kernels.pointer(bad)


def test_the_curvature_at_s2_may_come_in_double_precision():
    model = LeNet5(run_config("paper").model)
    x, _ = patterns(model, 5)
    block = C1S2Block.match(network_layers(model))
    padded, y1, y2 = block.forward(x)
    h_y2 = torch.rand(y2.shape, generator=torch.Generator().manual_seed(0))
    single = block.curvature(padded, y1, y2, h_y2)
    for a, b in zip(single, block.curvature(padded, y1, y2, h_y2.double())):
        assert torch.equal(a, b) and a.abs().sum() > 0


def test_the_cache_is_under_home_unless_told_and_made_with_its_parents(tmp_path, monkeypatch):
    monkeypatch.delenv("LENET5_KERNEL_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kernels.cache_dir() == tmp_path / ".cache" / "lenet5-repro" / "kernels"
    nested = tmp_path / "a" / "b" / "kernels"
    monkeypatch.setenv("LENET5_KERNEL_CACHE", str(nested))
    monkeypatch.setattr(kernels, "_loaded", {})
    assert kernels.load("c1s2") is not None
    assert [p.parent for p in nested.glob("c1s2-*.so")] == [nested] and not list(nested.glob("tmp*"))


def test_the_cache_key_follows_the_flags_and_the_compilers_version(fresh_kernels, monkeypatch, tmp_path):
    wrapper = tmp_path / "cc-wrapper"
    wrapper.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "cc $FAKE_VERSION"; exit 0; }\nexec cc "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    built = []
    for version, capability in (("1", "AVX2"), ("2", "AVX2"), ("2", "DEFAULT"), ("2", "DEFAULT")):
        monkeypatch.setenv("FAKE_VERSION", version)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(kernels, "_loaded", {})
        kernels.load("c1s2")
        built.append(sorted(p.name for p in fresh_kernels.glob("c1s2-*.so")))
    assert [len(b) for b in built] == [1, 2, 3, 3]
    assert all(re.fullmatch(r"c1s2-[0-9a-f]{16}\.so", name) for name in built[-1])


def test_the_evaluation_keeps_no_c1_output():
    model = LeNet5(run_config("paper").model)
    x, _ = patterns(model, 3)
    block = C1S2Block.match(network_layers(model))
    padded, y1, y2 = block.forward(x, keep_c1=False)
    assert y1 is None and torch.equal(y2, block.forward(x)[2])


def test_an_allocation_failure_is_one_clear_error():
    c1s2_module._checked(0)
    with pytest.raises(MemoryError, match=r"^the C1-S2 kernel could not allocate its buffers \(a few hundred kB\): "
                                          r"free some memory, or set LENET5_NATIVE_KERNELS=0$"):
        c1s2_module._checked(-1)
