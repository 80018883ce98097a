"""Devices, seeds and mini-batches: what the engine feeds its nets."""

import math

import torch

__all__ = ["SliceIterator", "resolve_device"]

_SHUFFLE_STREAM, _NOISE_STREAM = 1, 2


def resolve_device(device):
    """Turn a device string into a torch.device, checking that it exists.

    ``"auto"`` picks CUDA when available, then MPS, then the CPU.
    """
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device. Use 'auto', 'cpu', "
            "'cuda', 'cuda:N' or 'mps'."
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available "
                "here. Use device='auto' to fall back to the CPU."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    elif resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                "device='mps' was requested but MPS is not available here. "
                "Use device='auto' to fall back to the CPU."
            )
    elif resolved.type != "cpu":
        raise ValueError(
            f"device={device!r} is not supported. Use 'auto', 'cpu', 'cuda', "
            "'cuda:N' or 'mps'."
        )
    return resolved


def _stream_generator(seed, stream, epoch, device):
    """A generator for one random stream, seeded by (seed, stream, epoch)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(((int(seed) * 4 + stream) * 1_000_003 + epoch) % 2**63)
    return generator


def rows_to_trim(fraction, n_rows, generator):
    """How many of ``n_rows`` a trimmed loss leaves out: ``fraction *
    n_rows`` on average, the fractional part one more row with that
    probability (drawn from ``generator``), so that a fraction below one row
    per batch still trims."""
    n_trim = fraction * n_rows
    whole = math.floor(n_trim)
    if n_trim > whole:
        draw = torch.rand((), generator=generator, device=generator.device)
        whole += int(draw < n_trim - whole)
    return whole


class SliceIterator:
    """Mini-batches sliced from a tensor already on its device.

    Replaces skorch's default DataLoader, which indexes and collates one row
    at a time. A shuffled epoch gathers ``X[perm[i:i + batch_size]]``; an
    unshuffled one yields views.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
    batch_size : int
    generator : torch.Generator or None
        Draws the permutation of each epoch; ``None`` means no shuffling.
    observed : BoolTensor of shape (n_samples, n_features) or None
        Which entries of X are observed (the others missing); sliced with
        X as each batch's second item (None when not given).
    """

    def __init__(self, X, batch_size, generator=None, observed=None):
        self.X = X
        self.batch_size = batch_size
        self.generator = generator
        self.observed = observed

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        X, n, step = self.X, len(self.X), self.batch_size
        M = self.observed
        if self.generator is None:
            for start in range(0, n, step):
                rows = slice(start, start + step)
                yield X[rows], None if M is None else M[rows]
            return
        perm = torch.randperm(n, generator=self.generator, device=X.device)
        for start in range(0, n, step):
            rows = perm[start : start + step]
            yield (
                X.index_select(0, rows),
                None if M is None else M.index_select(0, rows),
            )
