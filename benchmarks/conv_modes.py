"""Effective GFLOP/s of every 3x3 convolution of the three seed models (MNIST convnet, seed 004 `model4`, seed 003)
in each compute mode: the direct float32 convolution, Winograd (the tile the cost model picks), bfloat16 operands
(`set_compute_precision("bfloat16")`, what `mixed_bfloat16` layers run), and both; beside the machine's float32
SGEMM ceiling measured in the same run.

Effective GFLOP/s = the direct convolution's FLOPs (2 x batch x output pixels x 9 x cin x cout per pass; the
backward pass is the kernel gradient plus, except for a model's first layer, the input gradient) / time, so a
figure above the SGEMM ceiling means fewer operations, not a faster GEMM. Forward is the training forward with
the fused ReLU; best of --repeats calls after a warm-up.

usage: python benchmarks/conv_modes.py [--repeats N] [--only mnist,dogcat4,seed003]
A speed report, not a test: nothing here asserts a timing.
"""
from __future__ import annotations

import argparse

import numpy as np
from ops import best_time  # benchmarks/ops.py (this script's folder is on sys.path)

from rconv import _rconv, ops

# model -> (batch, [(layer, h, w, cin, cout)]); valid padding, stride 1, as in the seed models.
MODELS = {
    "mnist": (64, [("conv1", 28, 28, 1, 32), ("conv2", 13, 13, 32, 64), ("conv3", 5, 5, 64, 64)]),
    "dogcat4": (32, [("conv1", 100, 100, 3, 32), ("conv2", 49, 49, 32, 64), ("conv3", 23, 23, 64, 128)]),
    "seed003": (32, [("conv1", 180, 180, 3, 32), ("conv2", 89, 89, 32, 64), ("conv3", 43, 43, 64, 128),
                     ("conv4", 20, 20, 128, 256), ("conv5", 9, 9, 256, 256)]),
}
MODES = [("direct", False, "float32"), ("winograd", True, "float32"), ("bf16", False, "bfloat16"),
         ("bf16+winograd", True, "bfloat16")]


def sgemm_ceiling(repeats, n=1024):
    a = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    z = np.zeros((n,), np.float32)
    # A pointwise convolution of one n x n image row block is an n x n x n SGEMM through rconv's own GEMM.
    x, k = a.reshape(1, 1, n, n), a.reshape(1, 1, n, n)
    return 2.0 * n ** 3 / best_time(lambda: ops.conv2d(x, k, z), repeats) / 1e9


def measure(batch, h, w, cin, cout, first, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, h, w, cin), dtype=np.float32)
    k = (rng.standard_normal((3, 3, cin, cout), dtype=np.float32) / np.sqrt(9 * cin)).astype(np.float32)
    b = np.zeros(cout, np.float32)
    dy = rng.standard_normal((batch, h - 2, w - 2, cout), dtype=np.float32)
    y = ops.conv2d(x, k, b, activation="relu")
    fwd = best_time(lambda: ops.conv2d(x, k, b, activation="relu"), repeats)
    bwd = best_time(lambda: ops.conv2d_backward(x, k, dy, relu_output=y, need_grad_x=not first), repeats)
    return fwd, bwd


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=",".join(MODELS))
    args = parser.parse_args()
    was = _rconv.winograd_enabled()
    print(f"threads {_rconv.num_threads()}, bf16 back end {_rconv.bf16_kernel()}; "
          f"SGEMM ceiling (1024^3 through rconv's GEMM) {sgemm_ceiling(args.repeats):.0f} GFLOP/s")
    head = f"{'model':<8} {'layer':<6} {'shape (batch)':<22} {'tile':>4} {'pass':<8}"
    print(head + "".join(f" {name:>14}" for name, _, _ in MODES) + "   (effective GFLOP/s)")
    try:
        for model in args.only.split(","):
            batch, layers = MODELS[model]
            for i, (layer, h, w, cin, cout) in enumerate(layers):
                direct = 2.0 * batch * (h - 2) * (w - 2) * 9 * cin * cout
                rows = {"forward": [], "backward": []}
                for _, winograd, precision in MODES:
                    _rconv.set_winograd(winograd, 0)
                    _rconv.set_compute_precision(precision)
                    fwd, bwd = measure(batch, h, w, cin, cout, i == 0, args.repeats)
                    rows["forward"].append(direct / fwd / 1e9)
                    rows["backward"].append(direct * (1 if i == 0 else 2) / bwd / 1e9)
                _rconv.set_compute_precision("float32")
                _rconv.set_winograd(True, 0)
                tile = _rconv.winograd_tile([batch, h, w, cin], [3, 3, cin, cout], (1, 1), "valid")
                shape = f"{h}x{w}x{cin}->{cout} ({batch})"
                for label, values in rows.items():
                    print(f"{model:<8} {layer:<6} {shape:<22} {tile or '-':>4} {label:<8}"
                          + "".join(f" {v:14.1f}" for v in values))
    finally:
        _rconv.set_compute_precision("float32")
        _rconv.set_winograd(was, 0)
    print("tile: the Winograd output tile the cost model picks (2: F(2x2,3x3), 4: F(4x4,3x3), -: direct)")


if __name__ == "__main__":
    main()
