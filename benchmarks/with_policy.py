"""Run a script with a global dtype policy set first: ``python benchmarks/with_policy.py POLICY script.py args``.

POLICY is a Keras policy name ("float32", "mixed_bfloat16"); the script's layers are created under it, so
its GEMMs (dense, convolutions) compute in that precision. Example (the seed 003 model at 180×180):

    python benchmarks/with_policy.py mixed_bfloat16 ../shared/bench/images_keraslike.py rconv seed003 10 32
    python benchmarks/with_policy.py float32 ../shared/bench/images_keraslike.py rconv seed003 10 32

``RCONV_DTYPE_POLICY=mixed_bfloat16 python benchmarks/with_policy.py - script.py ...`` takes it from the
environment instead.
"""
import os
import runpy
import sys

import rconv

if len(sys.argv) < 3:
    sys.exit(__doc__)
policy = os.environ.get("RCONV_DTYPE_POLICY", "float32") if sys.argv[1] == "-" else sys.argv[1]
rconv.mixed_precision.set_global_policy(policy)
print(f"global dtype policy: {policy} (bf16 kernels: {rconv._rconv.bf16_kernel()})", file=sys.stderr)
script = sys.argv[2]
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
