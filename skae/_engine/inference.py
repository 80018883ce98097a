"""Block-wise inference: NumPy in, NumPy out, a fixed block shape.

``map_rows`` applies a function of a block of rows (built once per call from
the module) to an array, :data:`INFERENCE_BLOCK` rows at a time, under
``torch.inference_mode``. Every block has exactly that many rows (the last
one is zero-padded), so each row meets the same kernels whatever the batch
around it: the same array gives the same bits on every call, and a row's
result does not depend on the other rows or their order beyond float32
rounding (BLAS may round a row differently by its position within a tile of
the matrix product, a few ulps, which no BLAS promises not to do).
"""

import math
import warnings

import numpy as np
import torch

from .parallel import limit_threads

__all__ = [
    "INFERENCE_BLOCK",
    "NonFiniteLayer",
    "OutOfMemoryError",
    "as_tensor",
    "map_rows",
]

# Rows per block at inference, which bounds memory.
INFERENCE_BLOCK = 1024

# torch.OutOfMemoryError appeared in torch 2.5; the CUDA one is older.
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


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
    module, device, A, prepare, n_out, what, *, check_input, owner, check_output=True
):
    """Apply a function to A block by block, NumPy in and out, A's dtype out.

    ``prepare(module)`` returns the function of a block of rows, once per
    call, as ``fn(rows, out)``: ``out`` is None or a tensor the size of the
    result that ``fn`` may write into and return. ``what`` names its output
    in the error raised if that is not finite; ``check_output=False`` when
    ``fn`` guarantees it is (raising ``NonFiniteLayer`` otherwise).
    ``check_input(rows)`` raises the caller's error for rows of A that are
    not finite; ``owner`` names the caller in the out-of-memory error.
    """
    module.eval()
    out = np.empty((A.shape[0], n_out), dtype=A.dtype)
    try:
        with torch.inference_mode(), limit_threads():
            _map_blocks(
                A, prepare(module), device, out, what, check_output, check_input
            )
    except OutOfMemoryError as exc:
        raise MemoryError(
            f"The {device.type} device ran out of memory in {owner}, which "
            f"maps {INFERENCE_BLOCK} rows at a time: other tensors or "
            "processes hold the device's memory. Free some (e.g. "
            "torch.cuda.empty_cache()) and call again."
        ) from exc
    return out


def _map_blocks(A, fn, device, out, what, check_output, check_input):
    """Fill ``out`` with ``fn`` of each block of A's rows."""
    # Written into in place on the CPU (a view of out), copied otherwise.
    target = None
    if out.dtype == np.float32 and device.type == "cpu":
        target = torch.from_numpy(out)
    with warnings.catch_warnings():
        # Read-only inputs are fine: nothing here writes to them.
        warnings.filterwarnings("ignore", message="The given NumPy array is not")
        for start in range(0, A.shape[0], INFERENCE_BLOCK):
            stop = start + INFERENCE_BLOCK
            rows = torch.as_tensor(
                _viewable(A[start:stop]), dtype=torch.float32, device=device
            ).contiguous()
            n_rows = len(rows)
            dest = None
            if n_rows < INFERENCE_BLOCK:
                # Pad the last block: every row goes through a block of the
                # same shape, so results do not depend on batch composition.
                # Full blocks are used as they are (a view of A when it is
                # float32 on the CPU).
                padded = torch.zeros((INFERENCE_BLOCK, A.shape[1]), device=device)
                padded[:n_rows] = rows
                rows = padded
            elif target is not None:
                dest = target[start:stop]
            try:
                block = fn(rows, dest)[:n_rows]
                # A sum is finite when every value is (one fast reduction);
                # the exact test runs only when it is not.
                if (
                    check_output
                    and not math.isfinite(float(block.sum()))
                    and not torch.isfinite(block).all()
                ):
                    raise NonFiniteLayer
            except NonFiniteLayer:
                # NaN or infinity in X (the caller's error), else finite
                # values that overflow the network.
                check_input(A[start:stop])
                raise ValueError(
                    f"The {what} of rows {start}..{start + n_rows - 1} are not "
                    "finite: X holds values so far from the training data's "
                    "range that the float32 network overflows. Scale X as the "
                    "training data was scaled."
                ) from None
            if dest is None or block.data_ptr() != dest.data_ptr():
                out[start : start + n_rows] = block.cpu()
