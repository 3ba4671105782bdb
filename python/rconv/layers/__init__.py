"""Keras-compatible layers (NHWC, float32), each with an explicit backward pass."""
from .. import registry
from .augmentation import RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from .conv import Conv2D
from .core import Activation, Dropout, Flatten, Input, InputLayer, ReLU, Rescaling, Softmax
from .dense import Dense
from .global_pooling import GlobalAveragePooling2D, GlobalAvgPool2D, GlobalMaxPool2D, GlobalMaxPooling2D
from .layer import Layer
from .merging import Add, Concatenate
from .normalization import BatchNormalization, LayerNormalization
from .pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D

Convolution2D = Conv2D

__all__ = ["Layer", "Conv2D", "Convolution2D", "Dense", "MaxPooling2D", "MaxPool2D", "AveragePooling2D",
           "AvgPool2D", "Input", "InputLayer", "Flatten", "Dropout", "Activation", "ReLU", "Softmax",
           "Rescaling", "Add", "Concatenate", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
           "RandomContrast", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D",
           "BatchNormalization", "LayerNormalization"]


def get(class_name: str):
    """Layer class by its Keras class name or alias (used when rebuilding models from configs). Only
    registered layers resolve: never the abstract `Layer`, private bases or arbitrary module globals."""
    return registry.get("layers", class_name)
