"""rconv: Keras-compatible convnets with a multithreaded Rust core.

`import rconv as keras` gives the Keras names: `keras.Sequential`, `keras.layers.Dense`, ...
"""
from . import distribution  # first: MPI ranks sharing a machine split its cores before the Rust core starts
from . import ops
from . import activations, backend, callbacks, config, constraints, initializers, regularizers
from . import layers, losses, metrics, mixed_precision, models, optimizers, utils
from . import saving
from . import applications
from .autograd import GradientTape
from .keras_tensor import KerasTensor
from .layers import Input
from .models import Model, Sequential
from .variables import Variable

__version__ = "0.1.0"


def __getattr__(name):
    # Imported lazily: they may touch the filesystem or need optional packages (Pillow).
    if name in ("datasets", "preprocessing"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'rconv' has no attribute {name!r}")
