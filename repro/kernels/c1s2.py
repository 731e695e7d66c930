"""SDLM's curvature estimate for LeNet-5's first block (C1 -> squash -> S2 -> squash) in C (repro/kernels/c1s2.c).

On 500 patterns, oneDNN runs C1's convolution and its weight curvature (one input map) at a quarter of its rate
on C3's shapes, and inductor's fused kernels around C1 and S2 write in the layouts oneDNN asks for, with strided
scalar stores: together three fifths of the compiled estimate before this kernel (docs/speed.md). The C kernel
takes the patterns in groups as wide as a vector register through the block in cache, forward and back, with
App. C's rules (repro/components/: Conv2d, the activations, TrainableSubsampling). In compiled runs
`CurvatureEstimator` (repro/sdlm.py) and the `Evaluator` (repro/evaluation.py) use it for the networks it covers;
tests/test_c1s2_kernel.py holds it equal to `gauss_newton_diagonal` for every switch value it covers, and lists
those it does not (they keep the torch code).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..components.activation import TANH_AMPLITUDE, TANH_SLOPE, ReLU, ScaledTanh, Tanh
from ..components.linear import Conv2d
from ..components.pooling import TrainableSubsampling
from . import load, pointer

KERNEL = 5
OUT = 28  # C1's map size, fixed in the C kernel (its OUT)
# activation class -> (the kernel's act code, amplitude A, slope S) of f(a) = A tanh(S a), or ReLU
ACTIVATION_CODES = {ScaledTanh: (0, TANH_AMPLITUDE, TANH_SLOPE), Tanh: (0, 1.0, 1.0), ReLU: (1, 0.0, 0.0)}
PROFILE_NAME = "c1s2_kernel"  # what torch.profiler calls its time (experiments/profile_curvature.py)
FLOAT, INT, I64, PTR = ctypes.c_float, ctypes.c_int, ctypes.c_int64, ctypes.c_void_p


def _signatures(library: ctypes.CDLL) -> ctypes.CDLL:
    library.c1s2_lanes.argtypes, library.c1s2_lanes.restype = [], INT
    library.c1s2_forward.argtypes = [PTR, I64, INT, PTR, PTR, PTR, PTR, INT, FLOAT, FLOAT, PTR, PTR]
    library.c1s2_curvature.argtypes = [PTR, I64, INT, PTR, PTR, PTR, PTR, INT, FLOAT, FLOAT,
                                       PTR, PTR, PTR, PTR]
    library.c1s2_forward.restype = library.c1s2_curvature.restype = INT  # 0, or -1: out of memory
    return library


def _checked(status: int) -> None:
    if status != 0:
        raise MemoryError("the C1-S2 kernel could not allocate its buffers (a few hundred kB): free some memory, "
                          "or set LENET5_NATIVE_KERNELS=0")


@dataclass
class C1S2Block:
    """The first four layers of a network when they are a block the kernel computes: a 5x5 convolution with a
    bias from one input map (C1, any padding), an activation it knows, the trainable subsampling (S2), the same
    activation; float32 parameters."""

    LAYERS = 4  # C1, its squashing, S2, its squashing
    conv: Conv2d
    subsampling: TrainableSubsampling
    act: tuple[int, float, float]
    library: ctypes.CDLL
    in_shape: tuple[int, ...]  # one input pattern's, before C1's padding

    @classmethod
    def match(cls, layers: list) -> C1S2Block | None:
        """The block at the start of `layers` (repro/layers.py), or None where it is not one the kernel computes
        or the kernel cannot be built (repro/kernels/__init__.py)."""
        if len(layers) <= cls.LAYERS:
            return None
        conv, act1, sub, act2 = (layer.module for layer in layers[:4])
        if not (type(conv) is Conv2d and conv.in_channels == 1 and conv.kernel_size == (KERNEL, KERNEL)
                and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and isinstance(conv.padding, tuple) and conv.padding[0] == conv.padding[1]
                and conv.padding_mode == "zeros" and conv.bias is not None):
            return None
        if type(sub) is not TrainableSubsampling or type(act1) not in ACTIVATION_CODES or type(act2) is not type(act1):
            return None
        maps = (conv.out_channels,)
        if sub.coefficient.shape != maps or sub.bias.shape != maps:  # torch would broadcast one coefficient
            return None
        if any(p.dtype != torch.float32 or p.device.type != "cpu"
               for p in (conv.weight, conv.bias, sub.coefficient, sub.bias)):
            return None
        size = layers[0].in_shape[-1] + 2 * conv.padding[0] - KERNEL + 1
        if layers[0].in_shape[-2] != layers[0].in_shape[-1] or size != OUT:
            return None
        library = load("c1s2")
        if library is None:
            return None
        return cls(conv, sub, ACTIVATION_CODES[type(act1)], _signatures(library), tuple(layers[0].in_shape))

    @property
    def params(self) -> tuple[torch.nn.Parameter, ...]:
        return self.conv.weight, self.conv.bias, self.subsampling.coefficient, self.subsampling.bias

    def forward(self, x: torch.Tensor, keep_c1: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(the padded input, C1's squashed output y1 in the kernel's groups of patterns (None unless
        `keep_c1`), S2's squashed output y2 (n, maps, 14, 14)) for x of shape (n, 1, in, in)."""
        if x.dtype != torch.float32 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"expected float32 input of shape (N, {', '.join(map(str, self.in_shape))}), got "
                             f"{x.dtype} {tuple(x.shape)}")
        pad = self.conv.padding[0]
        x = (F.pad(x, (pad,) * 4) if pad else x).contiguous()
        n, maps = x.shape[0], self.conv.out_channels
        lanes = self.library.c1s2_lanes()  # the kernel keeps C1's output in groups of this many patterns
        y1 = x.new_empty(-(-n // lanes), maps, OUT, OUT, lanes) if keep_c1 else None
        y2 = x.new_empty(n, maps, OUT // 2, OUT // 2)
        weight, bias = self.conv.weight.detach().contiguous(), self.conv.bias.detach().contiguous()
        coefficient, s2_bias = self.subsampling.coefficient.detach().contiguous(), self.subsampling.bias.detach().contiguous()
        with torch.profiler.record_function(PROFILE_NAME):
            _checked(self.library.c1s2_forward(pointer(x), n, maps, pointer(weight), pointer(bias), pointer(coefficient),
                                      pointer(s2_bias), *self.act, pointer(y1) if keep_c1 else None, pointer(y2)))
        return x, y1, y2

    @staticmethod
    def c1_output(y1: torch.Tensor, n: int) -> torch.Tensor:
        """`forward`'s y1 as the model's C1 output, (n, maps, 28, 28)."""
        return y1.permute(0, 4, 1, 2, 3).reshape(-1, *y1.shape[1:4])[:n]

    def after(self, layers: list, y2: torch.Tensor) -> torch.Tensor:
        """The network's output from S2's output: `layers` (repro/layers.py) after the block."""
        h, n = y2, y2.shape[0]
        for layer in layers[self.LAYERS:]:
            h = layer.module(h.reshape(n, *layer.in_shape))
        return h

    def curvature(self, x: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor,
                  h_y2: torch.Tensor) -> list[torch.Tensor]:
        """App. C's h, summed over the patterns, for `params` (C1's weight and bias, S2's coefficient and bias),
        given d2E/dy2^2 at S2's output, from `forward`'s tensors."""
        maps = y1.shape[1]
        h_y2 = h_y2.to(torch.float32).contiguous()
        coefficient = self.subsampling.coefficient.detach().contiguous()
        h = [torch.zeros(maps * KERNEL * KERNEL, dtype=torch.float64)] + [
            torch.zeros(maps, dtype=torch.float64) for _ in range(3)]
        with torch.profiler.record_function(PROFILE_NAME):
            _checked(self.library.c1s2_curvature(pointer(x), x.shape[0], maps, pointer(coefficient), pointer(y1),
                                                 pointer(y2), pointer(h_y2), *self.act, *(pointer(t) for t in h)))
        return [t.to(p.dtype).view_as(p) for t, p in zip(h, self.params)]
