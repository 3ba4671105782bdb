"""rconv.data: adapters and EpochIterator (Keras 3 semantics) for arrays / structures, PyDatasets, re-iterable
datasets and generators: batching, shuffling, validation_split, epoch hooks, step semantics and errors.
Expected batches are rebuilt independently with NumPy slicing."""
import warnings

import numpy as np
import pytest

from rconv.data import (EpochIterator, class_weight_to_sample_weights, get_data_adapter, train_validation_split,
                        unpack_x_y_sample_weight)
from rconv.utils import Sequence, set_random_seed


def arrays(n=10, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = np.arange(n)  # labels = sample index: shows which sample each row came from
    return x, y


def run(it, initial_epoch=0, epochs=1):
    """All batches of `epochs` epochs through the public loop, as a list of per-epoch lists."""
    out = []
    for _ in it.epochs(initial_epoch, epochs):
        out.append([batch for _, batch in it.enumerate_epoch()])
    return out


def ran_out_warnings(record):
    return [w for w in record if "Your input ran out of data" in str(w.message)]


class CountingSequence(Sequence):
    def __init__(self, n_batches=4, batch=2):
        super().__init__()
        self.n_batches, self.batch = n_batches, batch
        self.accessed, self.begins, self.ends = [], 0, 0

    def __len__(self):
        return self.n_batches

    def __getitem__(self, i):
        self.accessed.append(i)
        return np.full((self.batch, 2), i, np.float32), np.full((self.batch,), i)

    def on_epoch_begin(self):
        self.begins += 1

    def on_epoch_end(self):
        self.ends += 1


class FiniteDataset:
    """`__iter__` + `__len__`, no `__getitem__` (like image_dataset_from_directory's result)."""

    def __init__(self, n_batches=3, length=None):
        self.n_batches, self.length, self.iters = n_batches, length, 0

    def __iter__(self):
        self.iters += 1
        for i in range(self.n_batches):
            yield np.full((2, 1), i, np.float32), np.array([i, i])

    def __len__(self):
        return self.n_batches if self.length is None else self.length


def generator(n_batches, drawn=None):
    for i in range(n_batches):
        if drawn is not None:
            drawn.append(i)
        yield np.full((2, 1), i, np.float32), np.array([i, i])


# --- arrays and structures -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n,batch_size", [(10, 4), (10, 5), (10, 1), (1, 1), (7, 32), (9, 8)])
def test_array_batches_match_numpy_slices(n, batch_size):
    x, y = arrays(n)
    it = EpochIterator(x, y, batch_size=batch_size)
    assert it.num_batches == -(-n // batch_size)
    (epoch,) = run(it)
    assert len(epoch) == it.num_batches
    for i, (xb, yb, swb) in enumerate(epoch):
        s = slice(i * batch_size, (i + 1) * batch_size)
        np.testing.assert_array_equal(xb, x[s])
        np.testing.assert_array_equal(yb, y[s])
        assert swb is None
    assert len(epoch[-1][0]) == (n % batch_size or batch_size)  # last partial batch kept


def test_default_batch_size_and_steps_derived_batch_size():
    x, y = arrays(70)
    assert EpochIterator(x, y).data_adapter.batch_size == 32
    it = EpochIterator(x, y, steps_per_epoch=3)  # Keras: batch_size = ceil(n / steps)
    assert it.data_adapter.batch_size == 24 and [len(b[0]) for b in run(it)[0]] == [24, 24, 22]


def test_x_only_and_number_lists():
    x, _ = arrays(5)
    (epoch,) = run(EpochIterator(x, batch_size=2, training=False))
    assert [b[1] for b in epoch] == [None] * 3
    (epoch,) = run(EpochIterator(x, [0, 1, 2, 3, 4], sample_weight=[1.0, 2, 3, 4, 5], batch_size=3))
    np.testing.assert_array_equal(epoch[1][1], [3, 4])
    np.testing.assert_array_equal(epoch[1][2], [4.0, 5.0])


def test_multi_input_multi_output_structures_are_kept():
    x, y = arrays(9)
    x2 = np.arange(9 * 2 * 2, dtype=np.float32).reshape(9, 2, 2)
    inputs = {"image": x2, "meta": [x, x[:, :1]]}
    targets = (y, y.astype(np.float32) * 2)
    (epoch,) = run(EpochIterator(inputs, targets, sample_weight=np.arange(9.0), batch_size=4))
    assert [len(b[1][0]) for b in epoch] == [4, 4, 1]
    xb, yb, swb = epoch[1]
    assert isinstance(xb, dict) and isinstance(xb["meta"], list) and isinstance(yb, tuple)
    np.testing.assert_array_equal(xb["image"], x2[4:8])
    np.testing.assert_array_equal(xb["meta"][1], x[4:8, :1])
    np.testing.assert_array_equal(yb[1], y[4:8] * 2.0)
    # One sample_weight array for several outputs is replicated per output (Keras).
    assert isinstance(swb, tuple) and len(swb) == 2
    np.testing.assert_array_equal(swb[0], [4, 5, 6, 7])
    np.testing.assert_array_equal(swb[1], [4, 5, 6, 7])


def test_sample_weight_structure_must_match_outputs():
    x, y = arrays(4)
    with pytest.raises(ValueError, match="one `sample_weight` array per output"):
        EpochIterator(x, {"a": y, "b": y}, sample_weight={"a": y.astype(float)})
    with pytest.raises(ValueError, match="one scalar score per sample"):
        EpochIterator(x, [y, y], sample_weight=np.ones((4, 3)))


def test_mismatched_sample_counts_name_the_shapes():
    x, y = arrays(10)
    with pytest.raises(ValueError, match=r"Data cardinality is ambiguous.*'x' sizes: 10, 9.*'y' sizes: 10.*"
                                         r"x\[1\]: \(9, 3\)"):
        EpochIterator([x, x[:9]], y)
    with pytest.raises(ValueError, match=r"'y' sizes: 7.*y: \(7,\)"):
        EpochIterator(x, y[:7])


def test_shuffle_is_a_permutation_repeatable_with_a_seed():
    x, y = arrays(11)

    def orders(seed):
        set_random_seed(seed)
        it = EpochIterator(x, y, batch_size=4, shuffle=True)
        epochs = run(it, epochs=3)
        for epoch in epochs:
            for xb, yb, _ in epoch:
                np.testing.assert_array_equal(xb, x[yb])  # x and y rows stay aligned
        return [np.concatenate([b[1] for b in epoch]) for epoch in epochs]

    a, b, c = orders(7), orders(7), orders(8)
    # The draws come from rconv's generator: seeding it alone repeats them, whatever NumPy's global state.
    from rconv import backend
    backend.set_seed(7)
    np.random.seed(12345)
    set_again = [np.concatenate([b[1] for b in e]) for e in run(EpochIterator(x, y, batch_size=4, shuffle=True),
                                                                epochs=3)]
    for ea, eb in zip(a, set_again):
        np.testing.assert_array_equal(ea, eb)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert all(sorted(e) == list(range(11)) for e in a)
    assert [len(e) for e in a] == [11] * 3
    assert not np.array_equal(a[0], a[1])  # a new permutation every epoch
    assert any(not np.array_equal(ea, ec) for ea, ec in zip(a, c))


def test_shuffle_batch_shuffles_inside_each_batch_only():
    x, y = arrays(10)
    set_random_seed(0)
    epochs = run(EpochIterator(x, y, batch_size=4, shuffle="batch"), epochs=4)
    for epoch in epochs:
        assert [sorted(b[1]) for b in epoch] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert any(list(b[1]) != sorted(b[1]) for epoch in epochs for b in epoch)
    with pytest.raises(ValueError, match='`shuffle` must be a boolean or "batch"'):
        EpochIterator(x, y, shuffle="samples")


def test_no_shuffle_when_not_training():
    x, y = arrays(10)
    (epoch,) = run(EpochIterator(x, y, batch_size=3, shuffle=True, training=False))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in epoch]), np.arange(10))


