"""Hand-written C kernels, compiled at their first use with the machine's C compiler and loaded through ctypes.

Issue 29: where torch's kernels are slow on LeNet-5's small shapes (C1's single input map, the elementwise work
around C1 and S2), a loop over one pattern at a time, in cache, does the same arithmetic faster. Each kernel is
plain C (no Python or torch headers, so it compiles in well under a second) built for the instruction set
torch's own CPU kernels dispatch to (`torch.backends.cpu.get_cpu_capability()`), so that it rounds the same on
every machine of the kind that repro/provenance.py records. The shared object is cached under
$LENET5_KERNEL_CACHE (default ~/.cache/lenet5-repro/kernels), keyed by the source, the flags and the compiler.

A kernel is an optimisation, never a requirement: with no C compiler ($CC, else cc), a failed build, or
LENET5_NATIVE_KERNELS=0, `load` returns None and the caller keeps its torch code (tests hold the two equal).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE_DIR = Path(__file__).resolve().parent
# The instruction sets torch dispatches to, as compiler flags, and the patterns a kernel takes at once (LANES: one
# vector register of floats); anything else builds for the plain x86-64/ARM baseline, which every machine runs.
ISA_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-DLANES=16"],
    "AVX2": ["-mavx2", "-mfma", "-DLANES=8"],
}
BASELINE_FLAGS = ["-DLANES=4"]
# -fno-math-errno and -fno-trapping-math let GCC vectorise fabsf and the selects of a clamp; neither changes a
# result (no kernel reads errno or traps on floating-point exceptions).
BASE_FLAGS = ["-O3", "-std=c11", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math"]

_loaded: dict[str, ctypes.CDLL | None] = {}


def enabled() -> bool:
    """False where LENET5_NATIVE_KERNELS=0: every caller then keeps its torch code."""
    return os.environ.get("LENET5_NATIVE_KERNELS", "1") != "0"


def cache_dir() -> Path:
    return Path(os.environ.get("LENET5_KERNEL_CACHE") or Path.home() / ".cache" / "lenet5-repro" / "kernels")


def build_flags() -> list[str]:
    return BASE_FLAGS + ISA_FLAGS.get(torch.backends.cpu.get_cpu_capability(), BASELINE_FLAGS)


def _compiler() -> list[str] | None:
    """$CC (which may hold arguments, as "ccache gcc"), else cc; None where it is not on PATH."""
    command = shlex.split(os.environ.get("CC") or "cc")
    found = shutil.which(command[0]) if command else None
    return [found, *command[1:]] if found else None


def _build(name: str, compiler: list[str]) -> Path:
    source = (SOURCE_DIR / f"{name}.c").read_bytes()
    flags = build_flags()
    version = subprocess.run([*compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256(b"\0".join([source, " ".join(flags).encode(), version.encode()])).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # built beside the target and renamed over it: processes that build at once each leave a whole library
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        subprocess.run([*compiler, *flags, "-o", str(built), str(SOURCE_DIR / f"{name}.c"), "-lm"], check=True,
                       capture_output=True, text=True, timeout=120)
        os.replace(built, target)
    return target


def load(name: str) -> ctypes.CDLL | None:
    """The kernel library repro/kernels/`name`.c, built if need be; None where it cannot be (module docstring),
    with one warning naming why."""
    if not enabled():
        return None
    if name not in _loaded:
        compiler = _compiler()
        library = None
        try:
            if compiler is None:
                raise OSError(f"no C compiler ({os.environ.get('CC') or 'cc'}) on PATH")
            library = ctypes.CDLL(str(_build(name, compiler)))
        except (OSError, subprocess.SubprocessError) as e:
            warnings.warn(f"the C kernel {name}.c is not available ({_reason(e)}); using torch's kernels instead "
                          f"(slower; set CC to a C compiler to build it)", RuntimeWarning, stacklevel=2)
        _loaded[name] = library
    return _loaded[name]


def _reason(error: Exception) -> str:
    """One line: the compiler's first error line, else the error's own message."""
    detail = getattr(error, "stderr", None) or ""
    if isinstance(detail, bytes):
        detail = detail.decode(errors="replace")
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    first_error = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    return first_error or str(error) or type(error).__name__


def pointer(t: torch.Tensor) -> ctypes.c_void_p:
    """The address of a contiguous CPU tensor's data, for a kernel argument."""
    if not t.is_contiguous() or t.device.type != "cpu":
        raise ValueError("a kernel argument must be a contiguous CPU tensor")
    return ctypes.c_void_p(t.data_ptr())
