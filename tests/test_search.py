"""Pipelines, searches, cloning, persistence and output containers."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)

FAST = dict(max_iter=15, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:600] / 16.0).astype(np.float32), y[:600]


def _check_search(search, grid):
    candidates = search.cv_results_["params"]
    assert len(candidates) == np.prod([len(v) for v in grid.values()])
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_ in candidates
    best = np.argmax(search.cv_results_["mean_test_score"])
    assert search.best_params_ == candidates[best]


def test_grid_search_kl_sparsity_in_pipeline(digits):
    """Check that GridSearchCV(n_jobs=2) tunes beta and rho of a KL pipeline."""
    X, y = digits
    pipe = make_pipeline(
        SparseAutoencoder(n_components=32, **FAST), LogisticRegression(max_iter=500)
    )
    grid = {
        "sparseautoencoder__sparsity_weight": [0.01, 0.1],
        "sparseautoencoder__sparsity_target": [0.05, 0.2],
    }
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
    _check_search(search, grid)
    # Features feed a classifier far above chance (0.1) on ten classes.
    assert search.best_score_ > 0.5
    assert search.score(X, y) > 0.5


def test_grid_search_l1_sparsity_in_pipeline(digits):
    """Check that GridSearchCV(n_jobs=2) tunes lambda of an L1 pipeline."""
    X, y = digits
    pipe = make_pipeline(
        SparseAutoencoder(n_components=32, sparsity="l1", **FAST),
        LogisticRegression(max_iter=500),
    )
    grid = {"sparseautoencoder__sparsity_weight": [1e-3, 1e-2, 1e-1]}
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
    _check_search(search, grid)
    assert search.best_score_ > 0.5


def test_grid_search_contraction_weight_without_scoring(digits):
    """Check that GridSearchCV(n_jobs=2) tunes lambda with the estimator's score."""
    X, _ = digits
    grid = {"contraction_weight": [0.0, 0.1, 10.0]}
    search = GridSearchCV(ContractiveAutoencoder(n_components=8, **FAST), grid, cv=3)
    search.set_params(n_jobs=2).fit(X)
    _check_search(search, grid)
    # score is the negative reconstruction error: a strong contraction costs
    # reconstruction, so the parameter demonstrably reaches the model.
    scores = search.cv_results_["mean_test_score"]
    assert np.all(scores < 0)
    assert scores[2] < min(scores[0], scores[1])


ESTIMATORS = [
    Autoencoder(n_components=6, **FAST),
    SparseAutoencoder(n_components=6, **FAST),
    SparseAutoencoder(n_components=6, sparsity="l1", **FAST),
    ContractiveAutoencoder(n_components=6, **FAST),
    DenoisingAutoencoder(n_components=6, noise="masking", **FAST),
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_clone_pickle_joblib_round_trips(estimator, digits, tmp_path):
    """Check that clone, pickle and joblib round trips give identical transforms."""
    X, _ = digits
    fitted = clone(estimator).fit(X)
    codes = fitted.transform(X)

    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X), codes)
    np.testing.assert_array_equal(restored.score_samples(X), fitted.score_samples(X))

    joblib.dump(fitted, tmp_path / "model.joblib")
    restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(restored.transform(X), codes)
    np.testing.assert_array_equal(
        restored.inverse_transform(codes), fitted.inverse_transform(codes)
    )

    # A clone is unfitted, has the same parameters, and refits identically.
    cloned = clone(fitted)
    assert not hasattr(cloned, "net_")
    assert cloned.get_params() == estimator.get_params()
    np.testing.assert_array_equal(cloned.fit(X).transform(X), codes)


def test_get_feature_names_out_and_pandas_output(digits):
    """Check that output feature names are stable and pandas output works."""
    pd = pytest.importorskip("pandas")
    X, _ = digits
    columns = [f"pixel_{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=columns)
    sae = SparseAutoencoder(n_components=5, **FAST).set_output(transform="pandas")
    codes = sae.fit_transform(frame)
    expected = [f"sparseautoencoder{i}" for i in range(5)]
    assert list(sae.get_feature_names_out()) == expected
    assert isinstance(codes, pd.DataFrame)
    assert list(codes.columns) == expected
    assert list(codes.index) == list(frame.index)
    np.testing.assert_array_equal(sae.feature_names_in_, columns)
    np.testing.assert_array_equal(
        codes.to_numpy(), sae.set_output(transform="default").transform(frame)
    )
