"""`keras.applications.resnet_v2`: ResNet50V2/101V2/152V2 (pre-activation blocks over resnet.ResNet, Keras's
names), `preprocess_input` in tf mode."""
from __future__ import annotations

from . import imagenet_utils as iu
from . import resnet


def _variant(depth):
    def application(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=f"resnet{depth}v2"):
        return resnet.ResNet(resnet.stacks(resnet.DEPTHS[depth], v2=True), True, True, name=name,
                             weights_name=f"resnet{depth}v2", include_top=include_top, weights=weights,
                             input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                             classifier_activation=classifier_activation, app=f"ResNet{depth}V2")
    application.__name__ = application.__qualname__ = f"ResNet{depth}V2"
    application.__doc__ = (f"Keras's `keras.applications.ResNet{depth}V2`. `weights`: None, a Keras weights "
                           f"file path, or 'imagenet' (Keras's cached resnet{depth}v2 file).")
    return application


ResNet50V2, ResNet101V2, ResNet152V2 = _variant(50), _variant(101), _variant(152)
preprocess_input, decode_predictions = iu.module_functions("tf", "ResNetV2")

__all__ = ["ResNet50V2", "ResNet101V2", "ResNet152V2", "preprocess_input", "decode_predictions"]
