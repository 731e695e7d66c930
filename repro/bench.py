"""`lenet5 bench`: training throughput of our loops against the seed blog's, measured side by side in one run.

(a) the seed blog's loop as the blog writes it: torchvision MNIST + DataLoader + ToTensor per sample, its
    BatchNorm LeNet, Adam, batch 64;
(b) our trainer's loop on the same network and batch (preset modern: preprocessed tensors, reference engine);
(c) the paper preset online (batch 1, SDLM): the naive eager autograd step (engine=reference) and our fast
    paths (engine=fast, and engine=compiled unless --quick);
(d) the paper preset online with S seeds in lockstep.
Ratios: b/a, c/naive, and d's wall time per step against c's (the cost of S seeds relative to one).
FLOP/s use 6 FLOP per connection per training sample (multiply-add forward, and two in backward) against a
measured single-precision matmul peak on the same threads.
"""
from __future__ import annotations

import json
import platform
import time

import torch
from torch import nn

from .config import run_config
from .counts import layer_counts, totals
from .data import load_mnist, resolve_root
from .engines import make_engine
from .model import LeNet5
from .optim import make_optimizer
from .train import Run, RunPaths, pass_permutation


class SeedBlogLeNet(nn.Module):
    """The seed blog's network, as it writes it (seed/lenet5_blog_zh.txt)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 6, 5, 1, 2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.fc1 = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(120, 84), nn.ReLU())
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.conv2(self.conv1(x))
        x = x.view(x.size()[0], -1)
        return self.fc3(self.fc2(self.fc1(x)))


def seed_blog_loop(data_root, seconds: float) -> float:
    """(a): samples/s of the blog's training loop."""
    import torchvision
    from torchvision import transforms

    trainset = torchvision.datasets.MNIST(str(resolve_root(data_root)), train=True, download=False,
                                          transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(trainset, batch_size=64, shuffle=True)
    net = SeedBlogLeNet()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0)
    samples, start = 0, None
    for i, (inputs, labels) in enumerate(loader):
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
        if start is None:  # the first batch is warm-up
            start, samples = time.perf_counter(), 0
            continue
        samples += len(labels)
        if time.perf_counter() - start > seconds:
            break
    return samples / (time.perf_counter() - start)


def our_loop(preset: str, overrides: dict, seeds: int, data, seconds: float) -> dict:
    """Steps/s and samples/s of our engine for a config, with `seeds` runs in one group."""
    config = run_config(preset, overrides)
    runs = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = LeNet5(config.model)
        run = Run(config, RunPaths(None), model, make_optimizer(config.train, model))  # never saved: no folder
        run.order = pass_permutation(seed, 0, len(data.train_y))
        run.optimizer.prepare(model, data.train_x[:500], data.train_y[:500], config.loss)
        runs.append(run)
    engine = make_engine(config, data)
    max_steps = len(data.train_y) // config.train.batch_size
    warmup, chunk = min(5, max_steps // 2), max(1, min(50, max_steps // 4))
    start_compile = time.perf_counter()
    engine.run_steps(runs, 0, warmup)  # warm-up (and compilation, for engine=compiled)
    warmup_s = time.perf_counter() - start_compile
    steps, start = warmup, time.perf_counter()
    while steps + chunk <= max_steps and (steps == warmup or time.perf_counter() - start < seconds):
        engine.run_steps(runs, steps, steps + chunk)
        steps += chunk
    elapsed = time.perf_counter() - start
    steps_per_s = (steps - warmup) / elapsed
    flops = 6 * totals(layer_counts(runs[0].model))[1]
    samples_per_s = steps_per_s * config.train.batch_size * seeds
    return {"steps_per_s": steps_per_s, "samples_per_s": samples_per_s, "gflops": samples_per_s * flops / 1e9,
            "warmup_s": warmup_s, "engine": config.train.engine, "seeds": seeds}


def matmul_peak_gflops(seconds: float = 1.0) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return n * 2 * 1024 ** 3 / (time.perf_counter() - start) / 1e9


def run_bench(data_root=None, quick: bool = False, lockstep_seeds: int = 5, seconds: float | None = None) -> list[dict]:
    seconds = seconds if seconds is not None else (2.0 if quick else 8.0)
    data32 = load_mnist("32", data_root)
    data28 = load_mnist("28", data_root)
    peak = matmul_peak_gflops()
    rows = [{"measure": "a_seed_blog_loop", "samples_per_s": seed_blog_loop(data_root, seconds)}]
    rows.append({"measure": "b_ours_modern_batch64", **our_loop("modern", {}, 1, data28, seconds)})
    engines = ["reference", "fast"] + ([] if quick else ["compiled"])
    for engine in engines:
        rows.append({"measure": f"c_paper_batch1_{engine}", **our_loop("paper", {"engine": engine}, 1, data32, seconds)})
    best = max((r for r in rows if r["measure"].startswith("c_")), key=lambda r: r["samples_per_s"])
    rows.append({"measure": f"d_paper_batch1_{best['engine']}_x{lockstep_seeds}",
                 **our_loop("paper", {"engine": best["engine"]}, lockstep_seeds, data32, seconds)})
    context = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "matmul_peak_gflops": round(peak, 1)}
    for r in rows:
        r.update(context)
        if "gflops" in r:
            r["fraction_of_peak"] = r["gflops"] / peak
    return rows


def format_report(rows: list[dict]) -> str:
    by = {r["measure"]: r for r in rows}
    a, b = by["a_seed_blog_loop"], by["b_ours_modern_batch64"]
    naive = by["c_paper_batch1_reference"]
    cs = [r for r in rows if r["measure"].startswith("c_")]
    best = max(cs, key=lambda r: r["samples_per_s"])
    d = next(r for r in rows if r["measure"].startswith("d_"))
    lines = [f"threads {a['threads']}, torch {a['torch']}, matmul peak {a['matmul_peak_gflops']} GFLOP/s", ""]
    for r in rows:
        extra = f"  {r['gflops']:.2f} GFLOP/s ({100 * r['fraction_of_peak']:.1f}% of peak)" if "gflops" in r else ""
        warm = f"  warm-up {r['warmup_s']:.1f} s" if r.get("warmup_s", 0) > 1 else ""
        lines.append(f"{r['measure']:<34} {r['samples_per_s']:>10,.0f} samples/s{extra}{warm}")
    lines += ["",
              f"b/a  ours vs seed blog (modern, batch 64):        {b['samples_per_s'] / a['samples_per_s']:.2f}x",
              f"c    paper online, best engine ({best['engine']}) vs naive eager: "
              f"{best['samples_per_s'] / naive['samples_per_s']:.2f}x  ({best['samples_per_s']:,.0f} samples/s; "
              f"20 passes of 60,000 in {20 * 60000 / best['samples_per_s'] / 60:.1f} min)",
              f"d/c  {d['seeds']} seeds in lockstep: wall time per step {best['steps_per_s'] / d['steps_per_s']:.2f}x "
              f"one seed's; {d['samples_per_s'] / best['samples_per_s']:.2f}x the samples/s"]
    return "\n".join(lines)


def main_bench(data_root, quick: bool, as_json: bool) -> None:
    rows = run_bench(data_root, quick)
    if as_json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(format_report(rows))
