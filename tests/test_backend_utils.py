"""`rconv.backend` configuration functions (issue 13, item 7), as `keras.backend` / `keras.config` have them."""
from __future__ import annotations

import numpy as np
import pytest

import rconv
from rconv import backend, layers


def test_image_data_format_is_channels_last_and_channels_first_is_refused():
    assert backend.image_data_format() == "channels_last"
    backend.set_image_data_format("channels_last")
    assert backend.image_data_format() == "channels_last"
    with pytest.raises(ValueError, match="only supports image_data_format 'channels_last'.*np.transpose"):
        backend.set_image_data_format("channels_first")
    with pytest.raises(ValueError, match="channels_first.*channels_last.*'NHWC'"):
        backend.set_image_data_format("NHWC")
    assert backend.image_data_format() == "channels_last"
    assert backend.image_dim_ordering() == "tf"


def test_floatx_epsilon_and_backend_name():
    assert backend.floatx() == "float32"
    backend.set_floatx("float32")
    with pytest.raises(ValueError, match="float32 only"):
        backend.set_floatx("float64")
    assert backend.epsilon() == 1e-7
    try:
        backend.set_epsilon(1e-5)
        assert backend.epsilon() == 1e-5
    finally:
        backend.set_epsilon(1e-7)
    assert isinstance(backend.backend(), str) and backend.backend() == "rconv"


def test_clear_session_resets_automatic_names():
    assert layers.Dense(2).name == "dense"
    assert layers.Dense(2).name == "dense_1"
    backend.clear_session()
    assert layers.Dense(2).name == "dense"


def test_is_keras_tensor_and_int_shape():
    x = rconv.Input((5, 3))
    y = layers.Dense(4)(x)
    assert backend.is_keras_tensor(x) and backend.is_keras_tensor(y)
    assert not backend.is_keras_tensor(np.zeros((2, 3)))
    assert backend.int_shape(y) == (None, 5, 4)
    assert backend.int_shape(np.zeros((2, 3), np.float32)) == (2, 3)
    assert backend.int_shape([[1, 2, 3]]) == (1, 3)
    dense = layers.Dense(4)
    dense.build((None, 3))
    assert backend.int_shape(dense.kernel) == (3, 4)
