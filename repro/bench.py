"""`lenet5 bench`: training throughput, every engine against a reference loop measured in the same run.

(a) the seed blog's loop as the blog writes it (a modern BatchNorm/ReLU/max-pool LeNet trained with Adam, batch
    64, 5 epochs: torchvision MNIST + DataLoader + ToTensor per sample), against (b) our trainer on the same
    network and batch (preset modern), with the reference engine and the online engine;
(c) one row per `one_at_a_time` variant trained online (the paper preset, and the paper preset with one
    component modernised; batch 1): its reference step (engine=reference, the autograd loop), then the online
    engine (compiled unless --quick) for one run and for 5 seeds in lockstep, each with its ratio to the
    variant's reference step.
(d) a whole paper-protocol run, short (`WHOLE_RUN`: 2 passes of 60,000 patterns, h re-estimated every 500
    updates, the training and test sets evaluated after each pass), trained by `train` as any run: its updates
    per second of wall time against the compiled step of (c) measured in the same bench run (`vs_step`), the
    share of its wall time in each phase (repro/phases.py), and from its per-unit costs the time of a full
    20-pass run; then the two phases besides the updates alone: SDLM's curvature estimate on 500 patterns
    (`curvature`) and the per-pass evaluation (`evaluation`), each against today's definition measured beside
    it (`gauss_newton_diagonal`, the eager evaluation).
FLOP/s use 6 FLOP per connection per training sample (multiply-add forward, and two in backward) against a
measured single-precision matmul peak on the same threads.
"""
from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from .config import run_config
from .counts import layer_counts, totals
from .data import load_mnist, resolve_root
from .engines import compiled_phases, make_engine, run_workload
from .evaluation import Evaluator
from .model import LeNet5, build_model
from .optim import make_optimizer
from .phases import PHASES
from .provenance import machine
from .sdlm import CurvatureEstimator, gauss_newton_diagonal
from .train import DIVERGENCE_CHECK_EVERY, Run, RunPaths, pass_permutation, train

MEASURES = ("seed_blog_loop", "modern_batch64", "online", "whole_run", "curvature", "evaluation")
# (d): a short paper-protocol run with every phase of a full one, each computed as a full run computes it (enough
# estimates and evaluated patterns for them to compile: repro.engines.compiled_phases); the warm-up run before it
# fills torch's compile caches, so that the measured run's compile phase is what a run pays when they are warm
WHOLE_RUN = {"train_size": 60_000, "epochs": 2}
WARMUP_RUN = {"train_size": 1_000, "epochs": 1}


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


def whole_run(data_root, engine: str, step_samples_per_s: float, whole: dict | None = None) -> dict:
    """(d): a short paper-protocol run through `train`, its phases, and the full 20-pass run they imply."""
    whole = whole or WHOLE_RUN
    with tempfile.TemporaryDirectory() as tmp:
        warmup = {**WARMUP_RUN, "train_size": min(WARMUP_RUN["train_size"], whole["train_size"])}
        for name, overrides in (("warm-up", warmup), ("measured", whole)):
            config = run_config("paper", {**overrides, "engine": engine})
            data = load_mnist("32", data_root, train_size=config.train.train_size)
            summary = train(config, Path(tmp) / name, data=data, progress=False)
    cfg = config.train
    n_train, n_test = len(data.train_y), len(data.test_y)
    spent, wall = summary["phases_s"], summary["wall_s"]
    steady = wall - spent["compile"]  # compiling is paid once per run, whatever its length: shown apart
    units = run_workload(config, n_train, n_test)
    per_unit = {"updates": spent["updates"] / units["updates"],
                "curvature": spent["curvature"] / units["curvature"],
                "evaluation": spent["evaluation"] / units["evaluation"],
                "handover": spent["handover"] / units["updates"], "other": spent["other"] / units["updates"]}
    full_units = run_workload(run_config("paper"), 60_000, 10_000)
    full_units["handover"] = full_units["other"] = full_units["updates"]
    full = {phase: per_unit[phase] * full_units[phase] for phase in per_unit}
    full["compile"] = spent["compile"]
    return {"measure": "whole_run", "variant": "paper", "engine": engine, "batch_size": 1, "seeds": 1,
            "samples_per_s": units["updates"] / steady, "samples_per_s_with_compile": units["updates"] / wall,
            "vs_step": units["updates"] / steady / step_samples_per_s, "step_samples_per_s": step_samples_per_s,
            "passes": cfg.epochs, "train_size": n_train, "updates": units["updates"],
            "curvature_estimates": units["curvature"], "evaluated_patterns": units["evaluation"],
            "wall_s": wall, "compile_s": spent["compile"], "phases_s": spent,
            "compiled_phases": compiled_phases(config, n_train, n_test),
            "phases": {phase: spent[phase] / steady for phase in PHASES if phase != "compile"},
            "full_run_s": full, "full_run_vs_updates": sum(full.values()) / full["updates"]}


