"""Load a saved model (e.g. one rconv wrote) in real Keras 3 and check its predictions.

    python check_in_keras.py MODEL.keras|MODEL.h5 INPUTS.npz EXPECTED.npz [--train TRAIN.npz] [--atol 1e-5] [--strict]

Run it with a Python that has keras (+ a backend, e.g. tensorflow); it needs nothing from rconv.

* INPUTS.npz holds one array per model input, keyed by the input's name (the `Input(name=...)` /
  InputLayer name, or the dict key for a model built with `inputs={...}`). A single-input model also
  accepts the key `x`. Extra keys are ignored, so one npz can hold inputs and expectations.
* EXPECTED.npz holds the expected predictions, keyed by output name (the output layer's name, or the dict
  key for `outputs={...}`); a single-output model also accepts the key `y`. Extra keys are ignored.
  Arrays saved positionally (`np.savez(f, x0, x1)` -> `arr_0`, `arr_1`) are taken in model order.
* `--train TRAIN.npz`: also resume training from the saved optimizer state. TRAIN.npz holds the training
  inputs (by input name), the targets (by output name) and `after_<output>`: the predictions on INPUTS after
  one `train_on_batch` from the saved state. Checks them too (needs a compiled save).
* A legacy .h5 whose training_config Keras 3 itself cannot compile from ("mse"/"mae" shorthands,
  keras-team/keras#19330) is reloaded with compile=False and a printed note (so `--train` then fails).
* `--strict`: warnings raised while loading (e.g. "Skipping variable loading for optimizer", "compiled
  metrics have yet to be built") fail the check; without it they are printed.

Prints `OK` and exits 0 when every prediction is within `--atol` (default 1e-5) of the expected one;
otherwise prints what differs and exits 1.
"""
import argparse
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np


def _tensor_name(t):
    history = getattr(t, "_keras_history", None)
    return history.operation.name if history is not None else t.name


def io_names(model, struct_attr, tensors):
    """(names, is_dict): a model built from dicts is keyed by its dict keys, else by layer names."""
    struct = getattr(model, struct_attr, None)
    if isinstance(struct, dict):
        return list(struct.keys()), True
    return [_tensor_name(t) for t in tensors], False


def pick(npz, names, single_key, what, path):
    """The arrays for `names` from `npz`, by name, by the single-io key, or positionally (arr_0, ...)."""
    keys = list(npz.keys())
    if all(n in keys for n in names):
        return [npz[n] for n in names]
    if len(names) == 1 and single_key in keys:
        return [npz[single_key]]
    positional = [f"arr_{i}" for i in range(len(names))]
    if all(k in keys for k in positional):
        return [npz[k] for k in positional]
    raise SystemExit(f"{path}: no arrays for the model's {what} {names} (keys: {keys}; expected those names, "
                     f"'{single_key}' for a single {what[:-1]}, or arr_0..arr_{len(names) - 1})")


def as_model_structure(arrays, names, is_dict):
    if is_dict:
        return dict(zip(names, arrays))
    return arrays[0] if len(arrays) == 1 else list(arrays)


def predictions(model, x, out_names):
    p = model.predict(x, verbose=0)
    if isinstance(p, dict):
        return [np.asarray(p[n]) for n in out_names]
    if isinstance(p, (list, tuple)):
        return [np.asarray(v) for v in p]
    return [np.asarray(p)]


def compare(label, got, expected, names, atol):
    ok = True
    for name, g, e in zip(names, got, expected):
        if g.shape != e.shape:
            print(f"FAIL {label} {name}: shape {g.shape} != expected {e.shape}")
            ok = False
            continue
        diff = float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))) if g.size else 0.0
        status = "ok  " if diff <= atol else "FAIL"
        print(f"{status} {label} {name}: shape {g.shape}, max |diff| = {diff:.3g}")
        ok &= diff <= atol
    return ok


def load(keras, path):
    """keras.models.load_model; a legacy .h5 whose training config Keras itself cannot compile from (Keras 3
    fails on the loss/metric shorthands "mse"/"mae" there, keras-team/keras#19330) is reloaded uncompiled."""
    try:
        return keras.models.load_model(path)
    except ValueError as e:
        if not str(path).endswith((".h5", ".hdf5")) or "deserialize" not in str(e):
            raise
        print(f"note: Keras cannot compile {path} from its training_config ({e}); reloading with compile=False")
        return keras.models.load_model(path, compile=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("expected")
    ap.add_argument("--train", help="npz with training inputs/targets and after_<output> predictions")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--strict", action="store_true", help="fail on warnings raised while loading")
    args = ap.parse_args(argv)

    import keras
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load(keras, args.model)
    load_warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    for w in load_warnings:
        print("load warning:", w)

    in_names, in_dict = io_names(model, "_inputs_struct", model.inputs)
    out_names, out_dict = io_names(model, "_outputs_struct", model.outputs)
    print(f"keras {keras.__version__} ({keras.backend.backend()}): {type(model).__name__} '{model.name}', "
          f"inputs {in_names}{' (dict)' if in_dict else ''}, outputs {out_names}{' (dict)' if out_dict else ''}, "
          f"compiled={getattr(model, 'compiled', None)}")

    inputs_npz, expected_npz = np.load(args.inputs), np.load(args.expected)
    x = as_model_structure(pick(inputs_npz, in_names, "x", "inputs", args.inputs), in_names, in_dict)
    expected = pick(expected_npz, out_names, "y", "outputs", args.expected)
    ok = compare("predict", predictions(model, x, out_names), expected, out_names, args.atol)

    if args.train:
        if not getattr(model, "compiled", False) or model.optimizer is None:
            print("FAIL --train: the saved model is not compiled (no optimizer to resume)")
            return 1
        print(f"optimizer {type(model.optimizer).__name__}, iterations = {int(model.optimizer.iterations)}")
        train = np.load(args.train)
        tx = as_model_structure(pick(train, in_names, "x", "inputs", args.train), in_names, in_dict)
        ty = as_model_structure(pick(train, out_names, "y", "outputs", args.train), out_names, out_dict)
        model.train_on_batch(tx, ty)
        after = pick(train, [f"after_{n}" for n in out_names], "after_y", "after_outputs", args.train)
        ok &= compare("after one train step", predictions(model, x, out_names), after, out_names, args.atol)

    if args.strict and load_warnings:
        print(f"FAIL --strict: {len(load_warnings)} warning(s) while loading")
        ok = False
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
