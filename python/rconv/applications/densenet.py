"""`keras.applications.densenet`: DenseNet121/169/201 with Keras's layer names (`conv1_conv`,
`conv{s}_block{b}_{0_bn,1_conv,1_bn,2_conv,concat}`, `pool{s}_{bn,conv,pool}`, `bn`, `predictions`),
`preprocess_input` in torch mode."""
from __future__ import annotations

from .. import layers
from . import imagenet_utils as iu

_EPS = 1.001e-5
BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}


def dense_block(x, blocks, name):
    for i in range(blocks):
        x = conv_block(x, 32, name=f"{name}_block{i + 1}")
    return x


def transition_block(x, reduction, name):
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(int(x.shape[3] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def conv_block(x, growth_rate, name):
    x1 = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_0_bn")(x)
    x1 = layers.Activation("relu", name=f"{name}_0_relu")(x1)
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(x1)
    x1 = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_1_bn")(x1)
    x1 = layers.Activation("relu", name=f"{name}_1_relu")(x1)
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x1)
    return layers.Concatenate(axis=3, name=f"{name}_concat")([x, x1])


def DenseNet(blocks, include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="densenet"):
    """Keras's `densenet.DenseNet` over `blocks` (the four dense blocks' sizes)."""
    blocks = tuple(blocks)
    depth = {v: k for k, v in BLOCKS.items()}.get(blocks)
    app = f"DenseNet{depth}" if depth else "DenseNet"
    iu.check_arguments(app, weights, include_top, classes, pooling)
    input_shape = iu.obtain_input_shape(input_shape, default_size=224, min_size=32, require_flatten=include_top,
                                        weights=weights, app=app)
    if weights == "imagenet" and depth is None:
        raise ValueError(f"{app}: weights_path undefined (Keras has imagenet weights for DenseNet121/169/201 only)")
    weights_path = iu.weights_file(app, weights, iu.keras_file_names(f"densenet{depth}")[0 if include_top else 1])
    img_input = iu.input_layer(input_tensor, input_shape, app)
    with iu.building(weights_path):
        x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(img_input)
        x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
        x = layers.BatchNormalization(axis=3, epsilon=_EPS, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
        x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
        for stage, n in enumerate(blocks, start=2):
            x = dense_block(x, n, name=f"conv{stage}")
            if stage < 5:
                x = transition_block(x, 0.5, name=f"pool{stage}")
        x = layers.BatchNormalization(axis=3, epsilon=_EPS, name="bn")(x)
        x = layers.Activation("relu", name="relu")(x)
        x = iu.classifier(x, include_top, pooling, classes, classifier_activation, weights, app,
                          avg_name="avg_pool", max_name="max_pool")
        return iu.finish(img_input, input_tensor, x, name, weights_path)


def _variant(depth):
    def application(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=f"densenet{depth}"):
        return DenseNet(BLOCKS[depth], include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, name=name)
    application.__name__ = application.__qualname__ = f"DenseNet{depth}"
    application.__doc__ = (f"Keras's `keras.applications.DenseNet{depth}`. `weights`: None, a Keras weights "
                           f"file path, or 'imagenet' (Keras's cached densenet{depth} file).")
    return application


DenseNet121, DenseNet169, DenseNet201 = _variant(121), _variant(169), _variant(201)
preprocess_input, decode_predictions = iu.module_functions("torch", "DenseNet")

__all__ = ["DenseNet121", "DenseNet169", "DenseNet201", "preprocess_input", "decode_predictions"]
