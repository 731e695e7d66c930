"""Frozen run configuration: which 1998 component or modern counterpart each switch selects.

Every switch is a plain string checked against the registry that implements it (timm-style), so the CLI's
choices, the validation message and the tests all come from the same dictionaries. `PRESETS` holds the two
named configurations: `paper` (LeNet-5 as in LeCun et al. 1998, Sec. II-B) and `modern` (the seed blog's
network). Overrides are given as `key=value` strings; unknown keys and values fail with one line.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

# Valid values for each categorical switch. The modules that implement them assert they cover exactly these.
CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ("scaled_tanh", "relu", "tanh"),  # Sec. II-B / App. A squashing function vs ReLU
    "pooling": ("trainable", "max", "avg"),  # Sec. II-B trainable subsampling vs pooling
    "c3": ("table", "full"),  # Table I sparse connections vs all 6 S2 maps
    "head": ("rbf", "linear"),  # Euclidean RBF with fixed prototypes (Eq. 7) vs linear + softmax
    "norm": ("none", "batch"),  # BatchNorm after C1 and C3, as in the seed blog
    "input": ("32", "28"),  # 32x32 field in [-0.1, 1.175] (Sec. II-B) vs ToTensor's 28x28 in [0, 1]
    "init": ("lecun", "default"),  # uniform +-2.4/fan-in (App. A) vs PyTorch's default
}


class ConfigError(ValueError):
    """A configuration the project cannot run; the message names the key, the value and the fix."""


@dataclass(frozen=True)
class ModelConfig:
    """The architecture switches; defaults are the paper's choices."""

    activation: str = "scaled_tanh"
    pooling: str = "trainable"
    c3: str = "table"
    head: str = "rbf"
    norm: str = "none"
    input: str = "32"
    init: str = "lecun"

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_choice(f.name, getattr(self, f.name))


def _check_choice(key: str, value: object) -> None:
    valid = CHOICES.get(key)
    if valid is not None and value not in valid:
        raise ConfigError(f"invalid value {value!r} for {key!r}; valid choices: {', '.join(valid)}")


MODEL_PRESETS: dict[str, dict[str, str]] = {
    "paper": {},  # every default is the 1998 choice
    "modern": dict(activation="relu", pooling="max", c3="full", head="linear", norm="batch", input="28",
                   init="default"),
}


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """Turn ['c3=full', 'epochs=3'] into a dict; a pair without '=' is an error."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r} is not of the form key=value (e.g. --set c3=full)")
        out[key.strip()] = value.strip()
    return out


def coerce(cls, key: str, value: str):
    """Convert a string override to the type of `cls`'s field `key`, rejecting unknown keys."""
    types = {f.name: f.type for f in fields(cls)}
    if key not in types:
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(types)}")
    kind = types[key] if isinstance(types[key], str) else types[key].__name__
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if value.lower() in ("1", "true", "yes"):
                return True
            if value.lower() in ("0", "false", "no"):
                return False
            raise ValueError(value)
    except ValueError:
        raise ConfigError(f"invalid value {value!r} for {key!r}; expected {kind}") from None
    return value


def model_config(preset: str = "paper", overrides: dict[str, str] | None = None) -> ModelConfig:
    """Build a ModelConfig from a preset name and string overrides."""
    if preset not in MODEL_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(MODEL_PRESETS)}")
    values = dict(MODEL_PRESETS[preset])
    for key, value in (overrides or {}).items():
        values[key] = coerce(ModelConfig, key, value)
    return ModelConfig(**values)


def replace(config, **changes):
    """dataclasses.replace with the same validation as construction."""
    return dataclasses.replace(config, **changes)