def curvature_rows(data, compiled: bool, seconds: float) -> list[dict]:
    """SDLM's h on 500 patterns: the definition (hooks, eager) and the estimator training uses; where that one
    computes C1-S2 in C (repro/kernels/c1s2.py), also the same estimator without the kernel ("no kernel")."""
    config = run_config("paper")
    torch.manual_seed(0)
    model = build_model(config)
    x, y = data.train_x[:config.train.hessian_samples], data.train_y[:config.train.hessian_samples]
    estimator = CurvatureEstimator(model, config.loss, compiled=compiled)
    estimator(x, y)
    cases = [("reference", lambda: gauss_newton_diagonal(model, x, y, config.loss)),
             ("compiled" if compiled else "online", lambda: estimator(x, y))]
    if estimator.block is not None:
        torch_only = CurvatureEstimator(model, config.loss, compiled=compiled, kernel=False)
        cases.append(("no kernel", lambda: torch_only(x, y)))
    rows = []
    for engine, fn in cases:
        rate = _repeat(fn, seconds) * len(x)
        rows.append({"measure": "curvature", "variant": "paper", "engine": engine, "batch_size": len(x), "seeds": 1,
                     "samples_per_s": rate, "s_per_estimate": len(x) / rate})
    return rows


def evaluation_rows(data, compiled: bool, seconds: float) -> list[dict]:
    """The per-pass evaluation on the test set: eager at batch 1000 with autograd off (the definition), and the
    evaluator training uses."""
    config = run_config("paper")
    torch.manual_seed(0)
    model = build_model(config)
    x, y = data.test_x, data.test_y
    rows = []
    for engine, evaluator in (("reference", Evaluator(model, config.loss, config.train.map_j)),
                              ("compiled" if compiled else "online",
                               Evaluator(model, config.loss, config.train.map_j, compiled=compiled))):
        rate = _repeat(lambda: evaluator(x, y), seconds) * len(x)
        rows.append({"measure": "evaluation", "variant": "paper", "engine": engine, "batch_size": evaluator.batch,
                     "seeds": 1, "samples_per_s": rate})
    return rows


def _repeat(fn, seconds: float) -> float:
    """Calls per second of fn, after two warm-up calls (compilation), for at least `seconds` and 3 calls."""
    fn(), fn()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls / (time.perf_counter() - start)


def run_bench(data_root=None, quick: bool = False, lockstep_seeds: int = 5, seconds: float | None = None,
              variants: list[str] | None = None, measures: list[str] | None = None,
              whole: dict | None = None) -> list[dict]:
    seconds = seconds if seconds is not None else (2.0 if quick else 6.0)
    measures = measures or MEASURES
    data = {"32": load_mnist("32", data_root), "28": load_mnist("28", data_root)}
    peak = matmul_peak_gflops()
    online = "online" if quick else "compiled"
    rows = []
    if "seed_blog_loop" in measures or "modern_batch64" in measures:
        rows.append({"measure": "seed_blog_loop", "variant": "modern", "engine": "seed blog", "batch_size": 64,
                     "seeds": 1, "samples_per_s": seed_blog_loop(data_root, seconds)})
    if "modern_batch64" in measures:
        for engine in ("reference", online):
            rows.append({"measure": "modern_batch64", "variant": "modern",
                         **our_loop("modern", {"engine": engine}, 1, data["28"], seconds)})
    for name, overrides in online_variants():
        if "online" not in measures and not (name == "paper" and "whole_run" in measures):
            continue
        if variants and name not in variants and not (name == "paper" and "whole_run" in measures):
            continue
        base = {**overrides, "batch_size": 1}
        d = data[run_config("paper", base).model.input]
        rows.append({"measure": "online", "variant": name,
                     **our_loop("paper", {**base, "engine": "reference"}, 1, d, seconds)})
        rows.append({"measure": "online", "variant": name, **our_loop("paper", {**base, "engine": online}, 1, d, seconds)})
        if "online" in measures:
            rows.append({"measure": "online", "variant": name,
                         **our_loop("paper", {**base, "engine": online}, lockstep_seeds, d, seconds)})
    # the phases alone first: they compile the graphs of the whole run's (same shapes), whose compile is then warm
    if "curvature" in measures:
        rows += curvature_rows(data["32"], not quick, seconds)
    if "evaluation" in measures:
        rows += evaluation_rows(data["32"], not quick, seconds)
    if "whole_run" in measures:
        step = next(r for r in rows if r["measure"] == "online" and r["variant"] == "paper"
                    and r["engine"] == online and r["seeds"] == 1)
        rows.append(whole_run(data_root, online, step["samples_per_s"], whole))
    context = {"machine": platform.processor() or platform.machine(), "cpu": machine()["cpu"],
               "cpu_capability": machine()["cpu_capability"], "threads": torch.get_num_threads(),
               "torch": torch.__version__, "matmul_peak_gflops": round(peak, 1)}
    references = {(r["measure"], r["variant"]): r["samples_per_s"] for r in rows
                  if r["engine"] in ("reference", "seed blog")}
    for r in rows:
        r.update(context)
        if "gflops" in r:
            r["fraction_of_peak"] = r["gflops"] / peak
        if r["measure"] == "whole_run":
            r["vs_reference"] = r["vs_step"]
            continue
        reference = references[("seed_blog_loop", "modern")] if r["measure"] == "modern_batch64" else \
            references.get((r["measure"], r["variant"]))
        r["vs_reference"] = r["samples_per_s"] / reference
    return rows


