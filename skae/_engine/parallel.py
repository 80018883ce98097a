"""Running inside Dask workers: torch's threads within the worker's share.

A Dask worker runs as many tasks at once as it has threads. Workers started
by a nanny (``dask worker``, ``LocalCluster(processes=True)``) get
``OMP_NUM_THREADS=MKL_NUM_THREADS=1`` before they start, unless these are set
where they are started, so torch uses one thread per task. Workers without a
nanny (``LocalCluster(processes=False)``, ``dask worker --no-nanny``, a
``Worker`` started by hand) keep torch's default of one thread per core, in
every task at once: ``limit_threads`` caps torch's intra-op threads at the
worker's thread count while it is entered, and does nothing outside a Dask
worker. NumPy's BLAS has one thread count for the whole process, which a
task cannot cap without racing the others: ``blas_within_share`` says
whether it already keeps within the worker's share (it does in workers
started by a nanny), so that inference may use NumPy's products there.
"""

import functools
import sys
import threading
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_info

__all__ = ["blas_within_share", "limit_threads"]

_lock = threading.Lock()
_entered = 0
_saved = None


def _worker_nthreads():
    """The thread count of the Dask worker running this code, else None."""
    # A Dask worker has imported distributed already; elsewhere there is
    # nothing to look up, and no import to pay for.
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        worker = distributed.get_worker()
    except ValueError:
        return None
    return worker.state.nthreads


@functools.cache
def _blas_threads():
    """The most threads a BLAS loaded in this process uses (1 if none)."""
    return max(
        (p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"),
        default=1,
    )


def blas_within_share():
    """Whether NumPy's BLAS uses no more threads than this task's share: any
    count outside a Dask worker, at most the worker's thread count inside
    one."""
    nthreads = _worker_nthreads()
    return nthreads is None or _blas_threads() <= nthreads


@contextmanager
def limit_threads():
    """Cap torch's intra-op threads at the Dask worker's thread count.

    Outside a Dask worker, or where torch already uses no more threads, the
    thread count is left as it is. It is restored when the last of the
    tasks running in this process at once leaves (threads are a setting of
    the whole process, which a worker without a nanny shares with others).
    """
    global _entered, _saved
    nthreads = _worker_nthreads()
    if nthreads is None:
        yield
        return
    with _lock:
        if _entered == 0:
            _saved = torch.get_num_threads()
        _entered += 1
        cap = min(_saved, nthreads)
    try:
        # Set in every task, even to the current value: OpenMP keeps the
        # count per calling thread, and this is the thread that computes.
        torch.set_num_threads(cap)
        yield
    finally:
        with _lock:
            _entered -= 1
            if _entered == 0:
                torch.set_num_threads(_saved)
