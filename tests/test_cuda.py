"""The sparse-coding, outlier and imputation features on a CUDA device.

Skipped without CUDA. Each fit here is compared with the same fit on the CPU
(``shuffle=False`` and no random noise in training, so both devices see the
same batches in the same order and differ by float32 rounding only), or
checked for the behaviour the feature promises, on the GPU's own kernels.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skae import (
    Autoencoder,
    AutoencoderImputer,
    AutoencoderOutlierDetector,
    ContractiveAutoencoder,
    SparseAutoencoder,
)
from skae.datasets import make_sparse_superposition
from skae.io import load, save

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

COMMON = dict(max_iter=6, batch_size=64, shuffle=False, random_state=0)

MODELS = {
    "autoencoder-tied": Autoencoder(
        n_components=6, hidden_layer_sizes=(12,), tied_weights=True, **COMMON
    ),
    "kl-moving-average": SparseAutoencoder(
        n_components=16, sparsity_momentum=0.9, sparsity_warmup=20, **COMMON
    ),
    "l1-unit-norm": SparseAutoencoder(
        n_components=16, sparsity="l1", unit_norm_decoder=True, **COMMON
    ),
    "topk-auxk": SparseAutoencoder(
        n_components=32,
        sparsity="topk",
        n_nonzero_coefs=3,
        dead_unit_window=64,
        unit_norm_decoder=True,
        **COMMON,
    ),
    "batch-topk": SparseAutoencoder(
        n_components=32, sparsity="batch_topk", n_nonzero_coefs=3, **COMMON
    ),
    "contractive": ContractiveAutoencoder(n_components=6, **COMMON),
}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def X():
    X, _, _ = make_sparse_superposition(
        n_samples=512, n_features=24, n_atoms=48, random_state=0
    )
    return X.astype(np.float32)


@pytest.mark.parametrize("name", MODELS)
def test_cuda_fit_matches_cpu_fit(name, X):
    """Check that a fit on CUDA follows the same fit on the CPU."""
    cpu = clone(MODELS[name]).set_params(device="cpu").fit(X)
    gpu = clone(MODELS[name]).set_params(device="cuda").fit(X)
    assert torch.device(gpu.net_.device).type == "cuda"
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-3)
    codes_cpu, codes_gpu = cpu.transform(X), gpu.transform(X)
    assert np.isfinite(codes_gpu).all()
    np.testing.assert_allclose(codes_gpu, codes_cpu, rtol=1e-3, atol=1e-3)
    if "dead_fraction" in cpu.net_.history[-1]:
        np.testing.assert_allclose(
            gpu.net_.history[:, "dead_fraction"],
            cpu.net_.history[:, "dead_fraction"],
            atol=1 / 32,  # one unit's firing may flip on a near-tie
        )


def test_topk_codes_on_cuda_have_at_most_k_nonzeros(X):
    """Check the exact-k promise of TopK on the GPU's top-k kernel."""
    est = clone(MODELS["topk-auxk"]).set_params(device="cuda").fit(X)
    nonzeros = (est.transform(X) != 0).sum(axis=1)
    assert nonzeros.max() <= 3 and nonzeros.mean() > 2
    # Unit columns in the decoder's units: one common norm in the data's.
    norms = np.linalg.norm(est.dictionary_, axis=1)
    np.testing.assert_allclose(norms, norms.mean(), rtol=1e-5)


def test_batch_topk_on_cuda_is_per_row(X):
    """Check that BatchTopK inference on the GPU ignores the other rows."""
    est = clone(MODELS["batch-topk"]).set_params(device="cuda").fit(X)
    threshold = float(est.net_.module_.sparse_code.threshold)
    assert threshold > 0
    order = np.random.RandomState(0).permutation(len(X))
    codes = est.transform(X)
    np.testing.assert_allclose(est.transform(X[order]), codes[order], atol=1e-6)
    np.testing.assert_allclose(est.transform(X[:7]), codes[:7], atol=1e-6)
    assert 1 < (codes != 0).sum(axis=1).mean() < 6


def test_saved_cuda_model_loads_on_the_cpu(X, tmp_path):
    """Check that skae.io round-trips a CUDA-fitted model onto the CPU."""
    est = clone(MODELS["topk-auxk"]).set_params(device="cuda").fit(X)
    save(est, tmp_path / "model.skae")
    restored = load(tmp_path / "model.skae", device="cpu")
    assert restored.net_.device == "cpu"
    np.testing.assert_allclose(restored.transform(X), est.transform(X), atol=1e-5)


def test_outlier_detector_on_cuda(X):
    """Check the detector's conventions with its autoencoder on the GPU."""
    rng = np.random.RandomState(0)
    outliers = rng.uniform(-3, 3, size=(20, X.shape[1])).astype(np.float32)
    detector = AutoencoderOutlierDetector(
        Autoencoder(n_components=8, max_iter=30, device="cuda", random_state=0),
        contamination=0.05,
    ).fit(X)
    flagged = (detector.predict(X) == -1).mean()
    assert abs(flagged - 0.05) < 0.01
    assert (detector.predict(outliers) == -1).mean() > 0.9
    np.testing.assert_allclose(
        detector.decision_function(X), detector.score_samples(X) - detector.offset_
    )


def test_imputer_on_cuda(X):
    """Check that the imputer on the GPU fills the missing entries only."""
    rng = np.random.RandomState(0)
    X_missing = X.copy()
    mask = rng.uniform(size=X.shape) < 0.2
    X_missing[mask] = np.nan
    imputer = AutoencoderImputer(
        Autoencoder(n_components=12, max_iter=30, device="cuda", random_state=0),
        random_state=0,
    ).fit(X_missing)
    assert torch.device(imputer.estimator_.net_.device).type == "cuda"
    filled = imputer.transform(X_missing)
    np.testing.assert_array_equal(filled[~mask], X[~mask])
    assert np.isfinite(filled).all()
    mean_fill = np.nanmean(X_missing, axis=0)[np.nonzero(mask)[1]]
    rmse = np.sqrt(np.mean((filled[mask] - X[mask]) ** 2))
    assert rmse < np.sqrt(np.mean((mean_fill - X[mask]) ** 2))
