"""Where the compiled curvature estimate's time goes (issue 29): SDLM's h on 500 patterns of the paper preset,
as a compiled run makes it (`repro.sdlm.CurvatureEstimator`, compiled), profiled by torch.profiler with inductor's
per-kernel records, and each of its convolutions timed alone in eager mode beside it. Run it on an otherwise idle
machine, one thread:

    python -m experiments.profile_curvature --data-root ../shared/data

Writes results/profile_curvature_threads1.txt (docs/speed.md, "What is left in the curvature estimate"). The
profile groups the time into oneDNN's forward convolutions, its convolution backward kernels (C3's weight and
input curvature), inductor's fused elementwise kernels (the squashing functions, the subsampling sums and their
App. C rules, the reductions into h), matrix products (C5, F6, the RBF), and the rest.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from repro.config import run_config
from repro.data import load_mnist
from repro.errors import run_script
from repro.model import build_model
from repro.provenance import code_commit, machine
from repro.kernels.c1s2 import PROFILE_NAME
from repro.sdlm import CurvatureEstimator

OUT = Path("results/profile_curvature_threads1.txt")
GROUPS = (  # (group, what a profiler record's name starts with), first match wins
    ("the C1-S2 kernel (repro/kernels/c1s2.c)", (PROFILE_NAME,)),
    ("oneDNN forward convolutions", ("aten::mkldnn_convolution",)),
    ("convolution backward (C3's weight and input h)", ("aten::convolution_backward",)),
    ("inductor's fused elementwise kernels", ("graph_",)),
    ("matrix products (C5, F6, RBF)", ("aten::mm", "aten::addmm", "aten::bmm")),
)


def per_call_ms(fn, calls: int) -> float:
    fn(), fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1000


def profile_groups(estimate, calls: int) -> tuple[dict[str, float], float]:
    """{group: ms per estimate} from the profiler's self times, and the profiled total per estimate."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            estimate()
    groups = {name: 0.0 for name, _ in GROUPS} | {"the rest (dispatch, copies, Python)": 0.0}
    total = 0.0
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1000 / calls
        total += ms
        group = next((name for name, starts in GROUPS if event.key.startswith(starts)),
                     "the rest (dispatch, copies, Python)")
        groups[group] += ms
    return groups, total


def convolutions(n: int, calls: int) -> list[tuple[str, float, float]]:
    """Each convolution of the estimate alone, eager, on random tensors of its shapes: (name, ms, MAC/s in G)."""
    torch.manual_seed(0)
    x, w1 = torch.rand(n, 1, 32, 32), torch.rand(6, 1, 5, 5)
    h1 = torch.rand(n, 6, 28, 28)
    s2, w3, h3 = torch.rand(n, 6, 14, 14), torch.rand(16, 6, 5, 5), torch.rand(n, 16, 10, 10)
    c1_macs, c3_macs = n * 6 * 28 * 28 * 25, n * 16 * 10 * 10 * 6 * 25
    cases = [
        ("C1 forward (1 -> 6 maps, 5x5)", lambda: F.conv2d(x, w1), c1_macs),
        ("C1 weight h (batch and channels swapped)",
         lambda: F.conv2d(x.transpose(0, 1), h1.transpose(0, 1)).transpose(0, 1), c1_macs),
        ("C1 weight h as a grouped convolution (tried)",
         lambda: F.conv2d(x.view(1, n, 32, 32), h1.view(n * 6, 1, 28, 28), groups=n).view(n, 6, 5, 5).sum(0),
         c1_macs),
        ("C3 forward (6 -> 16 maps, 5x5, full)", lambda: F.conv2d(s2, w3), c3_macs),
        ("C3 weight h (conv2d_weight)", lambda: conv2d_weight(s2, w3.shape, h3), c3_macs),
        ("C3 input h (conv2d_input)", lambda: conv2d_input(s2.shape, w3, h3), c3_macs),
    ]
    return [(name, ms, macs / ms / 1e6) for name, fn, macs in cases for ms in [per_call_ms(fn, calls)]]


def kernel_parts(block, x: torch.Tensor, calls: int) -> list[tuple[str, float, float]]:
    """The C1-S2 kernel's two calls alone, with C1's multiply-adds (each call makes one convolution's worth)."""
    padded, y1, y2 = block.forward(x)
    h_y2 = torch.rand_like(y2)
    macs = x.shape[0] * 6 * 28 * 28 * 25
    cases = [("C1-S2 kernel: forward (C1, S2, both squashings)", lambda: block.forward(x)),
             ("C1-S2 kernel: App. C back through S2 and C1",
              lambda: block.curvature(padded, y1, y2, h_y2))]
    return [(name, ms, macs / ms / 1e6) for name, fn in cases for ms in [per_call_ms(fn, calls)]]


def report(data_root, calls: int) -> str:
    torch.set_num_threads(1)
    config = run_config("paper")
    n = config.train.hessian_samples
    data = load_mnist("32", data_root, train_size=n)
    torch.manual_seed(0)
    model = build_model(config)
    estimator = CurvatureEstimator(model, config.loss, compiled=True)
    x, y = data.train_x[:n], data.train_y[:n]
    whole = per_call_ms(lambda: estimator(x, y), calls)
    groups, total = profile_groups(lambda: estimator(x, y), calls)
    torch_only = CurvatureEstimator(model, config.loss, compiled=True, kernel=False)
    without = per_call_ms(lambda: torch_only(x, y), calls)
    made_by = machine()
    lines = [f"threads 1, torch {torch.__version__}, {made_by['cpu']} ({made_by['cpu_capability']}), commit "
             f"{(code_commit()['commit'] or 'unknown')[:7]}, paper preset, {n} patterns per estimate, "
             f"{calls} estimates",
             "", f"compiled estimate: {whole:.1f} ms ({n / whole * 1000:,.0f} patterns/s)"
             + ("" if estimator.block else "  (no C1-S2 kernel on this machine: repro/kernels/__init__.py)"),
             f"the same without the C1-S2 kernel: {without:.1f} ms ({n / without * 1000:,.0f} patterns/s)", "",
             f"{'profiled, per estimate':52s} {'ms':>6s} {'share':>6s}"]
    lines += [f"{name:52s} {ms:6.1f} {ms / total:6.1%}" for name, ms in groups.items()]
    lines += ["", f"{'each convolution alone (eager), and the kernel alone':52s} {'ms':>6s} {'GMAC/s':>6s}"]
    lines += [f"{name:52s} {ms:6.1f} {rate:6.1f}" for name, ms, rate in convolutions(n, calls)]
    if estimator.block:
        lines += [f"{name:52s} {ms:6.1f} {rate:6.1f}" for name, ms, rate in kernel_parts(estimator.block, x, calls)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--calls", type=int, default=20, help="estimates timed and profiled (default 20)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    import torch._inductor.config as inductor_config

    inductor_config.cpp.enable_kernel_profile = True  # a profiler record per fused kernel
    text = report(args.data_root, args.calls)
    args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    raise SystemExit(run_script(main))
