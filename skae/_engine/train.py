"""The one call between an estimator and training: ``train``.

The estimator validates and decides (the net, its units, the epochs, the
stopping rule and the progress bar, the validation rows); ``train`` runs
skorch on that: it installs the callbacks, hands the data to the net as
tensors on its device, trains, and on any failure puts a net that was
already trained back as it was before the call. The call's own callbacks
are removed afterwards; the user's stay on ``net.callbacks_``.
"""

import torch
from torch.utils.data import TensorDataset

from .inference import as_tensor
from .parallel import limit_threads

__all__ = ["train"]


def train(net, X, X_valid, *, epochs, callbacks, own, observed=None):
    """Train ``net`` for up to ``epochs`` epochs on the NumPy array ``X``.

    Parameters
    ----------
    net : AutoencoderNet
        Built, initialised or not; trained in place.
    X : ndarray of shape (n_samples, n_features)
        The training rows.
    X_valid : ndarray or None
        Rows whose loss is the validation loss (early stopping), or None.
    epochs : int
    callbacks : list
        The user's callbacks, used as given.
    own : dict of str to Callback
        This call's callbacks (stopping, progress), removed afterwards.
    observed : tuple of two ndarrays or None
        Boolean masks of the entries of X and X_valid that are observed:
        the others (missing) are left out of the loss. None: all are.
    """
    device = torch.device(net.device)
    net.callbacks = list(callbacks) + list(own.items())
    net.train_split = None
    start = None
    if net.initialized_:
        net.initialize_callbacks()
        start = net.checkpoint()
    try:
        masks = [None, None] if observed is None else list(observed)
        if X_valid is not None:
            valid = _dataset(X_valid, masks[1], device)
            net.train_split = lambda dataset, y=None: (dataset, valid)
        with limit_threads():
            net.partial_fit(_dataset(X, masks[0], device), epochs=epochs)
    except BaseException:
        if start is not None:
            net.restore(start)
        raise
    finally:
        # Drop the data and this call's own callbacks.
        net.train_split = None
        net.callbacks = net.callbacks[: len(net.callbacks) - len(own)]
        net.callbacks_ = [
            (n, cb) for n, cb in getattr(net, "callbacks_", []) if n not in own
        ]


def _dataset(X, observed, device):
    tensors = [as_tensor(X, device)]
    if observed is not None:
        tensors.append(torch.as_tensor(observed, dtype=torch.bool, device=device))
    return TensorDataset(*tensors)
