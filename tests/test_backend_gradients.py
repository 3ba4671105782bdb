"""Keras 2's `backend.gradients` / `backend.function` (Deep Learning with Python, 1st edition, 5.4): filter
visualization by gradient ascent and the first edition's Grad-CAM, checked against the GradientTape and finite
differences."""
import numpy as np
import pytest

import rconv
from rconv import layers, ops
from rconv import backend as K


def _convnet(seed=0):
    rconv.utils.set_random_seed(seed)
    return rconv.Sequential([rconv.Input((9, 9, 3)), layers.Conv2D(4, 3, activation="relu", name="conv1"),
                             layers.Conv2D(5, 3, activation="tanh", name="conv2"), layers.Flatten(),
                             layers.Dense(3, activation="softmax", name="probs")])


def test_filter_visualization_gradients():
    model = _convnet()
    layer_output = model.get_layer("conv2").output
    loss = K.mean(layer_output[:, :, :, 1])
    grads = K.gradients(loss, model.input)[0]
    grads /= (K.sqrt(K.mean(K.square(grads))) + 1e-5)
    iterate = K.function([model.input], [loss, grads])
    x = np.random.default_rng(0).random((1, 9, 9, 3)).astype(np.float32)
    loss_value, grads_value = iterate([x])
    # The same with the tape.
    extractor = rconv.Model(model.inputs, layer_output)
    with rconv.GradientTape() as tape:
        tape.watch(x)
        tape_loss = ops.mean(extractor(x)[:, :, :, 1])
    g = tape.gradient(tape_loss, x)
    np.testing.assert_allclose(loss_value, tape_loss, rtol=1e-6)
    np.testing.assert_allclose(grads_value, g / (np.sqrt(np.mean(g ** 2)) + 1e-5), rtol=1e-5, atol=1e-6)
    # and finite differences of the loss
    eps, idx = 1e-3, (0, 4, 4, 2)
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    num = (iterate([xp])[0] - iterate([xm])[0]) / (2 * eps)
    np.testing.assert_allclose(g[idx], num, rtol=2e-3, atol=1e-5)
    # gradient ascent raises the activation
    step = x.copy()
    for _ in range(5):
        _, gv = iterate([step])
        step += 0.1 * gv
    assert iterate([step])[0] > loss_value


def test_first_edition_grad_cam():
    model = _convnet(1)
    class_output = model.output[:, 2]
    conv = model.get_layer("conv2")
    grads = K.gradients(class_output, conv.output)[0]
    pooled_grads = K.mean(grads, axis=(0, 1, 2))
    iterate = K.function([model.input], [pooled_grads, conv.output[0]])
    x = np.random.default_rng(1).random((1, 9, 9, 3)).astype(np.float32)
    pooled, conv_value = iterate([x])
    grad_model = rconv.Model(model.inputs, [conv.output, model.output])
    with rconv.GradientTape() as tape:
        conv_out, preds = grad_model(x)
        tape.watch(conv_out)
        top = preds[:, 2]
    g = tape.gradient(top, conv_out)
    np.testing.assert_allclose(pooled, g.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(conv_value, np.asarray(conv_out)[0], rtol=1e-6)
    assert pooled.shape == (5,) and np.abs(pooled).sum() > 0


def test_function_without_gradients_and_errors():
    model = _convnet()
    f = K.function([model.input], [model.get_layer("conv1").output, model.output])
    x = np.random.default_rng(2).random((2, 9, 9, 3)).astype(np.float32)
    a, b = f([x])
    np.testing.assert_allclose(b, model.predict(x, verbose=0), rtol=1e-6)
    assert a.shape == (2, 7, 7, 4)
    with pytest.raises(ValueError, match="expects 1 input"):
        f([x, x])
    with pytest.raises(TypeError, match="symbolic"):
        K.gradients(np.ones(3), model.input)
