"""Property-based tests: on any numeric data and any valid parameters, each
method either gives finite results of the right shape and dtype or raises
the documented error."""

import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.exceptions import ConvergenceWarning

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)

# No example database: failures are printed with a reproduction blob. Under
# CI (the CI environment variable set) the examples are derandomized, so a
# run is reproducible; elsewhere every run explores new examples.
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    print_blob=True,
    derandomize=bool(os.environ.get("CI")),
)

DTYPES = ["float32", "float64", "int64", "bool"]


@st.composite
def datasets(draw):
    """Data of random shape, dtype and scale, with constant or all-zero parts."""
    n_samples = draw(st.integers(2, 40))
    n_features = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(
        arrays(
            np.float64,
            (n_samples, n_features),
            # Multiples of 1e-6 in [-1, 1]: the data's scale is set below.
            elements=st.integers(-(10**6), 10**6).map(lambda i: i / 10**6),
        )
    )
    shape = draw(st.sampled_from(["as drawn", "non-negative", "in [0, 1]"]))
    if shape != "as drawn":
        values = np.abs(values)
    if shape != "in [0, 1]":
        values = values * 10.0 ** draw(st.integers(-6, 6))
    constant = draw(st.lists(st.integers(0, n_features - 1), max_size=n_features))
    for column in constant:
        values[:, column] = values[0, column]
    if draw(st.booleans()) and draw(st.booleans()):
        values[:] = 0.0
    if dtype == "bool":
        return values > 0
    if dtype == "int64":
        return np.round(values).astype(np.int64)
    return values.astype(dtype)


@st.composite
def estimators(draw):
    """An estimator of any class with valid, small parameters."""
    Estimator = draw(
        st.sampled_from(
            [
                Autoencoder,
                SparseAutoencoder,
                ContractiveAutoencoder,
                DenoisingAutoencoder,
            ]
        )
    )
    activations = ["identity", "logistic", "tanh", "relu"]
    params = dict(
        n_components=draw(st.integers(1, 6)),
        hidden_layer_sizes=draw(st.sampled_from([(), (4,), (6, 3)])),
        loss=draw(st.sampled_from(["auto", "squared_error", "binary_cross_entropy"])),
        batch_size=draw(st.sampled_from([1, 3, 16, 256])),
        solver=draw(st.sampled_from(["adam", "sgd"])),
        early_stopping=draw(st.booleans()),
        max_iter=2,
        device="cpu",
        random_state=draw(st.integers(0, 2**32 - 1)),
    )
    if Estimator is SparseAutoencoder:
        params["sparsity"] = draw(st.sampled_from(["kl", "l1"]))
        params["activation"] = draw(st.sampled_from(["auto", *activations]))
        params["sparsity_weight"] = draw(
            st.one_of(st.just("auto"), st.floats(0, 10, allow_subnormal=False))
        )
        params["sparsity_target"] = draw(st.floats(0.01, 0.5))
    else:
        params["activation"] = draw(st.sampled_from(activations))
    if Estimator is ContractiveAutoencoder:
        params["contraction_weight"] = draw(st.floats(0, 1, allow_subnormal=False))
        params["jacobian"] = draw(
            st.sampled_from(["auto", "closed_form", "exact", "projection"])
        )
    if Estimator is DenoisingAutoencoder:
        params["noise"] = draw(
            st.sampled_from(["gaussian", "masking", "salt_and_pepper"])
        )
        params["noise_level"] = draw(st.floats(0, 1, allow_subnormal=False))
    return Estimator(**params)


def _in_unit_interval(X):
    """The documented rule: inside [0, 1] up to 4 epsilons of X's float dtype
    (a rounding error; relative to X's magnitude when that is below 1),
    exactly for integer and boolean data."""
    tolerance = 4 * np.finfo(X.dtype).eps if X.dtype.kind == "f" else 0.0
    tolerance *= min(1.0, max(abs(float(X.min())), abs(float(X.max()))))
    return X.min() >= -tolerance and X.max() <= 1 + tolerance


def _expected_error(estimator, X):
    """The documented error fit must raise here (first check first), or None."""
    params = estimator.get_params()
    in_unit_interval = _in_unit_interval(X)
    if params["loss"] == "binary_cross_entropy" and not in_unit_interval:
        return r"needs every input value in \[0, 1\].*MinMaxScaler"
    if (
        isinstance(estimator, SparseAutoencoder)
        and params["sparsity"] == "kl"
        and params["activation"] not in ("auto", "logistic")
    ):
        return r"sparsity='kl' needs codes in \(0, 1\).*activation='logistic'"
    if (
        isinstance(estimator, ContractiveAutoencoder)
        and params["jacobian"] == "closed_form"
        and params["hidden_layer_sizes"]
    ):
        return r"jacobian='closed_form' holds for a single encoder layer only"
    if params["early_stopping"]:
        n_valid = math.ceil(params["validation_fraction"] * X.shape[0])
        if n_valid < 1 or n_valid >= X.shape[0]:
            return r"leaves \d+ of \d+ samples for validation.*early_stopping=False"
    return None


