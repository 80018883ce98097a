"""Code layers that keep only the largest activations: TopK and BatchTopK.

``TopK(k)`` keeps, in every row, the ReLU of the k largest pre-activations
and zeroes the rest (Gao et al. 2024): at most k non-zero codes per row.

``BatchTopK(k)`` keeps, during training, the ReLU of the ``k * n_rows``
largest pre-activations of the whole batch (Bussmann et al. 2024): rows
share a budget of k active units on average. At inference it keeps the
pre-activations above a learned global threshold instead, so that a row's
codes depend on that row alone: the threshold is a running average of the
smallest activation kept in each training batch (as SAELens and
dictionary_learning estimate it).

Both are torch modules (``nn.Sequential`` layers of the encoder) with NumPy
forms of their inference (``numpy_forward``), for the CPU route of
``transform``. In training they keep what dead-unit revival (AuxK, see
``objectives.auxk_loss``) reads: the buffer ``samples_since_fired``, the
training rows seen since each unit was last active (updated by
:func:`update_since_fired`), and the last training batch's
pre-activations, ``pre_activation`` (taken by the penalty that reads them;
never pickled).
"""

import numpy as np
import torch
from torch import nn

__all__ = [
    "BatchTopK",
    "TopK",
    "Workspace",
    "code_layer",
    "top_k_mask",
    "update_since_fired",
    "update_since_fired_entries",
]

# Up to this many units, the CPU finds each row's k-th largest value with
# NumPy's sort (vectorised) faster than ``torch.topk``: 1.4x-5.6x for 256
# to 512 units, slower from 768 (measured on AMD EPYC, one thread).
_SORT_MAX_UNITS = 512


class Workspace:
    """Buffers kept from one training step to the next.

    A step on the CPU that allocates its large temporaries afresh pays for
    the memory's page faults each time (the allocator returns freed
    blocks of this size to the system): 2400 to 4800 faults, a quarter of
    a batched TopK step of 24 nets. A buffer asked for by name is made
    once and reused (a view of its start when a later request is
    smaller), so what it holds lasts until the next request of that name.
    """

    def __init__(self):
        self._buffers = {}

    def tensor(self, name, shape, dtype, device):
        numel = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.numel() < numel
            or buffer.dtype != dtype
            or buffer.device != torch.device(device)
        ):
            buffer = torch.empty(numel, dtype=dtype, device=device)
            self._buffers[name] = buffer
        return buffer[:numel].view(shape)

    def array(self, name, shape, dtype):
        """A NumPy view of a CPU buffer."""
        return self.tensor(name, shape, _TORCH_DTYPES[np.dtype(dtype)], "cpu").numpy()

    def __getstate__(self):
        return {"_buffers": {}}  # buffers are not state


_TORCH_DTYPES = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
    np.dtype(np.bool_): torch.bool,
}


