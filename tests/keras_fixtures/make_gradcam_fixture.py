"""Grad-CAM on Xception in real Keras 3 (run with Keras + TF; CI never runs this):

    /work/kvenv/bin/python tests/keras_fixtures/make_gradcam_fixture.py [OUT.npz] [--weights-file W.weights.h5]

Builds `keras.applications.Xception(weights=None)` at 150x150, sets every weight with the applications fixtures'
`fill` formula (random-initialised Xception's activations vanish; `fill` keeps them O(1)), and computes the
keras-io Grad-CAM heatmap of `block14_sepconv2_act` with `tf.GradientTape` for the fixtures' `images(150)`.
Writes the image, the predictions and the heatmap to gradcam_xception.npz (or OUT.npz), and
with --weights-file also the weights as a Keras `.weights.h5` (too big to commit; the keras-marked test writes it
at test time).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def make_gradcam_heatmap(img_array, model, last_conv_layer_name, pred_index=None):
    """keras-io's function (Keras 3, TensorFlow backend), unchanged."""
    import keras
    import tensorflow as tf
    grad_model = keras.models.Model(model.inputs, [model.get_layer(last_conv_layer_name).output, model.output])
    with tf.GradientTape() as tape:
        last_conv_layer_output, preds = grad_model(img_array)
        if pred_index is None:
            pred_index = tf.argmax(preds[0])
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, last_conv_layer_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    last_conv_layer_output = last_conv_layer_output[0]
    heatmap = last_conv_layer_output @ pooled_grads[..., tf.newaxis]
    heatmap = tf.squeeze(heatmap)
    heatmap = tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)
    return heatmap.numpy()


def main():
    import keras
    from make_applications_fixtures import fill, images
    out = next((a for a in sys.argv[1:] if a.endswith(".npz")), os.path.join(HERE, "gradcam_xception.npz"))
    model = keras.applications.Xception(weights=None, input_shape=(150, 150, 3))
    for i, w in enumerate(model.weights):
        w.assign(fill(i, w.path, w.shape))
    img = images(150, n=1)
    x = keras.applications.xception.preprocess_input(img.copy())
    model.layers[-1].activation = None  # keras-io: remove the last layer's softmax
    preds = model.predict(x, verbose=0)
    heatmap = make_gradcam_heatmap(x, model, "block14_sepconv2_act")
    np.savez(out, image=img, preds=preds, heatmap=heatmap, pred_index=int(np.argmax(preds[0])))
    if "--weights-file" in sys.argv:
        model.save_weights(sys.argv[sys.argv.index("--weights-file") + 1])
    print("OK", keras.__version__, heatmap.shape, float(heatmap.max()))


if __name__ == "__main__":
    main()