def format_report(rows: list[dict]) -> str:
    first = rows[0]
    cpu = f"{first['cpu']} ({first['cpu_capability']}), " if first.get("cpu") else ""
    lines = [f"{cpu}threads {first['threads']}, torch {first['torch']}, matmul peak {first['matmul_peak_gflops']} GFLOP/s",
             "", f"{'measure':<15} {'variant':<18} {'engine':<10} {'batch':>5} {'seeds':>5} {'samples/s':>10} "
                 f"{'% of peak':>9} {'ratio':>6}  ratio to"]
    against_by_measure = {"modern_batch64": "the seed blog's loop", "online": "the variant's reference step",
                          "whole_run": "the compiled step (vs_step)", "curvature": "gauss_newton_diagonal",
                          "evaluation": "eager, batch 1000"}
    for r in rows:
        peak = f"{100 * r['fraction_of_peak']:.1f}" if "fraction_of_peak" in r else "-"
        against = "-" if r["engine"] in ("reference", "seed blog") else against_by_measure[r["measure"]]
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
    for r in rows:
        if r["measure"] == "whole_run":
            lines += [""] + format_whole_run(r)
    return "\n".join(lines)


def format_whole_run(r: dict) -> list[str]:
    """The phase table of a whole_run row, and the full run it implies."""
    compiled = [phase for phase, yes in r["compiled_phases"].items() if yes]
    lines = [f"whole run: paper preset, {r['passes']} passes of {r['train_size']:,} patterns ({r['updates']:,} updates, "
             f"{r['curvature_estimates']:,} curvature estimates, {r['evaluated_patterns']:,} patterns evaluated), "
             f"engine {r['engine']}" + (f", {' and '.join(compiled)} compiled too" if compiled else ""),
             f"  {'phase':<11} {'seconds':>8} {'share':>6}   full 20-pass run (from these per-unit costs)"]
    for phase, share in r["phases"].items():
        lines.append(f"  {phase:<11} {r['phases_s'][phase]:>8.1f} {100 * share:>5.1f}%   {r['full_run_s'][phase]:>7.0f} s")
    full = sum(r["full_run_s"].values())
    lines += [f"  {'compile':<11} {r['compile_s']:>8.1f}      -   {r['full_run_s']['compile']:>7.0f} s  (once per run, "
              f"not in the shares)",
              f"  end to end: {r['samples_per_s']:,.0f} updates/s, vs_step {r['vs_step']:.2f} (the compiled step: "
              f"{r['step_samples_per_s']:,.0f} samples/s)",
              f"  full 20-pass paper run: {full / 60:.1f} min, {r['full_run_vs_updates']:.2f}x the time of its "
              f"{r['full_run_s']['updates'] / 60:.1f} min of updates"]
    return lines


def main_bench(data_root, quick: bool, as_json: bool, variants: list[str] | None = None,
               measures: list[str] | None = None) -> None:
    rows = run_bench(data_root, quick, variants=variants, measures=measures)
    if as_json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(format_report(rows))
