"""Devices, determinism and the global random state."""

import os
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)
from skae._engine.data import resolve_device

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)

CLASSES = [Autoencoder, SparseAutoencoder, ContractiveAutoencoder, DenoisingAutoencoder]


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).uniform(size=(300, 10)).astype(np.float32)


def test_auto_device_prefers_cuda(monkeypatch):
    """Check that device="auto" picks CUDA when there is one, else the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_device_is_resolved_in_fit(X):
    """Check that "auto" stays the parameter and the fit uses a real device."""
    ae = Autoencoder(n_components=2, max_iter=1, random_state=0).fit(X)
    assert ae.device == "auto"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert torch.device(ae.net_.device).type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_missing_cuda_is_a_clear_error(X):
    """Check that asking for CUDA on a machine without it says what to do."""
    with pytest.raises(ValueError, match="CUDA is not available.*device='auto'"):
        Autoencoder(n_components=2, device="cuda").fit(X)


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu"])
def test_invalid_device_string_is_a_clear_error(bad, X):
    """Check that an unknown device string names the valid forms."""
    with pytest.raises(ValueError, match="'auto', 'cpu'"):
        Autoencoder(n_components=2, device=bad).fit(X)


@pytest.mark.parametrize("cls", CLASSES)
def test_fit_transform_on_each_device(cls, device, X):
    """Check that fitting and inference run on each present device, dtypes kept."""
    est = cls(n_components=4, max_iter=3, device=device, random_state=0).fit(X)
    assert torch.device(est.net_.device).type == device
    for dtype in (np.float32, np.float64):
        codes = est.transform(X.astype(dtype))
        assert codes.dtype == dtype and codes.shape == (300, 4)
        assert np.all(np.isfinite(codes))
        assert est.inverse_transform(codes).dtype == dtype


@pytest.mark.parametrize("cls", CLASSES)
def test_same_random_state_same_codes(cls, device, X):
    """Check that the same random_state and device give identical codes."""
    params = dict(n_components=4, max_iter=3, device=device)
    a = cls(random_state=7, **params).fit(X).transform(X)
    b = cls(random_state=7, **params).fit(X).transform(X)
    c = cls(random_state=8, **params).fit(X).transform(X)
    if device == "cpu":
        np.testing.assert_array_equal(a, b)
    else:  # some CUDA kernels are not bitwise reproducible
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, c)


def test_random_state_instance_advances(X):
    """Check that a RandomState instance gives different but reproducible fits."""
    rng = np.random.RandomState(0)
    ae = Autoencoder(n_components=3, max_iter=2, device="cpu", random_state=rng)
    first, second = ae.fit(X).transform(X), ae.fit(X).transform(X)
    assert not np.allclose(first, second)
    rng = np.random.RandomState(0)
    ae.set_params(random_state=rng)
    np.testing.assert_array_equal(ae.fit(X).transform(X), first)


@pytest.mark.parametrize("random_state", [None, 0])
def test_global_random_states_untouched(random_state, device, X):
    """Check that fit leaves Python's, NumPy's and torch's global RNGs as they were."""
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    for cls in CLASSES:
        cls(n_components=3, max_iter=2, device=device, random_state=random_state).fit(X)
    DenoisingAutoencoder(
        n_components=3,
        max_iter=2,
        noise="salt_and_pepper",
        early_stopping=True,
        device=device,
        random_state=random_state,
    ).fit(X)
    ContractiveAutoencoder(
        n_components=3,
        hidden_layer_sizes=(5,),
        max_iter=2,
        device=device,
        random_state=random_state,
    ).fit(X)
    assert random.getstate() == states[0]
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(after, states[1]))
    assert torch.equal(torch.get_rng_state(), states[2])
    for before, now in zip(cuda_states, torch.cuda.get_rng_state_all()):
        assert torch.equal(before, now)


@requires_cuda
def test_cuda_model_matches_cpu_inference(X):
    """Check that a CUDA-trained model infers the same on CUDA and after moving."""
    ae = SparseAutoencoder(n_components=4, max_iter=3, device="cuda", random_state=0)
    codes = ae.fit(X).transform(X)
    assert ae.net_.module_.code_layer.weight.is_cuda
    restored = pickle.loads(pickle.dumps(ae))
    np.testing.assert_allclose(restored.transform(X), codes, rtol=1e-5, atol=1e-6)


_LOAD_WITHOUT_GPU = """
import pickle, sys, warnings
import numpy as np
import torch
assert not torch.cuda.is_available()
with open(sys.argv[1], "rb") as f:
    model = pickle.load(f)
X = np.load(sys.argv[2])
np.save(sys.argv[3], model.transform(X))
print(model.net_.device)
"""


@requires_cuda
def test_cuda_model_unpickles_without_gpu(X, tmp_path):
    """Check that a CUDA-fitted model unpickles and transforms where no GPU is seen."""
    ae = DenoisingAutoencoder(n_components=4, max_iter=3, device="cuda", random_state=0)
    codes = ae.fit(X).transform(X)
    with open(tmp_path / "model.pkl", "wb") as f:
        pickle.dump(ae, f)
    np.save(tmp_path / "X.npy", X)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_WITHOUT_GPU,
            str(tmp_path / "model.pkl"),
            str(tmp_path / "X.npy"),
            str(tmp_path / "codes.npy"),
        ],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "cpu"
    np.testing.assert_allclose(
        np.load(tmp_path / "codes.npy"), codes, rtol=1e-5, atol=1e-6
    )
