"""Checks shared by the displays of :mod:`skae.plotting`."""

from math import isqrt
from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._base import _BaseAutoencoder


def _check_autoencoder(estimator, caller):
    """Check that ``estimator`` is a fitted skae autoencoder."""
    if not isinstance(estimator, _BaseAutoencoder):
        raise TypeError(
            f"{caller} needs a skae autoencoder (Autoencoder, SparseAutoencoder, "
            "ContractiveAutoencoder, DenoisingAutoencoder), got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)


def _check_image_shape(image_shape, n_features):
    """``image_shape`` as a tuple of two ints whose product is ``n_features``."""
    if image_shape is None:
        side = isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"The filters have {n_features} features, which is not a perfect "
                "square: pass image_shape=(height, width) with "
                f"height * width == {n_features}."
            )
        return (side, side)
    try:
        shape = tuple(image_shape)
    except TypeError:  # a single number, say
        shape = ()
    if (
        len(shape) != 2
        or not all(
            isinstance(s, Integral) and not isinstance(s, (bool, np.bool_)) and s >= 1
            for s in shape
        )
        or shape[0] * shape[1] != n_features
    ):
        raise ValueError(
            "image_shape must be two positive integers (height, width) with "
            f"height * width equal to the number of features ({n_features}), "
            f"got {image_shape!r}."
        )
    return (int(shape[0]), int(shape[1]))


def _check_positive_int(value, name):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
