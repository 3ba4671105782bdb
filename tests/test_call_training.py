"""A symbolic call's own `training` argument (`base(x, training=False)`, MC dropout's `Dropout()(x, training=True)`)
follows Keras 3.15: it is saved in the node's kwargs, it decides the node's mode in eager calls that give no
`training`, and fit/evaluate/predict (which always give one) override it — so fine-tuning keeps BatchNormalization
in inference mode through `trainable=False`, not through the call argument (probed in real Keras)."""
import json
import zipfile

import numpy as np

import rconv
from rconv import layers


def test_fit_overrides_the_call_argument_like_keras():
    base = rconv.Sequential([rconv.Input((4,)), layers.BatchNormalization()])
    inp = rconv.Input((4,))
    model = rconv.Model(inp, layers.Dense(1)(base(inp, training=False)))
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).random((8, 4)).astype(np.float32) * 5
    model.fit(x, np.zeros((8, 1), np.float32), verbose=0)
    # Keras 3.15 moves the statistics too (one step, momentum 0.99: 1% of the batch mean)
    np.testing.assert_allclose(base.layers[0].moving_mean.numpy(), 0.01 * x.mean(axis=0), rtol=1e-5)
    base.trainable = False  # the fine-tuning rule: a frozen BatchNormalization runs in inference mode
    model.compile(optimizer="sgd", loss="mse")
    before = base.layers[0].moving_mean.numpy()
    model.fit(x, np.zeros((8, 1), np.float32), verbose=0)
    np.testing.assert_array_equal(base.layers[0].moving_mean.numpy(), before)


def test_mc_dropout_in_eager_calls_only(tmp_path):
    rconv.utils.set_random_seed(0)
    inp = rconv.Input((64,))
    model = rconv.Model(inp, layers.Dropout(0.5)(inp, training=True))
    x = np.ones((1, 64), np.float32)
    assert set(np.unique(np.asarray(model(x)))) == {0.0, 2.0}  # dropped and rescaled, as Keras
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)  # predict says training=False
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), x)
    model.save(tmp_path / "m.keras")
    nodes = [entry["inbound_nodes"] for entry in json.loads(zipfile.ZipFile(tmp_path / "m.keras").read(
        "config.json"))["config"]["layers"] if entry["class_name"] == "Dropout"]
    assert nodes[0][0]["kwargs"] == {"training": True}
    again = rconv.models.load_model(tmp_path / "m.keras")
    assert set(np.unique(np.asarray(again(x)))) == {0.0, 2.0}
    np.testing.assert_array_equal(again.predict(x, verbose=0), x)
