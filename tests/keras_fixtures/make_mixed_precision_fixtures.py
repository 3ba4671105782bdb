"""Generate the real-Keras mixed-precision fixtures (run with a Python that has Keras 3 + TF).

    /work/kvenv/bin/python tests/keras_fixtures/make_mixed_precision_fixtures.py     # writes into tests/keras_fixtures/

`mixed_bfloat16.keras`: a small convnet built under `keras.mixed_precision.set_global_policy("mixed_bfloat16")`
with its softmax layer kept in float32 (`dtype="float32"`), saved by Keras. `mixed_bfloat16_expected.npz`:
inputs `x`, Keras's (bfloat16-activation) predictions `y`. `mixed_precision_configs.json`: what Keras
writes and reports for policies and layers (config "dtype" entries, compute/variable dtypes, reprs).
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))


def main():
    import keras
    keras.utils.set_random_seed(3)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    inputs = keras.Input((12, 12, 4), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(24, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(5, activation="softmax", dtype="float32", name="probs")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 12, 12, 4)).astype(np.float32)
    model.save(os.path.join(OUT, "mixed_bfloat16.keras"))
    y = np.asarray(model.predict(x, verbose=0), np.float32)
    np.savez(os.path.join(OUT, "mixed_bfloat16_expected.npz"), x=x, y=y)
    info = {
        "conv1_dtype_config": model.get_layer("conv1").get_config()["dtype"],
        "probs_dtype_config": model.get_layer("probs").get_config()["dtype"],
        "layers": {layer.name: [layer.dtype_policy.name, layer.compute_dtype, layer.variable_dtype, layer.dtype]
                   for layer in model.layers},
        "policies": {name: [repr(p), p.compute_dtype, p.variable_dtype, p.get_config()]
                     for name, p in ((n, keras.DTypePolicy(n)) for n in ("float32", "mixed_bfloat16", "bfloat16",
                                                                            "mixed_float16", "float16", "float64"))},
        "global_policy": repr(keras.mixed_precision.global_policy()),
        "serialized": keras.dtype_policies.serialize(keras.DTypePolicy("mixed_bfloat16")),
        "variables": [str(v.dtype) for v in model.weights],
    }
    keras.mixed_precision.set_global_policy("float32")
    info["global_after_reset"] = repr(keras.config.dtype_policy())
    with open(os.path.join(OUT, "mixed_precision_configs.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