def test_class_weight_matches_a_loop_reference():
    y = np.array([0, 2, 1, 2, 0, 1])
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    expected = np.array([cw[int(v)] for v in y], np.float32)
    np.testing.assert_array_equal(class_weight_to_sample_weights(y, cw), expected)
    np.testing.assert_array_equal(class_weight_to_sample_weights(np.eye(3)[y], cw), expected)  # one-hot
    x, _ = arrays(6)
    (epoch,) = run(EpochIterator(x, y, batch_size=4, class_weight=cw))
    np.testing.assert_array_equal(np.concatenate([b[2] for b in epoch]), expected)
    with pytest.raises(ValueError, match="`class_weight` and `sample_weight` at the same time"):
        EpochIterator(x, y, sample_weight=np.ones(6), class_weight=cw)
    with pytest.raises(ValueError, match="single output"):
        EpochIterator(x, [y, y], class_weight=cw)


# --- validation_split ----------------------------------------------------------------------------------------

def test_validation_split_takes_the_last_fraction_of_structures():
    x, y = arrays(10)
    data = ({"a": x, "b": x * 2}, [y, y + 100], None)
    (tx, ty, tsw), (vx, vy, vsw) = train_validation_split(data, 0.25)  # floor(10 * 0.75) = 7 train samples
    np.testing.assert_array_equal(tx["a"], x[:7])
    np.testing.assert_array_equal(vx["b"], x[7:] * 2)
    np.testing.assert_array_equal(ty[1], y[:7] + 100)
    np.testing.assert_array_equal(vy[0], y[7:])
    assert tsw is None and vsw is None and isinstance(vy, list)


