"""Layer-contract cases (tests/test_layers_contract.py) of `Lambda`: forward, config, shapes only — it has no
backward pass (rconv has no autodiff), and saving it needs safe_mode=False (tests/test_lambda_layer.py)."""
import numpy as np

from contract_case import Case
from rconv import layers


def _scale(x):
    return x * 2.0 - 1.0


CASES = [
    Case(layers.Lambda, dict(function=_scale), (2, 3, 5, 1), lambda **_: (lambda x, w: np.float64(x) * 2.0 - 1.0),
         checks=("forward", "output_shape")),
    Case(layers.Lambda, dict(function=_scale, output_shape=(3, 5, 1)), (1, 3, 5, 1),
         lambda **_: (lambda x, w: np.float64(x) * 2.0 - 1.0), checks=("forward", "output_shape"), tag="+shape"),
]
