"""The codes, threshold and sparsity figures behind :mod:`skae.metrics`."""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from ._base import _BaseAutoencoder

# "auto" thresholds on |h|, by code activation. Bounded activations saturate
# at 1 in magnitude: a unit is active past half-way from rest (0) to
# saturation, which for the logistic is exactly a positive pre-activation.
# Unbounded ones: a unit is active when its code is non-zero (the L0 count);
# ReLU codes of inactive units are exactly 0.
_AUTO_THRESHOLDS = {"logistic": 0.5, "tanh": 0.5, "relu": 0.0, "identity": 0.0}


def _split_autoencoder(estimator, caller):
    """The skae autoencoder of ``estimator`` and the steps that feed it.

    Returns ``(autoencoder, preprocess)`` where ``preprocess`` is a Pipeline
    of the steps before the autoencoder, or None.
    """
    preprocess = None
    autoencoder = estimator
    if isinstance(estimator, Pipeline):
        autoencoder = estimator.steps[-1][1]
        if len(estimator.steps) > 1:
            preprocess = estimator[:-1]
    if not isinstance(autoencoder, _BaseAutoencoder):
        name = type(autoencoder).__name__
        where = ""
        if isinstance(estimator, Pipeline):
            where = " as the final step of the Pipeline"
        raise TypeError(
            f"{caller} needs a skae autoencoder (Autoencoder, SparseAutoencoder, "
            "ContractiveAutoencoder, DenoisingAutoencoder) or a Pipeline whose "
            f"final step is one, got {name}{where}."
        )
    check_is_fitted(autoencoder)
    if preprocess is not None:
        check_is_fitted(preprocess)
    return autoencoder, preprocess


def _resolve_threshold(autoencoder, threshold):
    if threshold != "auto":
        return float(threshold)
    if getattr(autoencoder, "sparsity", None) in ("topk", "batch_topk"):
        # The code layer keeps ReLUs of the largest pre-activations,
        # whatever ``activation`` the hidden layers have: the L0 count.
        return 0.0
    return _AUTO_THRESHOLDS[autoencoder.activation_]


def _codes_and_error(estimator, X, threshold, caller, *, with_error):
    """Codes of X, the threshold used and (optionally) the mean error."""
    autoencoder, preprocess = _split_autoencoder(estimator, caller)
    if preprocess is not None:
        X = preprocess.transform(X)
    # An ndarray even when set_output asks for containers.
    codes = np.asarray(autoencoder.transform(X))
    error = -autoencoder.score(X) if with_error else None
    return codes, _resolve_threshold(autoencoder, threshold), error


def _summary(codes, threshold):
    magnitude = np.abs(codes.astype(np.float64, copy=False))
    active = magnitude > threshold
    active_rate = active.mean(axis=0)
    mean_active_units = float(active.sum(axis=1).mean())
    return Bunch(
        mean_activation=magnitude.mean(axis=0),
        active_rate=active_rate,
        dead_fraction=float(np.mean(active_rate == 0)),
        mean_active_units=mean_active_units,
        active_fraction=mean_active_units / codes.shape[1],
        threshold=threshold,
    )
