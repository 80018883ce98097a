"""Input checks shared by the estimators: numeric input, float32 range, callbacks."""

from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils._param_validation import (
    InvalidParameterError,
)
from skorch.callbacks import Callback, Checkpoint, LoadInitState, TrainEndCheckpoint

from ._units import _FLOAT32_MAX


@contextmanager
def _numeric_input(estimator, hint=""):
    """Turn NumPy's failure to convert strings into an error saying what to
    do (``hint``: more of it, a sentence)."""
    try:
        yield
    except ValueError as exc:
        if "could not convert string" not in str(exc):
            raise
        raise ValueError(
            f"{type(estimator).__name__} needs numeric data, but X contains "
            f"strings ({exc}). Encode non-numeric features as numbers first, "
            f"e.g. with sklearn.preprocessing.OneHotEncoder.{hint}"
        ) from exc


@contextmanager
def _unchanged_on_failure(estimator):
    """Leave the estimator's attributes as they were when the block raises
    (a wrapper whose autoencoder's fit failed keeps its previous fit whole)."""
    before = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(before)
        raise


def _from_tensor(X):
    """A torch tensor as a NumPy array (detached, on the CPU); else X as is."""
    if not isinstance(X, torch.Tensor):
        return X
    X = X.detach().cpu()
    # NumPy has no bfloat16.
    return (X.float() if X.dtype == torch.bfloat16 else X).numpy()


def _float_dtypes(X):
    """The float dtypes check_array may keep X in.

    check_array keeps float32 and float64 arrays, and pandas DataFrames of
    NumPy columns, as they are, and makes everything else float32 (the
    first choice): float64 columns beside a pandas extension column
    (nullable ``Int64``, ``boolean``), pyarrow's ``double`` or polars'
    ``Float64`` columns, and ``longdouble`` arrays. Where X holds float64
    (or wider) values, this asks for float64 explicitly, so that float64
    input gives float64 output. Integer data become float32 (the precision
    training runs in, at half float64's memory).
    """
    dtypes = [X.dtype] if hasattr(X, "dtype") else list(getattr(X, "dtypes", []))
    if any(_is_wide_float(dtype) for dtype in dtypes):
        return np.float64
    return [np.float32, np.float64]


def _is_wide_float(dtype):
    """Whether a column dtype (NumPy's, pandas', pyarrow's through pandas,
    polars') holds floats of 64 bits or more."""
    numpy_dtype = getattr(dtype, "numpy_dtype", dtype)  # pandas extensions
    try:
        numpy_dtype = np.dtype(numpy_dtype)
    except TypeError:  # polars, or another library's dtype
        return str(dtype) == "Float64"
    return numpy_dtype.kind == "f" and numpy_dtype.itemsize >= 8


def _check_float32_range(X, estimator):
    """Refuse float64 values that the cast to float32 would make infinite.

    X has been through check_array, so it is finite.
    """
    if X.dtype == np.float64 and X.size:
        high = max(X.max(), -X.min())
        if high > _FLOAT32_MAX:
            raise ValueError(
                f"X has values up to {high:.4g} in absolute value, which exceed "
                f"the float32 range (about {_FLOAT32_MAX:.4g}) that "
                f"{type(estimator).__name__} computes in. Rescale X, e.g. with "
                "sklearn.preprocessing.StandardScaler."
            )
    return X


def _check_callbacks(estimator):
    """Check that ``callbacks`` holds what skorch takes as callbacks."""

    def is_a(cb, kinds):
        """An instance or a subclass (skorch takes both) of ``kinds``."""
        return isinstance(cb, kinds) or (isinstance(cb, type) and issubclass(cb, kinds))

    for item in estimator.callbacks or []:
        if isinstance(item, (tuple, list)):
            valid = len(item) == 2 and isinstance(item[0], str)
            valid = valid and (item[1] is None or is_a(item[1], Callback))
        else:
            valid = is_a(item, Callback)
        if not valid:
            raise InvalidParameterError(
                f"The 'callbacks' parameter of {type(estimator).__name__} must "
                "be a list of skorch callbacks (instances or subclasses of "
                "skorch.callbacks.Callback) or of (name, callback) pairs, or "
                f"None. Got an item {item!r} instead."
            )
        callback = item[1] if isinstance(item, (tuple, list)) else item
        if is_a(callback, (Checkpoint, TrainEndCheckpoint, LoadInitState)):
            raise ValueError(
                f"{type(estimator).__name__} cannot run skorch's "
                f"{getattr(callback, '__name__', type(callback).__name__)}: "
                "skorch's checkpoints read per-batch records and '*_best' "
                "flags that skae's training loop does not keep. Save a fitted "
                "estimator with skae.io.save, pickle or joblib, and set "
                "early_stopping=True to keep the weights of the best epoch."
            )
