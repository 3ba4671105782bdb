"""examples/fine_tune_pretrained.py: a frozen Xception/ResNet50 base trains only its new head; unfreezing the top
block trains exactly that block, and every BatchNormalization stays frozen in inference mode (its moving statistics
never move) — the fine-tuning rule of Keras 3."""
import sys
from pathlib import Path

import numpy as np
import pytest

import rconv

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
import fine_tune_pretrained as example  # noqa: E402


def _snapshot(model):
    return {v.path: v.numpy() for v in model.weights}


@pytest.mark.parametrize("base_name,size", [("xception", 72), ("resnet50", 64)])
def test_frozen_base_then_top_block(base_name, size):
    rconv.utils.set_random_seed(0)
    model, base = example.build(base_name, size, None)
    bn_stats = {v.path: v.numpy() for layer in base.layers if isinstance(layer, rconv.layers.BatchNormalization)
                for v in (layer.moving_mean, layer.moving_variance)}
    x = np.random.default_rng(0).uniform(0, 255, (8, size, size, 3)).astype(np.float32)
    y = (np.arange(8) % 2).astype(np.float32)
    model.compile(optimizer=rconv.optimizers.Adam(1e-2), loss=rconv.losses.BinaryCrossentropy(from_logits=True))
    before = _snapshot(model)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = _snapshot(model)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed == {v.path for v in model.layers[-1].weights}, "only the new head may train"
    unfrozen = example.unfreeze_top_block(base, example.BASES[base_name][2])
    assert unfrozen and all(n.startswith(example.BASES[base_name][2]) for n in unfrozen)
    model.compile(optimizer=rconv.optimizers.SGD(1.0), loss=rconv.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    final = _snapshot(model)
    changed = {p for p in after if not np.array_equal(after[p], final[p])}
    top = {v.path for layer in base.layers if layer.name in unfrozen for v in layer.trainable_weights}
    assert top <= changed | {p for p in top if not np.any(after[p])}  # every top-block weight trained
    assert changed <= top | {v.path for v in model.layers[-1].weights}
    for path, value in bn_stats.items():
        np.testing.assert_array_equal(final[path], value, err_msg=f"{path} moved: BN must stay in inference mode")
