"""The switchable building blocks of LeNet-5 (LeCun et al. 1998, Sec. II-B, App. A), one registry per switch.

Each registry maps a config value to what builds it, so `config.CHOICES`, the CLI, the model and the tests all
read the same dictionaries; every module here is a `Component` (base.py): its forward map, the hand-written
backward of the online engine, its App. C curvature rule and its connection count, in one class.

    switch       registry        module
    activation   ACTIVATIONS     activation.py
    pooling      POOLINGS        pooling.py
    c3           C3_CONNECTIONS  linear.py
    norm         NORMS           norm.py
    head         HEADS           head.py
    (loss)       LOSSES          losses.py
    input        INPUTS          input.py
    init         INITS           init.py
"""
from .activation import ACTIVATIONS, TANH_AMPLITUDE, TANH_SLOPE, Activation, ReLU, ScaledTanh, Tanh
from .base import Component
from .head import HEADS, EuclideanRBF, Head
from .init import INITS, init_default_subsampling_, init_lecun_, lecun_uniform_, unit_fan_in
from .input import BACKGROUND_LEVEL, FOREGROUND_LEVEL, INPUTS, InputField
from .linear import C3_CONNECTIONS, C3_TABLE, Conv2d, FullFieldConv2d, Linear, TableConv2d, c3_connection_mask
from .losses import (LOSSES, RBF_CURVATURE, Loss, cross_entropy_loss, map_loss, mle_loss, output_curvature,
                     rbf_curvature, softmax_curvature)
from .norm import (EVALUATION_STATISTICS, NORMS, BatchNorm2d, set_evaluation_statistics,
                   using_running_statistics)
from .pooling import POOLINGS, AvgPool, MaxPool, TrainableSubsampling

# switch -> registry; repro/config.py takes each switch's valid values from here
REGISTRIES = {"activation": ACTIVATIONS, "pooling": POOLINGS, "c3": C3_CONNECTIONS, "head": HEADS,
              "norm": NORMS, "input": INPUTS, "init": INITS}

__all__ = ["ACTIVATIONS", "BACKGROUND_LEVEL", "C3_CONNECTIONS", "C3_TABLE", "FOREGROUND_LEVEL", "HEADS", "INPUTS",
           "LOSSES", "NORMS", "POOLINGS", "RBF_CURVATURE", "REGISTRIES", "TANH_AMPLITUDE", "TANH_SLOPE", "Activation",
           "AvgPool", "BatchNorm2d", "Component", "Conv2d", "EuclideanRBF", "FullFieldConv2d", "Head", "InputField",
           "Linear", "Loss", "MaxPool", "ReLU", "ScaledTanh", "TableConv2d", "Tanh", "TrainableSubsampling",
           "INITS", "c3_connection_mask", "init_default_subsampling_", "init_lecun_", "lecun_uniform_", "unit_fan_in", "cross_entropy_loss", "map_loss", "mle_loss", "output_curvature",
           "rbf_curvature", "softmax_curvature", "EVALUATION_STATISTICS", "set_evaluation_statistics",
           "using_running_statistics"]
