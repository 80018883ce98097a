"""scikit-learn's estimator checks over every skae estimator."""

import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    check_readonly_memmap_input,
    parametrize_with_checks,
)

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)

FAST = dict(n_components=3, max_iter=5, batch_size=16, device="cpu", random_state=0)

ESTIMATORS = [
    Autoencoder(**FAST),
    SparseAutoencoder(**FAST),
    SparseAutoencoder(sparsity="l1", **FAST),
    SparseAutoencoder(sparsity="topk", n_nonzero_coefs=2, **FAST),
    SparseAutoencoder(sparsity="batch_topk", n_nonzero_coefs=2, **FAST),
    ContractiveAutoencoder(**FAST),
    Autoencoder(tied_weights=True, **FAST),
    Autoencoder(code_dropout=0.3, **FAST),
    ContractiveAutoencoder(hidden_layer_sizes=(4,), **FAST),
    DenoisingAutoencoder(**FAST),
    DenoisingAutoencoder(noise="salt_and_pepper", **FAST),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    """Check that each estimator passes scikit-learn's estimator checks."""
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    """Check that every parameter is validated with a clear error."""
    check_param_validation(type(estimator).__name__, estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_readonly_memmap_input(estimator):
    """Check that read-only memory-mapped inputs work (not in the default checks)."""
    check_readonly_memmap_input(type(estimator).__name__, estimator)


def test_shared_docstrings_are_identical():
    """Check that the shared parameters and attributes read the same everywhere."""
    pytest.importorskip("numpydoc")
    from sklearn.utils._testing import assert_docstring_consistency

    assert_docstring_consistency(
        [Autoencoder, SparseAutoencoder, ContractiveAutoencoder, DenoisingAutoencoder],
        include_params=True,
        # Options or defaults differ by class.
        exclude_params=["activation", "hidden_layer_sizes", "loss", "batch_size"],
        include_attrs=True,
    )
