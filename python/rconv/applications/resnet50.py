"""`keras.applications.resnet50` (Keras's alias module of resnet.ResNet50)."""
from .resnet import ResNet50, decode_predictions, preprocess_input

__all__ = ["ResNet50", "preprocess_input", "decode_predictions"]
