"""Quality oracles that take seconds: contraction and denoising on digits."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skae import Autoencoder, ContractiveAutoencoder, DenoisingAutoencoder


@pytest.fixture(scope="module")
def digits_split():
    X = (load_digits().data / 16.0).astype(np.float32)
    return train_test_split(X, test_size=0.25, random_state=0)


def _mean_jacobian_norm(estimator, X):
    encode = estimator.net_.module_.encode
    with torch.no_grad():
        jacobians = torch.func.vmap(torch.func.jacrev(encode))(torch.from_numpy(X))
    return jacobians.square().sum(dim=(-2, -1)).sqrt().mean().item()


def test_contractive_codes_are_less_sensitive(digits_split):
    """Check that the default CAE contracts more than an AE of its shape, at
    comparable reconstruction error."""
    X_train, X_test = digits_split
    params = dict(random_state=0, device="cpu")
    cae = ContractiveAutoencoder(**params).fit(X_train)
    ae = Autoencoder(
        n_components=cae.n_components,
        hidden_layer_sizes=cae.hidden_layer_sizes,
        activation=cae.activation,
        **params,
    ).fit(X_train)
    assert _mean_jacobian_norm(cae, X_test) < 0.8 * _mean_jacobian_norm(ae, X_test)
    assert -cae.score(X_test) <= 1.25 * -ae.score(X_test)


def test_denoising_beats_pca_projection(digits_split):
    """Check that a DAE cleans sigma=0.25 noisy digits better than PCA(16)."""
    X_train, X_test = digits_split
    noisy = X_test + np.random.default_rng(0).normal(0, 0.25, X_test.shape)
    noisy = noisy.astype(np.float32)
    dae = DenoisingAutoencoder(noise_level=0.25, random_state=0, device="cpu")
    dae.fit(X_train)
    pca = PCA(16).fit(X_train)
    dae_mse = np.mean((dae.inverse_transform(dae.transform(noisy)) - X_test) ** 2)
    pca_mse = np.mean((pca.inverse_transform(pca.transform(noisy)) - X_test) ** 2)
    assert dae_mse < pca_mse