def test_validation_split_errors():
    x, y = arrays(10)
    with pytest.raises(ValueError, match="`validation_split` is only supported for tensors or NumPy arrays"):
        train_validation_split((generator(3), None, None), 0.2)
    with pytest.raises(ValueError, match="`validation_split` is only supported"):
        train_validation_split((CountingSequence(), None, None), 0.2)
    with pytest.raises(ValueError, match="Training data contains 3 samples, which is not sufficient"):
        train_validation_split((x[:3], y[:3], None), 0.7)
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_validation_split((x, y, None), 1.0)
    with pytest.raises(ValueError, match="Data cardinality is ambiguous"):
        train_validation_split((x, y[:5], None), 0.5)


# --- PyDataset / Sequence ------------------------------------------------------------------------------------

def test_sequence_epoch_hooks_and_default_steps():
    seq = CountingSequence(n_batches=4)
    it = EpochIterator(seq)
    assert it.num_batches == 4
    epochs = run(it, epochs=3)
    assert [len(e) for e in epochs] == [4, 4, 4]
    assert seq.accessed == [0, 1, 2, 3] * 3 and seq.begins == 3 and seq.ends == 3
    ev = EpochIterator(seq, training=False)  # hooks run in evaluation too (Keras 3)
    run(ev)
    assert seq.begins == 4 and seq.ends == 4


def test_abandoned_epoch_still_ends_and_next_epoch_starts_cleanly():
    seq = CountingSequence(n_batches=4)
    it = EpochIterator(seq)
    for step, _ in it.enumerate_epoch():
        if step == 1:
            break  # e.g. model.stop_training
    assert seq.begins == 1 and seq.ends == 1
    assert len(list(it.enumerate_epoch())) == 4 and seq.ends == 2


def test_sequence_batch_order_shuffle_repeatable():
    def order(seed):
        seq = CountingSequence(n_batches=10)
        set_random_seed(seed)
        run(EpochIterator(seq, shuffle=True), epochs=2)
        return seq.accessed

    a = order(3)
    assert a == order(3) and sorted(a[:10]) == list(range(10)) and a[:10] != list(range(10))
    assert a[:10] != a[10:]


def test_sequence_with_explicit_steps_continues_across_epochs():
    seq = CountingSequence(n_batches=4)
    run(EpochIterator(seq, steps_per_epoch=2), epochs=3)
    assert seq.accessed == [0, 1, 2, 3, 0, 1] and seq.ends == 3
    # steps_per_epoch=3 on 4 batches: Keras 3 ends the second epoch at the end of the pass, with its warning,
    # and starts a new pass in the third.
    seq = CountingSequence(n_batches=4)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        epochs = run(EpochIterator(seq, steps_per_epoch=3), epochs=3)
    assert [len(e) for e in epochs] == [3, 1, 3] and seq.accessed == [0, 1, 2, 3, 0, 1, 2]
    assert len(ran_out_warnings(record)) == 1


def test_sequence_shuffled_pass_spans_epochs_with_explicit_steps():
    seq = CountingSequence(n_batches=6)
    set_random_seed(1)
    run(EpochIterator(seq, steps_per_epoch=3, shuffle=True), epochs=4)
    first, second = seq.accessed[:6], seq.accessed[6:]
    assert sorted(first) == list(range(6)) and sorted(second) == list(range(6)) and first != second


def test_image_iterators_keep_their_own_order():
    from rconv.preprocessing.image import ImageDataGenerator
    x = np.random.default_rng(0).random((12, 4, 4, 1)).astype(np.float32)
    flow = ImageDataGenerator().flow(x, np.arange(12), batch_size=4, shuffle=False)
    it = EpochIterator(flow, shuffle=True)
    assert not it.data_adapter.shuffle
    (epoch,) = run(it)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in epoch]), np.arange(12))


