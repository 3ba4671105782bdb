"""Keras-compatible layers (NHWC, float32), each with an explicit backward pass. Every module lists its public
names in `__all__`; this package re-exports them all."""
from .. import registry
from . import activations
from . import augmentation
from . import conv
from . import conv_transpose
from . import core
from . import dense
from . import depthwise_conv
from . import global_pooling
from . import image_preprocessing
from . import lambda_layer
from . import merging
from . import normalization
from . import normalization_preprocessing
from . import pooling
from . import regularization
from . import reshaping
from .activations import *  # noqa: F403
from .augmentation import *  # noqa: F403
from .conv import *  # noqa: F403
from .conv_transpose import *  # noqa: F403
from .core import *  # noqa: F403
from .dense import *  # noqa: F403
from .depthwise_conv import *  # noqa: F403
from .global_pooling import *  # noqa: F403
from .image_preprocessing import *  # noqa: F403
from .lambda_layer import *  # noqa: F403
from .merging import *  # noqa: F403
from .normalization import *  # noqa: F403
from .normalization_preprocessing import *  # noqa: F403
from .pooling import *  # noqa: F403
from .regularization import *  # noqa: F403
from .reshaping import *  # noqa: F403
from .layer import Layer

__all__ = [
    "Layer", *activations.__all__, *augmentation.__all__, *conv.__all__, *conv_transpose.__all__, *core.__all__,
    *dense.__all__, *depthwise_conv.__all__, *global_pooling.__all__, *image_preprocessing.__all__,
    *lambda_layer.__all__, *merging.__all__, *normalization.__all__, *normalization_preprocessing.__all__,
    *pooling.__all__, *regularization.__all__, *reshaping.__all__,
]


def get(class_name: str):
    """Layer class by its Keras class name or alias (used when rebuilding models from configs). Only
    registered layers resolve: never the abstract `Layer`, private bases or arbitrary module globals."""
    return registry.get("layers", class_name)
