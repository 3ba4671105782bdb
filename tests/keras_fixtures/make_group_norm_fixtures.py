"""Generate the real-Keras GroupNormalization fixture (run with a Python that has Keras 3 + TF).

    /work/kvenv/bin/python tests/keras_fixtures/make_group_norm_fixtures.py     # writes into tests/keras_fixtures/

`group_norm_expected.npz` holds, for each case in CASES (prefix `<case>_`): the input `x`, the weights
`gamma`/`beta` set on the layer, Keras's output `y`, a cotangent `g` and Keras's gradients of sum(y * g)
(TensorFlow autodiff) with respect to the input (`dx`), gamma (`dgamma`) and beta (`dbeta`).
`group_norm.keras` / `group_norm.h5`: a small model (Conv2D -> GroupNormalization(groups=2) -> pooling ->
Dense) saved by Keras, with `model_x` / `model_y` (its predictions) in the same .npz.
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))

# name: (layer kwargs, input shape)
CASES = {
    "rank4_groups3": ({"groups": 3}, (2, 5, 4, 6)),
    "instance_axis1": ({"groups": -1, "axis": 1, "epsilon": 1e-2}, (2, 4, 3, 3)),
    "rank2_no_center": ({"groups": 2, "center": False}, (3, 8)),
    "batch1_one_group": ({"groups": 1}, (1, 3, 5)),
}


def main():
    import keras
    import tensorflow as tf
    rng = np.random.default_rng(13)
    arrays, configs = {}, {}
    for name, (kwargs, shape) in CASES.items():
        layer = keras.layers.GroupNormalization(**kwargs)
        x = (rng.standard_normal(shape) * 2.0 + 0.5).astype(np.float32)
        layer.build(shape)
        weights = [rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.weights]
        layer.set_weights(weights)
        g = rng.standard_normal(shape).astype(np.float32)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt)
            loss = tf.reduce_sum(y * g)
        grads = tape.gradient(loss, [xt] + layer.trainable_weights)
        arrays.update({f"{name}_x": x, f"{name}_y": y.numpy(), f"{name}_g": g, f"{name}_dx": grads[0].numpy()})
        for w, value, grad in zip(layer.weights, weights, grads[1:]):
            arrays[f"{name}_{w.name}"] = value
            arrays[f"{name}_d{w.name}"] = grad.numpy()
        configs[name] = layer.get_config()

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3), name="image")
    h = keras.layers.Conv2D(4, 3, name="conv")(inp)
    h = keras.layers.GroupNormalization(groups=2, epsilon=1e-2, name="gn")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(3, activation="softmax", name="probs")(h)
    model = keras.Model(inp, out, name="group_norm")
    gn = model.get_layer("gn")
    gn.set_weights([rng.uniform(0.5, 1.5, (4,)).astype(np.float32), rng.uniform(-1, 1, (4,)).astype(np.float32)])
    model_x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    arrays["model_x"], arrays["model_y"] = model_x, model.predict(model_x, verbose=0)
    model.save(os.path.join(OUT, "group_norm.keras"))
    model.save(os.path.join(OUT, "group_norm.h5"))
    np.savez(os.path.join(OUT, "group_norm_expected.npz"), **arrays)
    with open(os.path.join(OUT, "group_norm_configs.json"), "w") as f:
        json.dump({"keras": keras.__version__, "configs": configs}, f, indent=1, sort_keys=True)
    print("wrote", sorted(arrays))


if __name__ == "__main__":
    main()
