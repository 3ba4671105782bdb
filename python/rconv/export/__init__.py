"""Exporting trained models for serving without rconv: `Model.export(path, format="onnx")` (Keras 3's API)."""
from . import onnx

FORMATS = ("onnx",)


def export_model(model, filepath, format="onnx", verbose=True, **kwargs):
    if format != "onnx":
        raise ValueError(f"Unrecognized format={format!r}: rconv exports {FORMATS} (Keras's 'tf_saved_model' needs "
                         "TensorFlow)")
    if kwargs:
        raise TypeError(f"export(format='onnx') got unexpected arguments {sorted(kwargs)}")
    onnx.export(model, filepath)
    if verbose:
        print(f"Saved artifact at '{filepath}'.")


__all__ = ["export_model", "FORMATS"]