def test_pydataset_batch_forms_and_dict_inputs():
    class Forms(Sequence):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            x = np.ones((2, 3), np.float32) * i
            return [x, (x, np.zeros(2)), ({"a": x}, np.zeros(2), np.ones(2)), {"a": x}][i]

    (epoch,) = run(EpochIterator(Forms()))
    assert epoch[0][1] is None and epoch[3][1] is None and isinstance(epoch[3][0], dict)
    np.testing.assert_array_equal(epoch[2][2], np.ones(2))
    assert isinstance(epoch[2][0], dict)


def test_endless_pydataset_needs_no_len():
    class Endless(Sequence):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, i):
            return np.full((1, 1), i, np.float32), np.array([i])

    it = EpochIterator(Endless(), steps_per_epoch=3, shuffle=False)
    epochs = run(it, epochs=2)
    assert [int(b[1][0]) for e in epochs for b in e] == [0, 1, 2, 3, 4, 5]


# --- generators ----------------------------------------------------------------------------------------------

def test_generator_batch_forms_and_top_level_lists():
    x = np.ones((2, 3), np.float32)
    batches = [x, (x,), (x, np.zeros(2)), (x, np.zeros(2), np.ones(2)), [x, np.zeros(2)],
               ([x, x * 2], np.zeros(2)), ([[1.0, 2.0], [3.0, 4.0]], [0, 1])]
    (epoch,) = run(EpochIterator(iter(batches), training=False))
    assert [b[1] is None for b in epoch] == [True, True, False, False, False, False, False]
    assert epoch[3][2] is not None
    assert isinstance(epoch[5][0], list) and len(epoch[5][0]) == 2  # nested list = multi-input x
    assert isinstance(epoch[6][0], np.ndarray) and epoch[6][0].shape == (2, 2)  # number lists -> arrays
    with pytest.raises(ValueError, match=r"Data is expected to be in format `x`, `\(x,\)`, `\(x, y\)`"):
        run(EpochIterator(iter([(x, x, x, x)])))
    with pytest.raises(ValueError, match="Data cardinality is ambiguous"):
        run(EpochIterator(iter([(x, np.zeros(3))])))
    assert unpack_x_y_sample_weight([1, 2]) == (1, 2, None)


def test_generator_steps_are_drawn_exactly():
    drawn = []
    it = EpochIterator(generator(100, drawn), steps_per_epoch=3)
    assert it.num_batches == 3
    epochs = run(it, epochs=2)
    assert [int(b[1][0]) for e in epochs for b in e] == [0, 1, 2, 3, 4, 5]
    assert drawn == [0, 1, 2, 3, 4, 5] and not it.exhausted


def test_generator_running_out_mid_epoch_warns_and_stops():
    drawn = []
    it = EpochIterator(generator(5, drawn), steps_per_epoch=2)
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        epochs = run(it, epochs=10)
    assert [len(e) for e in epochs] == [2, 2, 1] and it.exhausted and drawn == [0, 1, 2, 3, 4]


def test_generator_running_out_at_an_epoch_boundary():
    drawn = []
    it = EpochIterator(generator(4, drawn), steps_per_epoch=2)
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        epochs = run(it, epochs=3)
    assert [len(e) for e in epochs] == [2, 2] and it.exhausted  # no empty third epoch
    # Without epochs(): the next enumerate_epoch() yields nothing (warned once already).
    assert list(it.enumerate_epoch()) == []