def _float_dtype(X):
    """The dtype the results must have: X's if floating, else float32."""
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float32)


@SETTINGS
@given(estimator=estimators(), X=datasets())
@example(
    # SGD can diverge where Adam does not: here the contractive penalty,
    # taken with respect to the raw input, is large for low-variance data.
    estimator=ContractiveAutoencoder(
        n_components=1,
        hidden_layer_sizes=(),
        activation="identity",
        contraction_weight=1.0,
        solver="sgd",
        batch_size=1,
        max_iter=2,
        device="cpu",
        random_state=0,
    ),
    X=np.pad(np.full((1, 1), 0.5, dtype=np.float32), ((0, 21), (0, 11))),
)
@example(
    # -1e-6 is a value, not a rounding error: cross-entropy must refuse it.
    estimator=SparseAutoencoder(
        loss="binary_cross_entropy",
        n_components=1,
        batch_size=1,
        max_iter=2,
        device="cpu",
        random_state=0,
    ),
    X=np.array([[0.0], [-1e-6]], dtype=np.float32),
)
def test_fit_and_inference_results(estimator, X):
    """Check that each method gives finite, well-shaped float results, or the
    documented error."""
    expected = _expected_error(estimator, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if expected is not None:
            with pytest.raises(ValueError, match=expected):
                estimator.fit(X)
            return
        try:
            assert estimator.fit(X) is estimator
        except ValueError as exc:
            # The documented divergence error, allowed with plain SGD only.
            if estimator.solver != "sgd" or "Training diverged" not in str(exc):
                raise
            event("SGD diverged")
            return

    n_samples, n_features = X.shape
    n_components = estimator.n_components
    dtype = _float_dtype(X)
    if estimator.loss == "auto":
        bce = "binary_cross_entropy"
        unit_data = _in_unit_interval(X) and X.max() > 0.5
        assert (estimator.loss_ == bce) == bool(unit_data)
    assert np.isfinite(estimator.loss_curve_).all()

    codes = estimator.transform(X)
    assert codes.shape == (n_samples, n_components)
    assert codes.dtype == dtype
    assert np.isfinite(codes).all()

    reconstruction = estimator.inverse_transform(codes)
    assert reconstruction.shape == (n_samples, n_features)
    assert reconstruction.dtype == dtype
    assert np.isfinite(reconstruction).all()
    if estimator.loss_ == "binary_cross_entropy":
        assert reconstruction.min() >= 0 and reconstruction.max() <= 1

    scores = estimator.score_samples(X)
    assert scores.shape == (n_samples,)
    assert scores.dtype == dtype
    assert np.isfinite(scores).all()
    assert scores.max() <= 0

    score = estimator.score(X)
    assert isinstance(score, float) and np.isfinite(score)


BAD_VALUES = {
    "nan": (np.nan, "contains NaN"),
    "+inf": (np.inf, "contains infinity"),
    "-inf": (-np.inf, "contains infinity"),
    "float32-overflow": (1e39, r"exceed the float32 range .*Rescale X"),
    "float32-overflow-negative": (-4e38, r"exceed the float32 range .*Rescale X"),
}


@SETTINGS
@given(
    estimator=estimators(),
    X=datasets(),
    bad=st.sampled_from(list(BAD_VALUES)),
    method=st.sampled_from(
        ["fit", "partial_fit", "transform", "score", "score_samples", "inverse"]
    ),
    data=st.data(),
)
def test_non_finite_or_overflowing_values_are_refused(estimator, X, bad, method, data):
    """Check that one bad value anywhere is refused by every method."""
    value, match = BAD_VALUES[bad]
    X = X.astype(np.float64)
    estimator.set_params(loss="squared_error", early_stopping=False)
    if method not in ("fit", "partial_fit"):
        # Parameter errors are covered above.
        assume(_expected_error(estimator, X) is None)
        diverged = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                estimator.fit(X)
            except ValueError as exc:
                # A documented outcome (plain SGD can diverge); nothing to
                # transform then.
                if "Training diverged" not in str(exc):
                    raise
                diverged = True
        assume(not diverged)
    if method == "inverse":
        A = estimator.transform(X).astype(np.float64)
        method = "inverse_transform"
    else:
        A = X.copy()
    row = data.draw(st.integers(0, A.shape[0] - 1), label="row")
    column = data.draw(st.integers(0, A.shape[1] - 1), label="column")
    A[row, column] = value
    with pytest.raises(ValueError, match=match):
        getattr(estimator, method)(A)
