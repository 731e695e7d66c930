"""lenet5-repro: a paper-faithful reproduction of LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998)."""
import logging

# torch.compile's C++ back end imports torch.utils.cpp_extension, which warns "No CUDA runtime is found" on
# every CPU-only machine, once per process, over the progress bar; this project never uses CUDA, so it says nothing
logging.getLogger("torch.utils.cpp_extension").addFilter(lambda record: "No CUDA runtime" not in record.getMessage())

from .config import ConfigError, ModelConfig, model_config
from .model import LeNet5
from .pretrained import pretrained

__all__ = ["ConfigError", "LeNet5", "ModelConfig", "model_config", "pretrained"]
__version__ = "0.1.0"
