"""`lenet5 bench`: training throughput, every engine against a reference loop measured in the same run.

(a) the seed blog's loop as the blog writes it (a modern BatchNorm/ReLU/max-pool LeNet trained with Adam, batch
    64, 5 epochs: torchvision MNIST + DataLoader + ToTensor per sample), against (b) our trainer on the same
    network and batch (preset modern), with the reference engine and the online engine;
(c) one row per `one_at_a_time` variant trained online (the paper preset, and the paper preset with one
    component modernised; batch 1): its reference step (engine=reference, the autograd loop), then the online
    engine (compiled unless --quick) for one run and for 5 seeds in lockstep, each with its ratio to the
    variant's reference step.
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
from .train import DIVERGENCE_CHECK_EVERY, Run, RunPaths, pass_permutation


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
    """Samples/s of one engine for a config, with `seeds` runs in one lockstep group."""
    config = run_config(preset, overrides)
    runs = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = LeNet5(config.model)
        run = Run(config, RunPaths(None), model, make_optimizer(config.train, model))  # never saved: no folder
        run.order = pass_permutation(seed, 0, len(data.train_y))
        run.train_x, run.train_y = data.train_x, data.train_y
        run.optimizer.prepare(model, data.train_x[:500], data.train_y[:500], config.loss)
        runs.append(run)
    engine = make_engine(config, data)
    max_steps = len(data.train_y) // config.train.batch_size
    # chunks as long as the trainer's (it packs and unpacks the online engine's state once per chunk)
    warmup, chunk = min(8, max_steps // 2), max(1, min(DIVERGENCE_CHECK_EVERY, max_steps // 4))
    start_compile = time.perf_counter()
    engine.run_steps(runs, 0, warmup)  # warm-up (and compilation, for engine=compiled)
    warmup_s = time.perf_counter() - start_compile
    steps, start = warmup, time.perf_counter()
    while steps + chunk <= max_steps and (steps == warmup or time.perf_counter() - start < seconds):
        engine.run_steps(runs, steps, steps + chunk)
        steps += chunk
    elapsed = time.perf_counter() - start
    samples_per_s = (steps - warmup) / elapsed * config.train.batch_size * seeds
    flops = 6 * totals(layer_counts(runs[0].model))[1]
    return {"engine": config.train.engine, "batch_size": config.train.batch_size, "seeds": seeds,
            "samples_per_s": samples_per_s, "gflops": samples_per_s * flops / 1e9, "warmup_s": warmup_s}


def online_variants() -> list[tuple[str, dict]]:
    """The `one_at_a_time` variants at batch 1: (name, overrides of the paper preset)."""
    from .study.grids import COMPONENTS

    return [("paper", {})] + [(f"{key}={modern}", {key: modern}) for key, (_, modern) in COMPONENTS.items()]


def matmul_peak_gflops(seconds: float = 1.0) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return n * 2 * 1024 ** 3 / (time.perf_counter() - start) / 1e9


def run_bench(data_root=None, quick: bool = False, lockstep_seeds: int = 5, seconds: float | None = None,
              variants: list[str] | None = None) -> list[dict]:
    seconds = seconds if seconds is not None else (2.0 if quick else 6.0)
    data = {"32": load_mnist("32", data_root), "28": load_mnist("28", data_root)}
    peak = matmul_peak_gflops()
    online = "online" if quick else "compiled"
    rows = [{"measure": "seed_blog_loop", "variant": "modern", "engine": "seed blog", "batch_size": 64, "seeds": 1,
             "samples_per_s": seed_blog_loop(data_root, seconds)}]
    for engine in ("reference", online):
        rows.append({"measure": "modern_batch64", "variant": "modern",
                     **our_loop("modern", {"engine": engine}, 1, data["28"], seconds)})
    for name, overrides in online_variants():
        if variants and name not in variants:
            continue
        base = {**overrides, "batch_size": 1}
        d = data[run_config("paper", base).model.input]
        rows.append({"measure": "online", "variant": name,
                     **our_loop("paper", {**base, "engine": "reference"}, 1, d, seconds)})
        rows.append({"measure": "online", "variant": name, **our_loop("paper", {**base, "engine": online}, 1, d, seconds)})
        rows.append({"measure": "online", "variant": name,
                     **our_loop("paper", {**base, "engine": online}, lockstep_seeds, d, seconds)})
    context = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "matmul_peak_gflops": round(peak, 1)}
    references = {(r["measure"], r["variant"]): r["samples_per_s"] for r in rows
                  if r["engine"] in ("reference", "seed blog")}
    for r in rows:
        r.update(context)
        if "gflops" in r:
            r["fraction_of_peak"] = r["gflops"] / peak
        reference = references[("seed_blog_loop", "modern")] if r["measure"] == "modern_batch64" else \
            references.get((r["measure"], r["variant"]))
        r["vs_reference"] = r["samples_per_s"] / reference
    return rows


def format_report(rows: list[dict]) -> str:
    first = rows[0]
    lines = [f"threads {first['threads']}, torch {first['torch']}, matmul peak {first['matmul_peak_gflops']} GFLOP/s",
             "", f"{'measure':<15} {'variant':<18} {'engine':<10} {'batch':>5} {'seeds':>5} {'samples/s':>10} "
                 f"{'% of peak':>9} {'ratio':>6}  ratio to"]
    for r in rows:
        peak = f"{100 * r['fraction_of_peak']:.1f}" if "fraction_of_peak" in r else "-"
        against = ("-" if r["engine"] in ("reference", "seed blog") else
                   "the seed blog's loop" if r["measure"] == "modern_batch64" else "the variant's reference step")
        warm = f"  (warm-up {r['warmup_s']:.0f} s)" if r.get("warmup_s", 0) > 1 else ""
        lines.append(f"{r['measure']:<15} {r['variant']:<18} {r['engine']:<10} {r['batch_size']:>5} {r['seeds']:>5} "
                     f"{r['samples_per_s']:>10,.0f} {peak:>9} {r['vs_reference']:>5.2f}x  {against}{warm}")
    online = [r for r in rows if r["measure"] == "online" and r["engine"] != "reference"]
    if online:
        single = [r for r in online if r["seeds"] == 1]
        group = [r for r in online if r["seeds"] > 1]
        lines += ["", f"online, one run:         slowest variant {min(r['samples_per_s'] for r in single):,.0f} "
                      f"samples/s; 20 passes of 60,000 in {20 * 60000 / min(r['samples_per_s'] for r in single) / 60:.1f} min"]
        if group:
            lines.append(f"online, {group[0]['seeds']} seeds in lockstep: slowest variant "
                         f"{min(r['samples_per_s'] for r in group):,.0f} samples/s")
    return "\n".join(lines)


def main_bench(data_root, quick: bool, as_json: bool, variants: list[str] | None = None) -> None:
    rows = run_bench(data_root, quick, variants=variants)
    if as_json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(format_report(rows))
