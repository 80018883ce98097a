"""code_dropout: code units zeroed at random in training, never at inference."""

import numpy as np
import pytest
import torch

from skae import Autoencoder, SparseAutoencoder
from skae.model_selection import BatchedGridSearchCV

FAST = dict(n_components=8, hidden_layer_sizes=(), max_iter=3, device="cpu")


pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(400, 6)).astype(np.float32)


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_decoder_sees_a_fraction_p_of_codes_zeroed_in_training(X, p):
    est = Autoencoder(code_dropout=p, random_state=0, **FAST)
    seen = []
    est.fit(X[:50])  # builds the net; the hook goes on the refit below
    module = est.net_.module_
    handle = module.decoder.register_forward_pre_hook(
        lambda m, args: seen.append((m.training, args[0].detach().clone()))
    )
    try:
        est.set_params(warm_start=True).fit(X)
        training = torch.cat([h for t, h in seen if t])
        zeros = float((training == 0).float().mean())
        assert abs(zeros - p) < 0.03
        seen.clear()
        codes = est.transform(X)
        inverse = est.inverse_transform(codes)
    finally:
        handle.remove()
    # Inference never drops (tanh codes are never exactly zero otherwise).
    assert (codes != 0).all()
    assert all(not t for t, _ in seen)
    assert np.isfinite(inverse).all()


def test_dropout_is_seeded_and_leaves_global_state_alone(X):
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a = Autoencoder(code_dropout=0.3, random_state=0, **FAST).fit(X)
    b = Autoencoder(code_dropout=0.3, random_state=0, **FAST).fit(X)
    c = Autoencoder(code_dropout=0.3, random_state=1, **FAST).fit(X)
    plain = Autoencoder(random_state=0, **FAST).fit(X)
    assert a.loss_curve_ == b.loss_curve_
    assert a.loss_curve_ != c.loss_curve_
    assert a.loss_curve_ != plain.loss_curve_
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)


def test_dropout_trains_through_autograd_and_is_not_batched(X):
    est = SparseAutoencoder(sparsity="l1", code_dropout=0.2, random_state=0, **FAST)
    est.fit(X)
    assert est.net_.backprop_ is None
    assert Autoencoder(random_state=0, **FAST).fit(X).net_.backprop_ is not None
    with pytest.warns(UserWarning, match="code dropout"):
        search = BatchedGridSearchCV(est, {"sparsity_weight": [0.1, 1.0]}, cv=2)
        search.fit(X)
    assert not search.batched_.any()