def test_generator_without_steps_is_one_pass():
    it = EpochIterator(generator(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a single epoch reading the generator to its end is no interruption
        (epoch,) = run(it, epochs=1)
    assert len(epoch) == 3 and it.exhausted and it.num_batches == 3 and it.one_shot
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        assert [len(e) for e in run(EpochIterator(generator(3)), epochs=4)] == [3]


def test_evaluation_passes_over_a_generator():
    it = EpochIterator(generator(7), steps_per_epoch=3, training=False)
    assert [len(e) for e in run(it, epochs=2)] == [3, 3]  # validation_steps per pass, continuing the stream
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # running out while evaluating is not warned about
        assert len(list(it.enumerate_epoch())) == 1
    assert it.exhausted
    with pytest.raises(ValueError, match="run out of data: this evaluation pass would run no step"):
        list(it.enumerate_epoch())


def test_y_and_sample_weight_rejected_for_streams():
    x, y = arrays(4)
    with pytest.raises(ValueError, match="`y` argument is not supported when using a Python generator"):
        EpochIterator(generator(2), y)
    with pytest.raises(ValueError, match="`y` argument is not supported when using a PyDataset"):
        EpochIterator(CountingSequence(), y)
    with pytest.raises(ValueError, match="`sample_weight` argument is not supported when using a dataset"):
        EpochIterator(FiniteDataset(), sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="Unrecognized data type"):
        EpochIterator({"a": x, "b": "text"})
    with pytest.raises(ValueError, match="Unrecognized data type: x=None"):
        EpochIterator(None)


# --- finite re-iterable datasets -----------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [None, 3])
def test_finite_dataset_is_re_iterated_every_epoch(steps):
    ds = FiniteDataset(n_batches=3)
    it = EpochIterator(ds, steps_per_epoch=steps)
    assert it.num_batches == 3 and not it.one_shot
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        epochs = run(it, epochs=2)
    assert [[int(b[1][0]) for b in e] for e in epochs] == [[0, 1, 2], [0, 1, 2]]
    assert ds.iters == 2


def test_finite_dataset_with_fewer_steps_continues_its_pass():
    ds = FiniteDataset(n_batches=3)
    with pytest.warns(UserWarning, match="Your input ran out of data"):  # the 2nd epoch ends short (Keras 3)
        epochs = run(EpochIterator(ds, steps_per_epoch=2), epochs=3)
    assert [[int(b[1][0]) for b in e] for e in epochs] == [[0, 1], [2], [0, 1]]
    assert ds.iters == 2


def test_dataset_shorter_than_its_len_ends_the_epoch_early():
    ds = FiniteDataset(n_batches=2, length=3)
    assert [len(e) for e in run(EpochIterator(ds), epochs=2)] == [2, 2] and ds.iters == 2


def test_image_dataset_from_directory_trains_several_epochs(tmp_path):
    from PIL import Image

    from rconv.utils import image_dataset_from_directory
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    ds = image_dataset_from_directory(tmp_path, image_size=(6, 6), batch_size=4, seed=1, verbose=False)
    assert len(ds) == 3
    for steps in (None, 3):
        epochs = run(EpochIterator(ds, steps_per_epoch=steps), epochs=2)
        assert [[len(b[1]) for b in e] for e in epochs] == [[4, 4, 2], [4, 4, 2]]
        assert all(b[0].shape[1:] == (6, 6, 3) and b[0].dtype == np.float32 for e in epochs for b in e)
    # An endless repeat() has no len() (tf.data raises TypeError too): steps_per_epoch drives it.
    endless = ds.repeat()
    with pytest.raises(TypeError, match="infinite"):
        len(endless)
    it = EpochIterator(endless, steps_per_epoch=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [len(e) for e in run(it, epochs=3)] == [5, 5, 5]
    assert len(endless.take(7)) == 7 and len(ds.repeat(2)) == 6


# --- steps that would run nothing ---------------------------------------------------------------------------

def test_zero_step_epochs_raise():
    x, y = arrays(4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="`steps_per_epoch` must be a positive integer"):
            EpochIterator(x, y, steps_per_epoch=bad)
    with pytest.raises(ValueError, match="`steps` must be a positive integer"):
        EpochIterator(x, y, steps_per_epoch=0, training=False)
    with pytest.raises(ValueError, match="0 samples"):
        EpochIterator(x[:0], y[:0])
    with pytest.raises(ValueError, match="The PyDataset has length 0"):
        EpochIterator(CountingSequence(n_batches=0))
    with pytest.raises(ValueError, match="The dataset is empty"):
        EpochIterator(FiniteDataset(n_batches=0))
    with pytest.raises(ValueError, match="produced no batch"):
        run(EpochIterator(generator(0), steps_per_epoch=2))
    with pytest.raises(ValueError, match="produced no batch"):
        run(EpochIterator(FiniteDataset(n_batches=0, length=2)))
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        EpochIterator(x, y, batch_size=0)


def test_reset_starts_a_new_pass():
    seq = CountingSequence(n_batches=4)
    it = EpochIterator(seq, steps_per_epoch=2)
    run(it)
    it.reset()
    run(it)
    assert seq.accessed == [0, 1, 0, 1]


def test_get_data_adapter_passes_adapters_through():
    x, y = arrays(4)
    adapter = get_data_adapter(x, y, batch_size=2)
    assert get_data_adapter(adapter) is adapter
    assert len(run(EpochIterator(adapter))[0]) == 2
