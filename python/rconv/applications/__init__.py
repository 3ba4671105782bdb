"""Keras applications (keras.applications): architectures with Keras's layer names and weight order, so
Keras weight files load; each family module has `preprocess_input` and `decode_predictions` (the ImageNet
class index ships with rconv)."""
from . import (densenet, efficientnet, imagenet_utils, inception_v3, mobilenet_v2, resnet, resnet50, resnet_v2,
               vgg16, vgg19, xception)
from .densenet import DenseNet121, DenseNet169, DenseNet201
from .efficientnet import (EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3, EfficientNetB4,
                           EfficientNetB5, EfficientNetB6, EfficientNetB7)
from .inception_v3 import InceptionV3
from .mobilenet_v2 import MobileNetV2
from .resnet import ResNet50, ResNet101, ResNet152
from .resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from .vgg16 import VGG16
from .vgg19 import VGG19
from .xception import Xception

__all__ = ["DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1", "EfficientNetB2",
           "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "InceptionV3",
           "MobileNetV2", "ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2", "VGG16",
           "VGG19", "Xception",
           "densenet", "efficientnet", "imagenet_utils", "inception_v3", "mobilenet_v2", "resnet", "resnet50",
           "resnet_v2", "vgg16", "vgg19", "xception"]
