"""Tests of transform's CPU route: the encoder through NumPy's products."""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skae import Autoencoder, SparseAutoencoder


def _fit(activation, hidden, X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(
            n_components=3,
            hidden_layer_sizes=hidden,
            activation=activation,
            max_iter=3,
            random_state=0,
            device="cpu",
            **params,
        ).fit(X)


def _torch_codes(est, X):
    """The codes through the training-time torch pass (no folding)."""
    with torch.enable_grad():
        codes = est.net_.module_.encode(torch.as_tensor(X, dtype=torch.float32))
    return codes.detach().numpy()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    # Features of very different scales and offsets.
    return (rng.normal(size=(1500, 6)) * [1, 10, 100, 1e3, 0.1, 5] + 50).astype(
        np.float32
    )


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("hidden", [(), (7, 5)], ids=["one-layer", "deep"])
def test_numpy_route_matches_the_torch_pass(activation, hidden, data):
    """Check that the NumPy encoder gives the torch pass's codes."""
    est = _fit(activation, hidden, data)
    codes = est.transform(data)
    expected = _torch_codes(est, data)
    assert codes.dtype == np.float32 and np.isfinite(codes).all()
    np.testing.assert_allclose(codes, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        est.transform(data.astype(np.float64)), expected, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("activation", ["logistic", "tanh", "relu"])
def test_float64_input_is_encoded_in_float64(activation):
    """Check that float64 X is encoded in float64 (the torch pass on a
    float64 copy of the module, to 1e-10), so that a row's codes do not
    move by float32 rounding with its position in the BLAS's tiles (which
    scikit-learn's sample-order check, at rtol 1e-7, sees on some CPUs)."""
    X = np.random.default_rng(0).uniform(size=(300, 12))
    est = _fit(activation, (64, 32), X)
    module = est.net_.module_
    double = copy.deepcopy(module).double()
    with torch.enable_grad():
        expected = double.encode(torch.as_tensor(X)).detach().numpy()
    codes = est.transform(X)
    assert codes.dtype == np.float64
    np.testing.assert_allclose(codes, expected, rtol=1e-10, atol=1e-12)
    # Reordered rows get the same codes.
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(est.transform(X[order]), codes[order], rtol=1e-12)


def test_numpy_logistic_keeps_its_limits():
    """Check that the NumPy logistic is exact at its limits, without NaN."""
    from skae._nn.activations import ACTIVATIONS

    a = np.array([-1e4, -100, -20, 0, 20, 100, 1e4], dtype=np.float32)
    h = a.copy()
    with np.errstate(over="ignore"):
        ACTIVATIONS["logistic"].numpy_in_place(h)
    np.testing.assert_allclose(h, torch.sigmoid(torch.from_numpy(a)).numpy(), rtol=1e-6)
    assert h[0] == 0 and h[-1] == 1


def test_numpy_weights_follow_changes_to_the_module(data):
    """Check that the NumPy encoder follows every change to the weights."""
    est = _fit("tanh", (4,), data)
    before = est.transform(data)
    module = est.net_.module_
    with torch.no_grad():
        module.encoder[2].weight.mul_(-1)  # an in-place change
    changed = est.transform(data)
    assert not np.allclose(changed, before)
    np.testing.assert_allclose(changed, _torch_codes(est, data), rtol=1e-4, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.partial_fit(data)
    np.testing.assert_allclose(
        est.transform(data), _torch_codes(est, data), rtol=1e-4, atol=1e-5
    )
    module.load_state_dict(
        {
            k: torch.zeros_like(v) if k == "encoder.0.bias" else v
            for k, v in module.state_dict().items()
        }
    )
    np.testing.assert_allclose(
        est.transform(data), _torch_codes(est, data), rtol=1e-4, atol=1e-5
    )


def test_transform_on_the_cpu_runs_no_torch_product(data, monkeypatch):
    """Check that transform on the CPU encodes through NumPy's products."""
    est = SparseAutoencoder(n_components=3, max_iter=2, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(data)
    expected = est.transform(data)

    def refuse(*args, **kwargs):
        raise AssertionError("a torch matrix product ran in transform")

    monkeypatch.setattr(torch, "addmm", refuse)
    np.testing.assert_array_equal(est.transform(data), expected)
