"""A seeded mutation fuzzer over model files (issue 12, part 8).

* `seeds.py`: the seed files (committed Keras fixtures + rconv-saved models made at run time), the sentinel
  "private" files and the sentinel twins every external reference points at.
* `mutate.py`: case number -> mutated file (byte, zip and JSON-config mutations); `h5mut.py`: h5py-level ones.
* `run_case.py`: the worker process (memory limit, per-case peak RSS, outcome of each load).
* `harness.py`: runs cases over restartable workers with a per-case timeout and classifies the outcomes.
"""
