"""`keras.applications.resnet` (ResNet50/101/152) and the builder ResNetV2 shares (resnet_v2.py), as Keras's
resnet.py: layer names `conv1_conv`, `conv{s}_block{b}_{i}_conv|bn`, `..._add`, `..._out`, `avg_pool`,
`predictions`, so Keras's weight files load; `preprocess_input` in caffe mode."""
from __future__ import annotations

from .. import layers
from . import imagenet_utils as iu

_EPS = 1.001e-5


def _bn(name):
    return layers.BatchNormalization(axis=3, epsilon=_EPS, name=name)


def ResNet(stack_fn, preact, use_bias, include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
           pooling=None, classes=1000, classifier_activation="softmax", name="resnet", weights_name=None, app=None):
    """Keras's `resnet.ResNet`: stem, `stack_fn`, (pre-activation: `post_bn`/`post_relu`), head."""
    app = app or name
    iu.check_arguments(app, weights, include_top, classes, pooling)
    input_shape = iu.obtain_input_shape(input_shape, default_size=224, min_size=32, require_flatten=include_top,
                                        weights=weights, app=app)
    weights_path = None
    if weights == "imagenet" and weights_name is None:
        raise ValueError(f"{app}: Keras has no imagenet weights for this architecture")
    if weights is not None:
        weights_path = iu.weights_file(app, weights, iu.keras_file_names(weights_name or name)[0 if include_top else 1])
    img_input = iu.input_layer(input_tensor, input_shape, app)
    with iu.building(weights_path):
        x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
        x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
        if not preact:
            x = _bn("conv1_bn")(x)
            x = layers.Activation("relu", name="conv1_relu")(x)
        x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
        x = stack_fn(x)
        if preact:
            x = _bn("post_bn")(x)
            x = layers.Activation("relu", name="post_relu")(x)
        x = iu.classifier(x, include_top, pooling, classes, classifier_activation, weights, app,
                          avg_name="avg_pool", max_name="max_pool")
        return iu.finish(img_input, input_tensor, x, name, weights_path)


def residual_block_v1(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = _bn(f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = _bn(f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_2_conv")(x)
    x = _bn(f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = _bn(f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x, filters, blocks, stride1=2, name=None):
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def residual_block_v2(x, filters, kernel_size=3, stride=1, conv_shortcut=False, name=None):
    preact = _bn(f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = _bn(f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=stride, use_bias=False, name=f"{name}_2_conv")(x)
    x = _bn(f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def stack_residual_blocks_v2(x, filters, blocks, stride1=2, name=None):
    x = residual_block_v2(x, filters, conv_shortcut=True, name=f"{name}_block1")
    for i in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{i}")
    return residual_block_v2(x, filters, stride=stride1, name=f"{name}_block{blocks}")


def stacks(depths, v2=False):
    """The four stages conv2..conv5 with `depths` blocks each (Keras's per-model `stack_fn`)."""
    def stack_fn(x):
        if v2:
            for i, (filters, n) in enumerate(zip((64, 128, 256, 512), depths)):
                x = stack_residual_blocks_v2(x, filters, n, stride1=1 if i == 3 else 2, name=f"conv{i + 2}")
        else:
            for i, (filters, n) in enumerate(zip((64, 128, 256, 512), depths)):
                x = stack_residual_blocks_v1(x, filters, n, stride1=1 if i == 0 else 2, name=f"conv{i + 2}")
        return x
    return stack_fn


DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _variant(depth):
    def application(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=f"resnet{depth}"):
        return ResNet(stacks(DEPTHS[depth]), False, True, name=name, weights_name=f"resnet{depth}",
                      include_top=include_top, weights=weights, input_tensor=input_tensor,
                      input_shape=input_shape, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation, app=f"ResNet{depth}")
    application.__name__ = application.__qualname__ = f"ResNet{depth}"
    application.__doc__ = (f"Keras's `keras.applications.ResNet{depth}`. `weights`: None, a Keras weights file "
                           f"path, or 'imagenet' (Keras's cached resnet{depth} file).")
    return application


ResNet50, ResNet101, ResNet152 = _variant(50), _variant(101), _variant(152)
preprocess_input, decode_predictions = iu.module_functions("caffe", "ResNet")

__all__ = ["ResNet50", "ResNet101", "ResNet152", "preprocess_input", "decode_predictions"]
