"""The unit-norm decoder of SparseAutoencoder: atoms kept at unit norm with
the gradient along them removed, the encoder started as their transpose."""

import numpy as np
import pytest
import torch

from skae import SparseAutoencoder
from skae._nn.modules import normalize_columns_, remove_parallel_gradient_
from skae.datasets import make_sparse_superposition

FAST = dict(
    n_components=32, loss="squared_error", max_iter=3, random_state=0, device="cpu"
)


pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def X():
    X, _, _ = make_sparse_superposition(
        n_samples=1000, n_features=16, n_atoms=32, n_active=3, random_state=0
    )
    return X


def test_parallel_gradient_removal_keeps_the_norm_to_first_order():
    """Check that the projected gradient is orthogonal to each unit column
    and keeps its perpendicular part, and that the normalisation leaves
    unit columns (a zero column zero)."""
    rng = np.random.default_rng(0)
    weight = torch.as_tensor(rng.normal(size=(5, 4)))
    weight[:, 3] = 0.0
    normalize_columns_(weight)
    np.testing.assert_allclose(weight[:, :3].norm(dim=0), 1.0)
    assert weight[:, 3].abs().max() == 0
    grad = torch.as_tensor(rng.normal(size=(5, 4)))
    perpendicular = grad - weight * (grad * weight).sum(0)
    remove_parallel_gradient_(weight, grad)
    np.testing.assert_allclose((grad * weight).sum(0), 0.0, atol=1e-12)
    torch.testing.assert_close(grad, perpendicular)
    # A small step along the projected gradient keeps the norm to second order.
    step = weight - 1e-4 * grad
    np.testing.assert_allclose(step[:, :3].norm(dim=0), 1.0, atol=1e-7)


@pytest.mark.parametrize("sparsity", ["topk", "l1"])
def test_decoder_atoms_stay_unit_norm(X, sparsity):
    """Check that training keeps every decoder column at unit norm (autograd
    and written-out gradients alike), from a start with the encoder as the
    decoder's transpose."""
    start = SparseAutoencoder(
        sparsity=sparsity, unit_norm_decoder=True, **{**FAST, "max_iter": 1}
    )
    start.set_params(learning_rate_init=1e-12).fit(X)
    module = start.net_.module_
    decoder = module.decoder_input_layer.weight.detach()
    torch.testing.assert_close(module.code_layer.weight.detach(), decoder.t())
    model = SparseAutoencoder(sparsity=sparsity, unit_norm_decoder=True, **FAST).fit(X)
    norms = model.net_.module_.decoder_input_layer.weight.detach().norm(dim=0)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    free = SparseAutoencoder(sparsity=sparsity, **FAST).fit(X)
    free_norms = free.net_.module_.decoder_input_layer.weight.detach().norm(dim=0)
    assert np.abs(free_norms.numpy() - 1).max() > 0.05


def test_unit_norm_decoder_needs_one_untied_layer(X):
    """Check the error where a unit-norm decoder does not apply."""
    for params in ({"hidden_layer_sizes": (8,)}, {"tied_weights": True}):
        with pytest.raises(ValueError, match="unit_norm_decoder=False"):
            SparseAutoencoder(unit_norm_decoder=True, **params, **FAST).fit(X)
