"""The network's units, from the training data: NumPy only.

``_moments`` gives each feature's mean and variance; ``_units`` turns the
variances into the encoder's per-feature input scale and the decoder's one
target scale (see the user guide, "Data of any scale").
"""

import math
import warnings

import numpy as np
from sklearn.exceptions import DataConversionWarning

# The network computes in float32: larger float64 values become infinite.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _moments(X, max_values=2**20):
    """The training mean of each column, and its variance.

    The mean is exact (float64 accumulation, no copy of X). The variances
    are estimated on evenly spaced rows holding at most ``max_values``
    values (8 MiB in float64; exact for smaller X): they only set the
    network's units, and the subsample keeps ``fit`` from spending memory
    and a pass over a large X on them.
    """
    mean = X.mean(axis=0, dtype=np.float64)
    max_rows = max(1, max_values // max(1, X.shape[1]))
    rows = X[:: max(1, -(-X.shape[0] // max_rows))]
    deviation = rows.astype(np.float64)
    deviation -= mean
    variance = np.einsum("ij,ij->j", deviation, deviation) / deviation.shape[0]
    # Columns of one value: their variance is the mean's rounding, not a
    # spread (near 1e-31 for identical rows of values near 1).
    variance[(rows == rows[:1]).all(axis=0)] = 0.0
    return mean, variance


def _float32_resolution(mean):
    """The spacing of float32 numbers at each column's mean: the smallest
    difference the float32 network can see between values there."""
    return np.spacing(np.abs(mean).astype(np.float32)).astype(np.float64)


def _imprecise_columns(mean, variance):
    """The columns whose spread float32 resolves only coarsely at their
    values: where the spacing of float32 numbers at the mean exceeds 1e-2
    of the standard deviation (the rounding's variance about 1e-5 of the
    column's: scores off by a percent or more for a model that fits well).
    Columns of one value are not among them. The mask, and each column's
    spacing over its standard deviation."""
    std = np.sqrt(variance)
    spread = std > 0
    resolution = _float32_resolution(mean)
    ratio = np.where(spread, resolution / np.where(spread, std, 1.0), 0.0)
    return ratio > 1e-2, ratio


def _float64_shift(X):
    """The shift float64 X is centred by before the network's float32.

    A column far from zero compared with its spread (1e9 plus values of
    spread 2) would be rounded to a few distinct values in float32, or
    one: its training mean is subtracted in float64 first. Other columns,
    and float32 X (rounded already), are not shifted; None when no column
    is.
    """
    if X.dtype != np.float64 or X.size == 0:
        return None
    mean, variance = _moments(X)
    imprecise, _ = _imprecise_columns(mean, variance)
    # A constant column enters the first layer in the data's unit (see
    # _units), whose folded bias W s mean rounds in float32 where the
    # spacing at the mean is coarse against that unit: centred too.
    unit = math.sqrt(float(variance.mean()))
    imprecise |= (variance == 0) & (_float32_resolution(mean) > 1e-2 * unit)
    if not imprecise.any():
        return None
    return np.where(imprecise, mean, 0.0)


def _warn_if_imprecise(mean, variance, owner, dtype):
    """Warn where float32 cannot resolve a column's spread at its values:
    float32 X, or float64 X for the cross-entropy loss, which needs its
    values in [0, 1] and is not centred (see ``_float64_shift``)."""
    imprecise, ratio = _imprecise_columns(mean, variance)
    if not imprecise.any():
        return
    j = int(np.argmax(ratio))
    if dtype == np.float32:
        what_to_do = (
            "Pass X as float64: such columns are then centred in float64 "
            "before the network reads them."
        )
    else:
        what_to_do = (
            "Use loss='squared_error', with which such columns are centred "
            "in float64 before the network reads them."
        )
    warnings.warn(
        f"X's column {j} has mean {mean[j]:.6g} and standard deviation "
        f"{np.sqrt(variance[j]):.3g}: {owner} computes in float32, whose "
        f"numbers are {_float32_resolution(mean)[j]:.3g} apart there, so it "
        f"sees that column (and {int(imprecise.sum()) - 1} other(s)) only "
        "coarsely rounded, and its codes and scores of it are of that "
        f"rounding. {what_to_do}",
        DataConversionWarning,
        stacklevel=4,
    )


def _units(variance, mean):
    """The encoder's per-feature input scale and the decoder's one scale.

    Each feature is divided by its standard deviation, or by the median
    feature's when that is larger, so that the encoder sees features of
    unit scale whatever X's units (the floor measured 0.75x PCA's held-out
    error on digits at k = 32, against 0.94x for plain standardization).
    The decoder's target is the centred data times one factor, the inverse
    root-mean-square deviation, so that the reconstruction error keeps X's
    relative weights (as PCA's) in units where the data has unit average
    variance. A
    feature with no spread in float32 terms (constant: below the spacing of
    float32 numbers at its mean, as the float64 rounding of identical rows
    is, or below 1e-6 of that factor's unit) is scaled by that one factor
    too; the factor is 1.0 when every feature is constant or the spread is
    beyond float32's range.
    """
    flat = np.sqrt(variance) <= _float32_resolution(mean)
    variance = np.where(flat, 0.0, variance)
    mean_square = float(variance.mean()) if variance.size else 0.0
    target_scale = 1.0 / math.sqrt(mean_square) if mean_square > 0 else 1.0
    if not target_scale <= _FLOAT32_MAX or not 1 / target_scale <= _FLOAT32_MAX:
        target_scale = 1.0
    # No feature is amplified beyond the median feature: rarely varying
    # ones (the border pixels of images) would otherwise become noise.
    std = np.sqrt(variance)
    if std.size:
        std = np.maximum(std, np.median(std))
    constant = flat | (std <= 1e-6 / target_scale)
    with np.errstate(divide="ignore"):
        input_scale = np.where(constant, target_scale, 1.0 / np.where(constant, 1, std))
    input_scale = np.minimum(input_scale, _FLOAT32_MAX)
    return input_scale, target_scale
