"""Block-wise inference: NumPy in, NumPy out, a fixed block shape.

``map_rows`` applies a function of a block of rows (built once per call from
the module) to an array, :data:`INFERENCE_BLOCK` rows at a time, under
``torch.inference_mode``. Every block has exactly that many rows (the last
one is zero-padded), so each row meets the same kernels whatever the batch
around it: the same array gives the same bits on every call, and a row's
result does not depend on the other rows or their order beyond rounding
(BLAS may round a row differently by its position within a tile of the
matrix product, a few ulps, which no BLAS promises not to do; some
OpenBLAS kernels do). NumPy blocks keep float64 input in float64, so that
such differences stay near 1e-16 there.
"""

import functools
import math
import warnings

import numpy as np
import torch

from .parallel import limit_threads

__all__ = [
    "INFERENCE_BLOCK",
    "NonFiniteLayer",
    "OutOfMemoryError",
    "all_finite",
    "as_tensor",
    "map_rows",
]

# Rows per block at inference, which bounds memory.
INFERENCE_BLOCK = 1024

# torch.OutOfMemoryError appeared in torch 2.5; the CUDA one is older.
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _same_memory(block, dest):
    if isinstance(block, np.ndarray):
        return np.may_share_memory(block, dest)
    return block.data_ptr() == dest.data_ptr()


class NonFiniteLayer(Exception):
    """A network layer's output is not finite (raised to ``map_rows``)."""


def _viewable(X):
    """X, or a contiguous copy of it when a stride is negative (X[::-1]):
    torch cannot view such arrays."""
    if X.ndim and min(X.strides) < 0:
        return np.ascontiguousarray(X)
    return X


def as_tensor(X, device):
    """View (or copy, if needed) a NumPy array as a float32 tensor on device."""
    X = _viewable(X)
    with warnings.catch_warnings():
        # Read-only inputs are fine: nothing here writes to them.
        warnings.filterwarnings("ignore", message="The given NumPy array is not")
        return torch.as_tensor(X, dtype=torch.float32, device=device)


def map_rows(
    module,
    device,
    A,
    prepare,
    n_out,
    what,
    *,
    check_input,
    owner,
    check_output=True,
    numpy=False,
):
    """Apply a function to A block by block, NumPy in and out, A's dtype out.

    ``prepare(module)`` returns the function of a block of rows, once per
    call, as ``fn(rows, out)``: ``out`` is None or an array the size of the
    result that ``fn`` may write into and return. The blocks are tensors on
    ``device``, or float32 NumPy arrays with ``numpy=True`` (for a function
    that runs no torch operation: on the CPU, torch's thread pool and the
    BLAS's would otherwise take turns waking each other). ``what`` names its output
    in the error raised if that is not finite; ``check_output=False`` when
    ``fn`` guarantees it is (raising ``NonFiniteLayer`` otherwise).
    ``check_input(rows)`` raises the caller's error for rows of A that are
    not finite; ``owner`` names the caller in the out-of-memory error.
    """
    module.eval()
    out = np.empty((A.shape[0], n_out), dtype=A.dtype)
    try:
        # NumPy blocks with NaN or infinity are checked and explained below,
        # not warned about on the way.
        with torch.inference_mode(), limit_threads(), np.errstate(all="ignore"):
            _map_blocks(
                A,
                prepare(module),
                device if not numpy else None,
                out,
                what,
                check_output,
                check_input,
            )
    except OutOfMemoryError as exc:
        raise MemoryError(
            f"The {device.type} device ran out of memory in {owner}, which "
            f"maps {INFERENCE_BLOCK} rows at a time: other tensors or "
            "processes hold the device's memory. Free some (e.g. "
            "torch.cuda.empty_cache()) and call again."
        ) from exc
    return out