def top_k_mask(a, k, workspace=None):
    """Boolean mask of each row's ``k`` largest entries (last axis of
    ``a``, any leading axes); ``k`` an int, or a LongTensor broadcasting
    against ``a.shape[:-1] + (1,)`` (a k per model, for instance).

    Exactly ``k`` entries per row are marked, even with ties at the k-th
    value (a tensor with such a tie goes through ``torch.topk``). No
    gradient. With a :class:`Workspace`, the sort and the mask are made
    in its buffers "sorted" and "mask" (the mask is then valid until the
    next call with that workspace).
    """
    n = a.shape[-1]
    with torch.no_grad():
        if a.device.type == "cpu" and n <= _SORT_MAX_UNITS:
            # In NumPy: the comparison and the count make no int64 copy of
            # the mask, which (a fresh code-sized allocation) costs more
            # than the sort on this route.
            values = a.detach().numpy()
            if workspace is None:
                ascending = np.sort(values, axis=-1)
                mask = None
            else:
                ascending = workspace.array("sorted", values.shape, values.dtype)
                np.copyto(ascending, values)
                ascending.sort(axis=-1)
                mask = workspace.array("mask", values.shape, np.bool_)
            kth = _kth_largest(ascending, k, n)
            mask = np.greater_equal(values, kth, out=mask)
            # Each row marks at least its k: no tie if the total is right.
            if isinstance(k, int):
                expected = k * (mask.size // n)
            else:
                expected = np.broadcast_to(k.numpy(), (*mask.shape[:-1], 1)).sum()
            if np.count_nonzero(mask) == expected:
                return torch.from_numpy(mask)
        k_max = int(k) if isinstance(k, int) else int(k.max())
        index = a.topk(min(k_max, n), dim=-1).indices  # descending
        rank = torch.arange(index.shape[-1], device=a.device)
        keep = torch.broadcast_to(rank < _as_tensor(k, a), index.shape)
        return torch.zeros_like(a, dtype=torch.bool).scatter_(-1, index, keep)


def _kth_largest(ascending, k, n):
    """Each row's k-th largest of the NumPy array sorted ``ascending``."""
    if isinstance(k, int):
        return ascending[..., n - k : n - k + 1]
    position = np.broadcast_to((n - k).numpy(), (*ascending.shape[:-1], 1))
    return np.take_along_axis(ascending, position, axis=-1)


def _as_tensor(k, a):
    return k if isinstance(k, int) else k.to(a.device)


def update_since_fired(since_fired, codes):
    """Count a batch's rows into ``since_fired`` (``(..., n_units)``, in
    place), and reset the units active in ``codes`` (``(..., n_rows,
    n_units)``) to zero."""
    fired = (codes > 0).any(dim=-2)
    since_fired.add_(codes.shape[-2]).masked_fill_(fired, 0.0)
    return since_fired


def update_since_fired_entries(since_fired, n_rows, units, values):
    """:func:`update_since_fired` from a batch's kept entries: ``units``
    (LongTensor) and their non-negative ``values``, of ``n_rows`` rows."""
    fired = values.new_zeros(since_fired.shape).index_add_(0, units, values)
    return since_fired.add_(n_rows).masked_fill_(fired > 0, 0.0)


class _TrackedCodes(nn.Module):
    """What TopK and BatchTopK keep of training (see the module docstring)."""

    def __init__(self, n_units):
        super().__init__()
        self.register_buffer("samples_since_fired", torch.zeros(int(n_units)))

    def _track(self, a, codes):
        if not self.training:
            return
        if torch.is_grad_enabled():
            self.pre_activation = a
        with torch.no_grad():
            update_since_fired(self.samples_since_fired, codes)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("pre_activation", None)
        return state


class TopK(_TrackedCodes):
    """ReLU of the k largest entries of each row, zero elsewhere."""

    def __init__(self, k, n_units):
        super().__init__(n_units)
        self.k = int(k)

    def forward(self, a):
        mask = top_k_mask(a, min(self.k, a.shape[-1]))
        codes = torch.where(mask, a, 0.0).relu()
        self._track(a, codes)
        return codes

    def numpy_forward(self, h):
        """The same, in place on a float32 array (inference)."""
        n = h.shape[-1]
        k = min(self.k, n)
        if k < n:
            # The n - k smallest entries of each row are zeroed (exactly:
            # ties at the k-th value do not keep more than k).
            smallest = np.argpartition(h, n - k, axis=-1)[:, : n - k]
            np.put_along_axis(h, smallest, 0, axis=-1)
        np.maximum(h, 0, out=h)
        return h

    def extra_repr(self):
        return f"k={self.k}"


class BatchTopK(_TrackedCodes):
    """The ``k * n_rows`` largest entries of a training batch; at inference,
    the entries above the learned threshold (see the module docstring)."""

    def __init__(self, k, n_units, momentum=0.01):
        super().__init__(n_units)
        self.k = int(k)
        self.momentum = float(momentum)
        # Negative until the first training batch sets it.
        self.register_buffer("threshold", torch.tensor(-1.0))

    def forward(self, a):
        if not self.training:
            return torch.where(a > self.threshold.clamp_min(0), a, 0.0)
        flat = a.reshape(-1)
        n_keep = min(self.k * a.shape[0], flat.numel())
        values, index = flat.topk(n_keep)
        codes = torch.zeros_like(flat).scatter(0, index, values.relu())
        self.update_threshold(values)
        codes = codes.view_as(a)
        self._track(a, codes)
        return codes

    def update_threshold(self, kept):
        """Move the threshold towards the smallest positive of a training
        batch's kept pre-activations ``kept`` (set by the first batch)."""
        with torch.no_grad():
            positive = kept[kept > 0]
            if positive.numel():
                smallest = positive.min()
                if self.threshold < 0:
                    self.threshold.copy_(smallest)
                else:
                    self.threshold.lerp_(smallest, self.momentum)

    def numpy_forward(self, h):
        threshold = max(float(self.threshold), 0.0)
        h[h <= threshold] = 0
        return h

    def extra_repr(self):
        return f"k={self.k}, momentum={self.momentum}"


def code_layer(code_sparsity, n_units):
    """The code layer's activation module for ``code_sparsity``:
    ``("topk", k)`` or ``("batch_topk", k)``, over ``n_units`` codes."""
    kind, k = code_sparsity
    if kind == "topk":
        return TopK(k, n_units)
    if kind == "batch_topk":
        return BatchTopK(k, n_units)
    raise ValueError(f"unknown code sparsity {kind!r}")
