"""Fits trained ahead of time, which ``fit`` adopts instead of training.

``BatchedGridSearchCV`` trains every candidate on every fold that can train
batched before scikit-learn's search machinery runs, puts the trained nets
in a :class:`Pretrained` store, and lets ``BaseSearchCV.fit`` fit and score
as it always does. While the store is active, an estimator's ``fit`` whose
class, parameters and validated training data (by content) match an entry
takes that entry's net (``_BaseAutoencoder._fit``), each entry once; any
other fit trains as usual. The store is seen by the threads of this process
only (the search runs its fits in threads while one is active).
"""

import hashlib
import threading
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator

__all__ = ["Pretrained", "active", "same", "take"]

_lock = threading.Lock()
_active = []


def digest(X):
    """A digest of an array's shape, dtype and contents."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((X.shape, X.dtype.str)).encode())
    h.update(memoryview(np.ascontiguousarray(X)).cast("B"))
    return h.hexdigest()


def same(a, b):
    """Whether two parameter values (steps, estimators) are the same, by
    value, estimators by class and parameters; False when unsure (arrays)."""
    if isinstance(a, BaseEstimator) or isinstance(b, BaseEstimator):
        return type(a) is type(b) and same(
            a.get_params(deep=False), b.get_params(deep=False)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same(u, v) for u, v in zip(a, b))
        )
    try:
        return a is b or (type(a) is type(b) and bool(a == b))
    except Exception:  # values that do not compare (arrays)
        return False


class Pretrained:
    """Trained nets by estimator class, parameters and training data."""

    def __init__(self):
        self._entries = {}
        self.taken = set()  # the ids of the entries fit adopted

    def add(self, entry_id, estimator, X_digest, plan, net, outcome):
        """Keep a trained ``net`` for a fit of ``estimator`` on data whose
        digest is ``X_digest``; ``plan`` and ``outcome`` are its training's."""
        key = (type(estimator), X_digest)
        params = estimator.get_params(deep=False)
        self._entries.setdefault(key, []).append((entry_id, params, plan, net, outcome))

    def _take(self, estimator, X_digest):
        candidates = self._entries.get((type(estimator), X_digest))
        if not candidates:
            return None
        params = estimator.get_params(deep=False)
        for i, (entry_id, entry_params, plan, net, outcome) in enumerate(candidates):
            if same(params, entry_params):
                del candidates[i]
                self.taken.add(entry_id)
                return plan, net, outcome
        return None

    def __len__(self):
        return sum(len(entries) for entries in self._entries.values())

    @contextmanager
    def active(self):
        """Let ``fit`` adopt this store's nets while the block runs."""
        with _lock:
            _active.append(self)
        try:
            yield self
        finally:
            with _lock:
                _active.remove(self)
            self._entries.clear()  # what was not taken is not kept


def active():
    """Whether a store is active (in any thread of this process)."""
    return bool(_active)


def take(estimator, X):
    """The ``(plan, net, outcome)`` of an active store's entry for a fit of
    ``estimator`` on the validated ``X``, removed from the store; or None."""
    if not _active:
        return None
    # Settings a wrapper gives its autoencoder outside its parameters (the
    # detector's trimmed loss, the imputer's mask of observed entries):
    # batched training has none, so such a fit trains itself.
    if getattr(estimator, "_trim_fraction", 0) or hasattr(estimator, "_observed"):
        return None
    with _lock:
        stores = [
            s for s in _active if any(k[0] is type(estimator) for k in s._entries)
        ]
    if not stores:
        return None
    X_digest = digest(X)
    with _lock:
        for store in stores:
            found = store._take(estimator, X_digest)
            if found is not None:
                return found
    return None