def _block_of(A, start, device):
    """Rows ``start:start + INFERENCE_BLOCK`` of A, zero-padded to a whole
    block: a float32 tensor on ``device``, or, when it is None, a NumPy
    array of A's precision (float64 stays float64, so that its products
    round far below float32's, whatever order the BLAS sums a row in). A
    whole block of A's dtype on the CPU is a view of A."""
    rows = _viewable(A[start : start + INFERENCE_BLOCK])
    n_rows = len(rows)
    if device is None:
        dtype = np.float64 if A.dtype == np.float64 else np.float32
        if n_rows < INFERENCE_BLOCK:
            padded = np.zeros((INFERENCE_BLOCK, A.shape[1]), dtype=dtype)
            padded[:n_rows] = rows
            return padded, n_rows
        return np.asarray(rows, dtype=dtype), n_rows
    rows = torch.as_tensor(rows, dtype=torch.float32, device=device).contiguous()
    if n_rows < INFERENCE_BLOCK:
        padded = torch.zeros((INFERENCE_BLOCK, A.shape[1]), device=device)
        padded[:n_rows] = rows
        rows = padded
    return rows, n_rows


def all_finite(block):
    """Whether every value of a block (tensor or array) is finite: a sum is
    finite when every value is (one fast reduction); the exact test runs
    only when it is not."""
    if isinstance(block, np.ndarray):
        # The sum through the BLAS (a matrix-vector product, threaded).
        total = block.sum() if block.ndim != 2 else (_ones(len(block)) @ block).sum()
        if math.isfinite(float(total)):
            return True
        return bool(np.isfinite(block).all())
    if math.isfinite(float(block.sum())):
        return True
    return bool(torch.isfinite(block).all())


@functools.cache
def _ones(n):
    ones = np.ones(n, dtype=np.float32)
    ones.flags.writeable = False
    return ones


def _map_blocks(A, fn, device, out, what, check_output, check_input):
    """Fill ``out`` with ``fn`` of each block of A's rows (NumPy blocks when
    ``device`` is None)."""
    # Written into in place on the CPU (a view of out), copied otherwise.
    target = None
    if out.dtype == np.float32:
        if device is None:
            target = out
        elif device.type == "cpu":
            target = torch.from_numpy(out)
    with warnings.catch_warnings():
        # Read-only inputs are fine: nothing here writes to them.
        warnings.filterwarnings("ignore", message="The given NumPy array is not")
        for start in range(0, A.shape[0], INFERENCE_BLOCK):
            rows, n_rows = _block_of(A, start, device)
            # Every row goes through a block of the same shape (the last one
            # padded), so results do not depend on batch composition; whole
            # blocks write straight into the result.
            dest = None
            if n_rows == INFERENCE_BLOCK and target is not None:
                dest = target[start : start + n_rows]
            try:
                block = fn(rows, dest)[:n_rows]
                if check_output and not all_finite(block):
                    raise NonFiniteLayer
            except NonFiniteLayer:
                # NaN or infinity in X (the caller's error), else finite
                # values that overflow the network.
                check_input(A[start : start + INFERENCE_BLOCK])
                raise ValueError(
                    f"The {what} of rows {start}..{start + n_rows - 1} are not "
                    "finite: X holds values so far from the training data's "
                    "range that the float32 network overflows. Scale X as the "
                    "training data was scaled."
                ) from None
            if dest is None or not _same_memory(block, dest):
                out[start : start + n_rows] = block if device is None else block.cpu()
                narrowed = block.itemsize > out.itemsize  # arrays and tensors
                if check_output and narrowed and not all_finite(out[start:][:n_rows]):
                    # Finite in the block's wider precision (float64 errors
                    # of float32 data far from 1), beyond the result's.
                    raise ValueError(
                        f"The {what} of rows {start}..{start + n_rows - 1} "
                        f"exceed the range of X's dtype ({out.dtype}, up to "
                        f"{np.finfo(out.dtype).max:.1e}). Pass X as float64, "
                        "whose results are float64, or scale X."
                    )
