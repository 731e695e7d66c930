"""lenet5-repro: a paper-faithful reproduction of LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998)."""
from .config import ConfigError, ModelConfig, model_config
from .model import LeNet5
from .pretrained import pretrained

__all__ = ["ConfigError", "LeNet5", "ModelConfig", "model_config", "pretrained"]
__version__ = "0.1.0"
