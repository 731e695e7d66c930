"""What made a run: the code's commit and the machine, recorded in every summary.json and grid row.

Online training turns rounding into a trajectory: the same config and seed give the same numbers bit for bit
only with the same code on the same kind of machine (CPU model and the instruction set torch dispatches to);
elsewhere they agree statistically (docs/reproduction.md). These fields say which case a comparison is.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE_DIR.parent), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.lru_cache(maxsize=1)
def code_commit() -> dict:
    """{"commit": the checkout's HEAD, or "unknown" outside a git checkout (an installed wheel), "code_dirty":
    whether the package's files differ from that commit (None when unknown)}."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown", "code_dirty": None}
    changes = _git("status", "--porcelain", "--untracked-files=no", "--", PACKAGE_DIR.name)
    return {"commit": commit, "code_dirty": bool(changes)}


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """The kind of machine: CPU model, the instruction set torch's CPU kernels dispatch to, cores, torch."""
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cores": os.cpu_count(), "torch": torch.__version__}


# What makes two runs of one config and seed comparable bit for bit: the same code on the same kind of machine
# (grid rows hold these fields flat; a summary holds the commit and, under "machine", the other two).
MAKING = ("commit", "cpu", "cpu_capability")


def making_of(record: dict) -> dict:
    """The MAKING fields of a grid row or of a summary.json (None for a field a run made before runs recorded it
    lacks)."""
    machine_fields = record.get("machine") or {}
    return {k: record.get(k, machine_fields.get(k)) for k in MAKING}


def this_making() -> dict:
    """The MAKING fields of a run this process would make."""
    return {"commit": code_commit()["commit"], "cpu": machine()["cpu"], "cpu_capability": machine()["cpu_capability"]}


def provenance() -> dict:
    """Both, as one summary field set: commit, code_dirty, machine."""
    return {**code_commit(), "machine": machine()}
