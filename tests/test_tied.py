"""tied_weights: the decoder's weights are the encoder's, transposed."""

import pickle

import numpy as np
import pytest
import torch

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)
from skae.io import load, save
from skae.model_selection import BatchedGridSearchCV

FAST = dict(max_iter=5, random_state=0, device="cpu", tied_weights=True)


pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(300, 8)) * [1, 5, 10, 1, 2, 3, 1, 1]


def _decoder_weights(module):
    return [layer.weight for layer in module.decoder if hasattr(layer, "weight")]


def _encoder_weights(module):
    return [layer.weight for layer in module.encoder if hasattr(layer, "weight")]


@pytest.mark.parametrize(
    "Estimator",
    [Autoencoder, SparseAutoencoder, ContractiveAutoencoder, DenoisingAutoencoder],
)
@pytest.mark.parametrize("hidden", [(), (6, 4)])
def test_decoder_uses_the_encoder_weights(Estimator, hidden, X):
    est = Estimator(n_components=3, hidden_layer_sizes=hidden, **FAST).fit(X)
    module = est.net_.module_
    encoder, decoder = _encoder_weights(module), _decoder_weights(module)
    assert len(decoder) == len(encoder)
    for enc, dec in zip(encoder, decoder[::-1]):
        torch.testing.assert_close(dec, enc.t(), rtol=0, atol=0)
    # Half the weights: the decoder holds biases only.
    names = [name for name, _ in module.named_parameters()]
    assert not any(n.startswith("decoder") and n.endswith("weight") for n in names)
    untied = Estimator(
        n_components=3,
        hidden_layer_sizes=hidden,
        max_iter=1,
        random_state=0,
        device="cpu",
    ).fit(X)
    n_tied = sum(p.numel() for p in module.parameters())
    n_untied = sum(p.numel() for p in untied.net_.module_.parameters())
    assert n_tied == n_untied - sum(w.numel() for w in encoder)
    assert np.isfinite(est.transform(X)).all()
    assert est.inverse_transform(est.transform(X)).shape == X.shape


def test_tied_training_moves_both_sides_together(X):
    est = Autoencoder(n_components=3, hidden_layer_sizes=(), **FAST).fit(X)
    if hasattr(est, "dictionary_"):
        # The dictionary is the encoder's filters in the decoder's units.
        module = est.net_.module_
        atoms = (module.encoder[0].weight / module.target_scale).detach().numpy()
        np.testing.assert_allclose(est.dictionary_, atoms, rtol=1e-6)
    # The reconstruction improved during training (the tie did not freeze it).
    assert est.loss_curve_[-1] < est.loss_curve_[0]


def test_tied_model_persists(X, tmp_path):
    est = Autoencoder(n_components=3, hidden_layer_sizes=(5,), **FAST).fit(X)
    expected = est.inverse_transform(est.transform(X))
    for copy in (pickle.loads(pickle.dumps(est)), None):
        if copy is None:
            save(est, tmp_path / "tied.skae")
            copy = load(tmp_path / "tied.skae")
        np.testing.assert_allclose(
            copy.inverse_transform(copy.transform(X)), expected, rtol=1e-6
        )
        # Still tied: changing the encoder changes the decoder.
        module = copy.net_.module_
        with torch.no_grad():
            module.encoder[0].weight.mul_(2)
        torch.testing.assert_close(
            module.decoder[-1].weight, module.encoder[0].weight.t()
        )


def test_changing_the_tie_refuses_to_continue(X):
    est = Autoencoder(n_components=3, hidden_layer_sizes=(), **FAST).fit(X)
    with pytest.raises(ValueError, match="tied_weights from True to False"):
        est.set_params(tied_weights=False, warm_start=True).fit(X)


def test_batched_search_batches_tied_and_untied_models(X):
    """Tied and untied candidates train batched (a group each); that each
    matches its own fit is checked in test_batched_search."""
    est = Autoencoder(n_components=3, hidden_layer_sizes=(), **FAST)
    grid = {"alpha": [1e-4, 1e-2], "tied_weights": [True, False]}
    search = BatchedGridSearchCV(est, grid, cv=2).fit(X)
    assert search.batched_.all()
    tied = search.best_estimator_.tied_weights
    names = dict(search.best_estimator_.net_.module_.named_parameters())
    assert ("decoder.0.weight" in names) == (not tied)
