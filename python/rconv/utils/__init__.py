"""Utilities: `to_categorical`, `set_random_seed`, `Progbar`, `get_file`, `plot_model` / `model_to_dot`, image
loading and `image_dataset_from_directory`."""
from __future__ import annotations

import random

import numpy as np

from .. import backend
from .file_utils import get_file
from .model_visualization import model_to_dot, plot_model
from .numerical import to_categorical
from .progbar import Progbar
from .sequence import PyDataset, Sequence


def set_random_seed(seed: int) -> None:
    """Seed everything a run draws from: rconv's global generator (weights, shuffling, dropout),
    NumPy's legacy global RNG and Python's `random`, like `keras.utils.set_random_seed`."""
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"set_random_seed expects an integer seed, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed))
    backend.set_seed(int(seed))


__all__ = ["to_categorical", "set_random_seed", "Progbar", "PyDataset", "Sequence", "get_file", "plot_model",
           "model_to_dot"]
from .image_dataset import array_to_img, image_dataset_from_directory, img_to_array, load_img, save_img  # noqa: E402,F401
