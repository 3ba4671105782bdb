"""Runs one reference benchmark script in this process (rconv's, PyTorch's or Keras's, with that system's
interpreter), then measures what the script itself does not on the model it built: inference at batch 32,
the median latency of one batch-1 inference, and the process's peak resident memory. The extra numbers
come out as one `BENCH {json}` line after the script's own output. Used by `compare.py`.

usage: bench_run.py [--infer32 VAR] [--latency VAR] [--mnist-train N] SCRIPT [script args...]
--mnist-train N keeps the first N MNIST training images (so an "epoch" of the MNIST scripts is shorter).
VAR names the script's global holding input images (NHWC NumPy for Keras and rconv, NCHW tensor for
PyTorch); `model` must be the script's model. Keras-style models (`predict_on_batch`) are timed with
`predict` / `predict_on_batch`, PyTorch ones in eval mode under `torch.no_grad()`.
"""
import json
import os
import resource
import runpy
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed_calls(fn, budget=1.5, most=300, warm=10):
    """Median seconds of one call of `fn`, after `warm` untimed calls, within `budget` seconds."""
    for _ in range(warm):
        fn()
    times = []
    end = time.perf_counter() + budget
    while len(times) < most and (len(times) < 5 or time.perf_counter() < end):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def limit_mnist_train(n):
    """Cut the training split of the MNIST loaders the reference scripts use (shared `mnist_data.load`,
    `rconv.datasets.mnist.load_data`) to its first n images."""
    def cut(load):
        def loader(*args, **kwargs):
            (xtr, ytr), test = load(*args, **kwargs)
            return (xtr[:n], ytr[:n]), test
        return loader
    try:
        import mnist_data
        mnist_data.load = cut(mnist_data.load)
    except ImportError:
        pass
    try:
        from rconv.datasets import mnist
        mnist.load_data = cut(mnist.load_data)
    except ImportError:
        pass


def main():
    argv = sys.argv[1:]
    opts = {}
    while argv and argv[0] in ("--infer32", "--latency", "--mnist-train"):
        opts[argv[0][2:]] = argv[1]
        argv = argv[2:]
    script = os.path.abspath(argv[0])
    sys.argv = [script, *argv[1:]]
    sys.path.insert(0, os.path.dirname(script))
    if "mnist-train" in opts:
        limit_mnist_train(int(opts["mnist-train"]))
    ns = runpy.run_path(script, run_name="__main__")
    sys.stdout.flush()
    model = ns["model"]
    out = {}
    if hasattr(model, "predict_on_batch"):  # Keras and rconv
        def infer(x):
            model.predict(x, batch_size=32, verbose=0)

        def one(x1):
            model.predict_on_batch(x1)
        no_grad = None
    else:  # PyTorch
        import torch
        model.eval()
        no_grad = torch.no_grad()
        no_grad.__enter__()

        def infer(x):
            for i in range(0, len(x), 32):
                model(x[i:i + 32])

        def one(x1):
            model(x1)
    if "infer32" in opts:
        x = ns[opts["infer32"]][:3200]
        infer(x[:64])
        t = time.perf_counter()
        infer(x)
        out["infer32"] = len(x) / (time.perf_counter() - t)
    if "latency" in opts:
        x1 = ns[opts["latency"]][:1]
        out["latency_us"] = timed_calls(lambda: one(x1)) * 1e6
    if no_grad is not None:
        no_grad.__exit__(None, None, None)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("BENCH " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
