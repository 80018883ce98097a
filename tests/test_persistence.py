"""Persistence: pickle and joblib round trips, and skae.io.save / skae.io.load."""

import base64
import hashlib
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import zipfile

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

import skae
from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)
from skae.io import FORMAT_VERSION, load, save

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)

SMALL = {"max_iter": 3, "batch_size": 8, "random_state": 0}

ESTIMATORS = {
    "autoencoder": lambda device: Autoencoder(
        n_components=2, hidden_layer_sizes=(4,), device=device, **SMALL
    ),
    # Data in [0, 1]: loss="auto" resolves to binary cross-entropy; one
    # encoder layer: components_ is set.
    "sparse": lambda device: SparseAutoencoder(n_components=3, device=device, **SMALL),
    # Training state beside the weights: the steps taken (the warm-up reads
    # them) and the moving average of the mean activations.
    "sparse-warmup-momentum": lambda device: SparseAutoencoder(
        n_components=3,
        sparsity_warmup=1000,
        sparsity_momentum=0.9,
        device=device,
        **SMALL,
    ),
    "contractive": lambda device: ContractiveAutoencoder(
        n_components=2, hidden_layer_sizes=(4,), device=device, **SMALL
    ),
    # Salt-and-pepper noise takes the per-feature range of the training data;
    # early stopping sets validation_scores_.
    "denoising": lambda device: DenoisingAutoencoder(
        n_components=2,
        hidden_layer_sizes=(4,),
        noise="salt_and_pepper",
        early_stopping=True,
        validation_fraction=0.25,
        device=device,
        **SMALL,
    ),
}


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).uniform(size=(24, 5))


@pytest.fixture(scope="module")
def fitted(X):
    """One fitted CPU estimator of each kind; tests must not modify them."""
    return {name: make("cpu").fit(X) for name, make in ESTIMATORS.items()}


def _fitted_attributes(estimator):
    return {
        name: value
        for name, value in vars(estimator).items()
        if name.endswith("_") and not name.startswith("_") and name != "net_"
    }


def assert_same_estimator(actual, expected):
    """Same class, parameters, fitted attributes (with types and dtypes)."""
    assert type(actual) is type(expected)
    params, expected_params = actual.get_params(), expected.get_params()
    assert params == expected_params
    for name, value in expected_params.items():
        assert type(params[name]) is type(value), name
    attributes = _fitted_attributes(actual)
    expected_attributes = _fitted_attributes(expected)
    assert attributes.keys() == expected_attributes.keys()
    for name, value in expected_attributes.items():
        assert type(attributes[name]) is type(value), name
        if isinstance(value, np.ndarray):
            assert attributes[name].dtype == value.dtype, name
            assert_array_equal(attributes[name], value)
        else:
            assert attributes[name] == value, name


def assert_same_outputs(actual, expected, X):
    """transform, inverse_transform and score_samples agree bit for bit."""
    codes = expected.transform(X)
    assert_array_equal(actual.transform(X), codes)
    assert_array_equal(
        actual.inverse_transform(codes), expected.inverse_transform(codes)
    )
    assert_array_equal(actual.score_samples(X), expected.score_samples(X))


def _round_trip(estimator, **load_kwargs):
    buffer = io.BytesIO()
    save(estimator, buffer)
    return load(io.BytesIO(buffer.getvalue()), **load_kwargs)


def _archive_digest(entries):
    """The digest the skae.io docstring defines, written out independently:
    SHA-256 over every entry but skae.sha256, sorted by UTF-8 name, each as
    8-byte big-endian length + name, 8-byte big-endian length + contents."""
    digest = hashlib.sha256()
    for name in sorted(n.encode("utf-8") for n in entries if n != "skae.sha256"):
        for part in (name, entries[name.decode("utf-8")]):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def _read_entries(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_entries(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, contents in entries.items():
            archive.writestr(name, contents)


def _rewrite(path, *, edit=None, weights=None, fix_digest=False):
    """Rewrite a skae file, editing its JSON document and/or its weights.

    With ``fix_digest`` the digest is rewritten to match the edit, as a
    forger would: the file then reaches the checks behind the digest.
    """
    entries = _read_entries(path)
    document = json.loads(entries["skae.json"])
    if edit is not None:
        edit(document)
    entries["skae.json"] = json.dumps(document).encode("utf-8")
    if weights is not None:
        entries["weights.pt"] = weights
    if fix_digest:
        entries["skae.sha256"] = _archive_digest(entries).encode("ascii")
    _write_entries(path, entries)


def _as_format_version_1(path):
    """Rewrite a skae file as skae wrote format version 1: no skae.sha256
    entry, and the digest of weights.pt alone in skae.json."""
    entries = _read_entries(path)
    document = json.loads(entries["skae.json"])
    document["format_version"] = 1
    document["weights_sha256"] = hashlib.sha256(entries["weights.pt"]).hexdigest()
    entries["skae.json"] = json.dumps(document, ensure_ascii=False).encode("utf-8")
    del entries["skae.sha256"]
    _write_entries(path, entries)


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model.skae"
    save(fitted["denoising"], path)
    return path


# ------------------------------------------------------------ pickle, joblib


def _pickle_round_trip(estimator, tmp_path):
    return pickle.loads(pickle.dumps(estimator))


def _joblib_round_trip(estimator, tmp_path):
    path = tmp_path / "estimator.joblib"
    joblib.dump(estimator, path)
    return joblib.load(path)


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("round_trip", [_pickle_round_trip, _joblib_round_trip])
def test_pickle_and_joblib_round_trip(fitted, X, tmp_path, name, round_trip):
    estimator = fitted[name]
    restored = round_trip(estimator, tmp_path)
    assert_same_estimator(restored, estimator)
    assert_same_outputs(restored, estimator, X)


_UNPICKLE_ON_CPU = textwrap.dedent(
    """
    import pickle, sys
    import numpy as np
    import torch

    assert not torch.cuda.is_available()
    with open(sys.argv[1], "rb") as f:
        estimator = pickle.load(f)
    assert estimator.net_.device == "cpu", estimator.net_.device
    np.save(sys.argv[3], estimator.transform(np.load(sys.argv[2])))
    """
)


def _run_without_cuda(script, *args):
    root = str(pathlib.Path(skae.__file__).resolve().parents[1])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.cuda
@requires_cuda
def test_pickle_cuda_model_unpickles_on_cpu(X, tmp_path):
    estimator = ESTIMATORS["denoising"]("cuda").fit(X)
    with open(tmp_path / "estimator.pkl", "wb") as f:
        pickle.dump(estimator, f)
    np.save(tmp_path / "X.npy", X)
    _run_without_cuda(
        _UNPICKLE_ON_CPU,
        tmp_path / "estimator.pkl",
        tmp_path / "X.npy",
        tmp_path / "codes.npy",
    )
    codes = np.load(tmp_path / "codes.npy")
    assert_allclose(codes, estimator.transform(X), rtol=1e-4, atol=1e-5)


def test_net_moved_by_unpickling_keeps_a_string_device(X, monkeypatch):
    """Check that a net skorch moves while unpickling (a CUDA net where no
    CUDA is seen) keeps ``device`` a string, as every fitted net has it."""
    import skorch.net

    estimator = ESTIMATORS["denoising"]("cpu").fit(X)
    # What skorch's __setstate__ sets when it maps a CUDA net to the CPU.
    monkeypatch.setattr(
        skorch.net.NeuralNet, "_check_device", lambda self, *a: torch.device("cpu")
    )
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.net_.device == "cpu" and isinstance(restored.net_.device, str)
    assert_allclose(restored.transform(X), estimator.transform(X))


# ------------------------------------------------------------ save and load


@pytest.mark.parametrize("name", ESTIMATORS)
def test_save_load_round_trip(fitted, X, name):
    estimator = fitted[name]
    restored = _round_trip(estimator)
    check_is_fitted(restored)
    assert_same_estimator(restored, estimator)
    assert_same_outputs(restored, estimator, X)
    assert restored.score(X) == estimator.score(X)
    assert list(restored.net_.history) == list(estimator.net_.history)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_partial_fit_after_load_continues_training(fitted, X, name):
    estimator = fitted[name]
    # The pickled copy continues as the original would: the loaded estimator
    # (weights, optimizer state, history, seed, noise range) must match it.
    expected = pickle.loads(pickle.dumps(estimator)).partial_fit(X)
    restored = _round_trip(estimator).partial_fit(X)
    assert restored.n_iter_ == estimator.n_iter_ + 1
    assert restored.loss_curve_ == expected.loss_curve_
    assert_same_outputs(restored, expected, X)


def test_load_keeps_a_lowered_learning_rate(fitted, X):
    estimator = pickle.loads(pickle.dumps(fitted["autoencoder"]))
    # As after learning-rate reductions at a plateau.
    for group in estimator.net_.optimizer_.param_groups:
        group["lr"] = 1e-5
    restored = _round_trip(estimator)
    for group in restored.net_.optimizer_.param_groups:
        assert group["lr"] == 1e-5
    restored.partial_fit(X)
    assert_same_outputs(restored, estimator.partial_fit(X), X)


def test_warm_start_fit_after_load(fitted, X):
    restored = _round_trip(fitted["autoencoder"])
    restored.set_params(warm_start=True, max_iter=2).fit(X)
    assert restored.n_iter_ == fitted["autoencoder"].n_iter_ + 2


def test_save_to_path_and_file_object(fitted, X, tmp_path):
    estimator = fitted["sparse"]
    path = tmp_path / "model.skae"
    save(estimator, path)
    save(estimator, str(tmp_path / "again.skae"))
    # Saving is deterministic.
    assert path.read_bytes() == (tmp_path / "again.skae").read_bytes()
    with open(path, "rb") as f:
        from_file_object = load(f)
    assert_same_outputs(load(path), estimator, X)
    assert_same_outputs(from_file_object, estimator, X)


def test_parameter_types_round_trip(X):
    estimator = Autoencoder(
        n_components=np.int64(2), hidden_layer_sizes=[3], callbacks=[], **SMALL
    ).fit(X)
    restored = _round_trip(estimator)
    assert_same_estimator(restored, estimator)
    assert type(restored.n_components) is np.int64
    assert restored.hidden_layer_sizes == [3]
    assert restored.callbacks == []


@pytest.mark.parametrize(
    "estimator",
    [
        Autoencoder(2, hidden_layer_sizes=(), alpha=np.float64(1e-3)),
        SparseAutoencoder(
            3,
            sparsity_weight=np.float64(0.5),
            sparsity_target=np.float32(0.1),
            sparsity_momentum=np.float64(0.5),
        ),
        SparseAutoencoder(
            4,
            sparsity="topk",
            n_nonzero_coefs=np.int64(2),
            revival_weight=np.float64(0.5),
            loss="squared_error",
        ),
        ContractiveAutoencoder(2, contraction_weight=np.float64(0.1)),
        DenoisingAutoencoder(2, noise_level=np.float32(0.1), code_dropout=0.25),
    ],
    ids=lambda estimator: type(estimator).__name__,
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_scalar_parameters_round_trip(X, estimator, dtype):
    """Check that NumPy scalar parameters, as searches over ``np.logspace``
    grids or scipy distributions hand them back, save and load."""
    estimator = clone(estimator).set_params(
        learning_rate_init=dtype(1e-2), tol=dtype(1e-4), **SMALL
    )
    estimator.fit(X)
    restored = _round_trip(estimator)
    assert_same_estimator(restored, estimator)
    assert_same_outputs(restored, estimator, X)
    restored.partial_fit(X)
    estimator.partial_fit(X)
    assert_same_outputs(restored, estimator, X)


def test_feature_names_and_output_config_round_trip(X):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"feature {i}" for i in range(X.shape[1])])
    estimator = Autoencoder(n_components=2, hidden_layer_sizes=(), **SMALL)
    estimator.set_output(transform="pandas").fit(frame)
    restored = _round_trip(estimator)
    assert restored.feature_names_in_.dtype == object
    assert_array_equal(restored.feature_names_in_, estimator.feature_names_in_)
    assert restored.components_.dtype == estimator.components_.dtype
    codes = restored.transform(frame)
    assert isinstance(codes, pd.DataFrame)
    pd.testing.assert_frame_equal(codes, estimator.transform(frame))


def test_imputer_output_config_round_trips(X, tmp_path):
    """Check that an imputer's own ``set_output`` survives skae.io (the
    file kept its autoencoder's only)."""
    pd = pytest.importorskip("pandas")
    from skae import AutoencoderImputer, DenoisingAutoencoder

    X_missing = X.astype(np.float64)
    X_missing[::7, 1] = np.nan
    frame = pd.DataFrame(X_missing, columns=[f"f{i}" for i in range(X.shape[1])])
    imputer = AutoencoderImputer(DenoisingAutoencoder(n_components=2, **SMALL))
    imputer.set_output(transform="pandas").fit(frame)
    save(imputer, tmp_path / "imputer.skae")
    restored = load(tmp_path / "imputer.skae")
    filled = restored.transform(frame)
    assert isinstance(filled, pd.DataFrame)
    pd.testing.assert_frame_equal(filled, imputer.transform(frame))


def test_network_parameters_set_after_fit(X, tmp_path):
    """Check that network parameters set after fit leave the fitted model
    as it is until the next fit (as PCA's n_components does), and that
    saving such an estimator is refused with the reason, where it wrote a
    file that loading refused."""
    estimator = Autoencoder(n_components=2, hidden_layer_sizes=(4,), **SMALL).fit(X)
    codes = estimator.transform(X)
    estimator.set_params(n_components=3)
    assert_array_equal(estimator.transform(X), codes)
    assert estimator.inverse_transform(codes).shape == X.shape
    assert len(estimator.get_feature_names_out()) == 2
    with pytest.raises(ValueError, match="n_components from 2 to 3 changed since"):
        save(estimator, tmp_path / "changed.skae")
    estimator.set_params(n_components=2, hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="hidden_layer_sizes from .4,. to .5,."):
        save(estimator, tmp_path / "changed.skae")
    estimator.set_params(hidden_layer_sizes=(4,))
    save(estimator, tmp_path / "same.skae")
    assert_array_equal(load(tmp_path / "same.skae").transform(X), codes)


def test_load_says_how_to_open_a_file_it_cannot_read(saved):
    """Check that a file open in text mode, or a stream that cannot seek,
    gets the fix, not "it is not a skae file"."""

    class Unseekable(io.RawIOBase):
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._data.readinto(b)

    with open(saved, encoding="latin-1") as text:
        with pytest.raises(ValueError, match=r"text mode\. Open it in binary mode"):
            load(text)
    with pytest.raises(ValueError, match=r"cannot seek.*io\.BytesIO"):
        load(Unseekable(saved.read_bytes()))
    assert type(load(io.BytesIO(saved.read_bytes()))).__name__ == "DenoisingAutoencoder"


def test_load_with_explicit_device(fitted, X):
    restored = _round_trip(fitted["contractive"], device="cpu")
    assert restored.device == "cpu"
    assert restored.net_.device == "cpu"
    assert_same_outputs(restored, fitted["contractive"], X)


def test_load_takes_a_torch_device_and_refuses_other_types(fitted, X):
    """Check that a torch.device is read as its name, and that another type
    is refused as the argument's fault (it was blamed on the file)."""
    restored = _round_trip(fitted["contractive"], device=torch.device("cpu"))
    assert restored.device == "cpu"
    assert_same_outputs(restored, fitted["contractive"], X)
    with pytest.raises(TypeError, match="takes device as a str"):
        _round_trip(fitted["contractive"], device=0)


def test_load_says_a_file_cut_short_may_be_a_skae_file(saved):
    """Check that a truncated skae file is not only called foreign: cut in
    its end record it reads as no zip; cut less, zipfile finds the nested
    torch.save archive of its weights."""
    contents = saved.read_bytes()
    for cut in (10, 100):
        saved.write_bytes(contents[:-cut])
        with pytest.raises(ValueError, match="or (like )?a skae file cut short"):
            load(saved)


def test_load_with_unavailable_device_is_an_error(saved):
    with pytest.raises(ValueError, match="not supported|not a valid device"):
        load(saved, device="tpu")


def test_saved_device_unavailable_falls_back_to_cpu(saved, X, monkeypatch):
    _rewrite(
        saved, edit=lambda doc: doc["params"].update(device="cuda"), fix_digest=True
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="device='cuda'.*loaded on the CPU"):
        restored = load(saved)
    assert restored.device == "cpu"
    assert restored.net_.device == "cpu"
    restored.transform(X)


_LOAD_ON_CPU = textwrap.dedent(
    """
    import sys, warnings
    import numpy as np
    import torch
    from skae.io import load

    assert not torch.cuda.is_available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = load(sys.argv[1])
    assert any("loaded on the CPU" in str(w.message) for w in caught)
    assert estimator.device == "cpu" and estimator.net_.device == "cpu"
    np.save(sys.argv[3], estimator.transform(np.load(sys.argv[2])))
    """
)


@pytest.mark.cuda
@requires_cuda
def test_cuda_model_saved_and_loaded_on_cpu(X, tmp_path):
    estimator = ESTIMATORS["denoising"]("cuda").fit(X)
    path = tmp_path / "model.skae"
    save(estimator, path)

    restored = load(path, device="cpu")
    assert restored.net_.device == "cpu"
    assert_allclose(restored.transform(X), estimator.transform(X), rtol=1e-4, atol=1e-5)
    restored.partial_fit(X)

    np.save(tmp_path / "X.npy", X)
    _run_without_cuda(_LOAD_ON_CPU, path, tmp_path / "X.npy", tmp_path / "codes.npy")
    codes = np.load(tmp_path / "codes.npy")
    assert_allclose(codes, estimator.transform(X), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ refusals at save


def test_save_unfitted_estimator_raises(tmp_path):
    with pytest.raises(NotFittedError):
        save(Autoencoder(), tmp_path / "model.skae")
    assert not (tmp_path / "model.skae").exists()


def test_save_refuses_state_that_load_would_refuse(X, tmp_path):
    """Check that save refuses, writing nothing, a network whose state holds
    what load's weights-only reading refuses, rather than writing a file its
    own load then calls forged."""
    estimator = Autoencoder(n_components=2, hidden_layer_sizes=(), **SMALL).fit(X)
    estimator = pickle.loads(pickle.dumps(estimator))  # leave the fixture as is
    estimator.net_.optimizer_.param_groups[0]["lr"] = np.float64(1e-3)
    with pytest.raises(ValueError, match="cannot store.*nothing was written"):
        save(estimator, tmp_path / "model.skae")
    assert not (tmp_path / "model.skae").exists()


def test_save_rejects_other_estimators(X, tmp_path):
    with pytest.raises(TypeError, match="pickle or joblib"):
        save(PCA(n_components=2).fit(X), tmp_path / "model.skae")
    # A wrapper is saved with its autoencoder: one around another estimator
    # is refused for what it holds, not for a parameter it never set.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for estimator in (PCA(1), make_pipeline(StandardScaler(), PCA(1))):
        detector = skae.AutoencoderOutlierDetector(estimator).fit(X)
        name = type(estimator).__name__
        with pytest.raises(TypeError, match=f"this one's estimator_ is a {name}"):
            save(detector, tmp_path / "model.skae")
    assert not (tmp_path / "model.skae").exists()


@pytest.mark.parametrize(
    "param, value",
    [
        ("random_state", np.random.RandomState(0)),
        ("callbacks", [Callback()]),
    ],
)
def test_save_parameters_json_cannot_hold_raises(X, tmp_path, param, value):
    estimator = Autoencoder(n_components=2, hidden_layer_sizes=(), **SMALL).fit(X)
    estimator.set_params(**{param: value})
    path = tmp_path / "model.skae"
    with pytest.raises(ValueError, match=rf"parameter {param}=.*pickle or joblib"):
        save(estimator, path)
    assert not path.exists()


# ------------------------------------------------------------ refusals at load


def test_load_refuses_damaged_weights(saved):
    raw = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        weights = archive.read("weights.pt")
    start = bytes(raw).find(weights)
    assert start >= 0
    raw[start + len(weights) // 2] ^= 0xFF
    saved.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="modified or damaged"):
        load(saved)


def test_load_refuses_weights_not_matching_digest(saved):
    with zipfile.ZipFile(saved) as archive:
        payload = torch.load(io.BytesIO(archive.read("weights.pt")), weights_only=True)
    next(iter(payload["module"].values())).add_(1.0)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    _rewrite(saved, weights=buffer.getvalue())
    with pytest.raises(ValueError, match="SHA-256 digest.*modified or damaged"):
        load(saved)


def test_load_refuses_edited_digest(saved):
    entries = _read_entries(saved)
    entries["skae.sha256"] = b"0" * 64
    _write_entries(saved, entries)
    with pytest.raises(ValueError, match="SHA-256 digest.*modified or damaged"):
        load(saved)


def test_digest_covers_every_entry_as_documented(saved):
    entries = _read_entries(saved)
    assert set(entries) == {"skae.json", "weights.pt", "skae.sha256"}
    assert entries["skae.sha256"] == _archive_digest(entries).encode("ascii")
    assert "weights_sha256" not in json.loads(entries["skae.json"])
    # Entry order and compression in the archive do not change it.
    with zipfile.ZipFile(saved, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in reversed(list(entries)):
            archive.writestr(name, entries[name])
    load(saved)


def _other_activation(doc):
    doc["params"]["activation"] = "relu"


def _history_edit(doc):
    doc["net"]["history"][-1]["train_loss"] = 0.0


def _hook_tensor_edit(doc):
    # The upper end of the salt-and-pepper noise's per-feature range, zeroed:
    # an array of the same shape and dtype.
    array = doc["net"]["hook_tensors"]["corrupt"]["high"]
    zeros = bytes(len(base64.b64decode(array["data"])))
    array["data"] = base64.b64encode(zeros).decode("ascii")


# Every part of skae.json: parameters, fitted attributes, engine state and
# metadata. Edits that no later check could notice are among them: alpha and
# activation fit any weights, and so does a fitted attribute such as n_iter_.
DOCUMENT_EDITS = {
    "activation": _other_activation,
    "n_components": lambda doc: doc["params"].update(n_components=3),
    "alpha": lambda doc: doc["params"].update(alpha=0.5),
    "n_iter_": lambda doc: doc["fitted"].update(n_iter_=99),
    "n_features_in_": lambda doc: doc["fitted"].update(n_features_in_=4),
    "history": _history_edit,
    "seed": lambda doc: doc["net"].update(seed=doc["net"]["seed"] + 1),
    "hook tensor": _hook_tensor_edit,
    "output_config": lambda doc: doc.update(output_config={"transform": "pandas"}),
    "skae_version": lambda doc: doc.update(skae_version="0.0.1"),
}


def test_centring_of_data_far_from_zero_round_trips(tmp_path):
    """Check that the float64 centring of data far from zero (1e9 plus
    values of spread 2) is saved: without it the loaded model reads the
    raw rows, gives one code for every row and decodes near zero."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3)) @ rng.normal(size=(3, 5)) + 1e9
    model = Autoencoder(n_components=2, max_iter=5, random_state=0).fit(X)
    restored = _round_trip(model)
    assert_array_equal(restored.transform(X), model.transform(X))
    codes = model.transform(X)
    assert_array_equal(
        restored.inverse_transform(codes), model.inverse_transform(codes)
    )
    assert restored.score(X) == model.score(X)
    # Files written without it (and fits that need none) load unshifted;
    # a shift of the wrong shape is refused.
    path = tmp_path / "far.skae"
    save(model, path)
    _rewrite(path, edit=lambda doc: doc["net"].pop("input_shift"), fix_digest=True)
    assert load(path)._input_shift is None
    save(model, path)
    _rewrite(
        path,
        edit=lambda doc: doc["net"].update(input_shift=[1.0]),
        fix_digest=True,
    )
    with pytest.raises(ValueError, match="input_shift does not fit"):
        load(path)


# name: (unfitted estimator, offset of X, set_params after fit)
CONTINUED = {
    # The masking fill of data centred far from zero is built from the
    # shift: the file did not load.
    "masking far from zero": lambda: (
        DenoisingAutoencoder(noise="masking", noise_level=0.3, **SMALL),
        1e9,
        {},
    ),
    # Noise changed since fit: the net's hook (and its saved range) is the
    # old noise's until the next call, which builds the new one.
    "salt and pepper set to gaussian": lambda: (
        DenoisingAutoencoder(noise="salt_and_pepper", **SMALL),
        0.0,
        {"noise": "gaussian"},
    ),
    "gaussian set to salt and pepper": lambda: (
        DenoisingAutoencoder(**SMALL),
        0.0,
        {"noise": "salt_and_pepper"},
    ),
    # A new step size replaces the optimizer's on the next call: the loaded
    # net took the new one for its own, and kept the old.
    "learning_rate_init set": lambda: (
        Autoencoder(**SMALL),
        0.0,
        {"learning_rate_init": 0.05},
    ),
}


@pytest.mark.parametrize("case", CONTINUED.values(), ids=CONTINUED)
def test_loaded_estimator_continues_as_the_saved_one(case, X):
    """Check that a loaded estimator continues training (partial_fit) as
    the saved one does, also after set_params since fit: the file did not
    load (noise changed, masking noise far from zero), or the loaded one
    trained at the old step size."""
    model, offset, change = case()
    data = X + offset
    model.fit(data).set_params(**change)
    restored = _round_trip(model)
    assert_same_outputs(restored, model, data)
    for estimator in (model, restored):
        estimator.partial_fit(data)
    assert_same_outputs(restored, model, data)


def test_wrapped_autoencoders_continue_as_saved(X):
    """Check that the autoencoders of the imputer and the detector, saved
    alone or with their wrapper, continue as they would have: the imputer's
    (salt-and-pepper noise on the value columns only) did not load alone,
    and the detector's lost its trimmed fraction and trained untrimmed."""
    imputer = skae.AutoencoderImputer(
        DenoisingAutoencoder(noise="salt_and_pepper", **SMALL)
    )
    X_missing = X.copy()
    X_missing[::5, 1] = np.nan
    inner = imputer.fit(X_missing).estimator_
    Z = np.random.RandomState(1).uniform(size=(24, inner.n_features_in_))
    detector = skae.AutoencoderOutlierDetector(
        Autoencoder(**SMALL), trim_fraction=0.2
    ).fit(X)
    for model in (inner, _round_trip(detector).estimator_, detector.estimator_):
        restored = _round_trip(model)
        data = Z if model is inner else X
        for estimator in (model, restored):
            estimator.partial_fit(data)
        assert_same_outputs(restored, model, data)
    assert _round_trip(detector).estimator_.net_.trim_fraction == 0.2


def test_files_without_training_settings_load(tmp_path, fitted, X):
    """Check that files written before the net's settings were kept load
    (their hooks from the parameters), and that bad settings are refused."""
    path = tmp_path / "model.skae"
    save(fitted["denoising"], path)
    _rewrite(path, edit=lambda doc: doc["net"].pop("settings"), fix_digest=True)
    assert_same_outputs(load(path), fitted["denoising"], X)
    for settings, match in [
        ({"lr": -1.0, "trim_fraction": 0.0, "corruption": None}, "step size"),
        ({"lr": 1e-3, "trim_fraction": 1.0, "corruption": None}, "trim_fraction"),
        ({"lr": 1e-3}, "lack the keys"),
        (
            {
                "lr": 1e-3,
                "trim_fraction": 0.0,
                "corruption": {"noise": "masking", "level": 2.0, "n_values": None},
            },
            "corruption",
        ),
    ]:
        save(fitted["denoising"], path)
        _rewrite(
            path,
            edit=lambda doc, s=settings: doc["net"].update(settings=s),
            fix_digest=True,
        )
        with pytest.raises(ValueError, match=match):
            load(path)


@pytest.mark.parametrize("edit", DOCUMENT_EDITS.values(), ids=DOCUMENT_EDITS)
def test_load_refuses_any_edit_to_the_document(saved, edit):
    _rewrite(saved, edit=edit)
    with pytest.raises(ValueError, match="SHA-256 digest.*modified or damaged"):
        load(saved)


def test_only_the_digest_catches_an_edited_activation(saved, fitted, X):
    """The digest is a checksum, not a signature: with the digest rewritten
    to match, an edited activation loads and changes the codes, so nothing
    but the digest can refuse the edit."""
    _rewrite(saved, edit=_other_activation)
    with pytest.raises(ValueError, match="SHA-256 digest.*modified or damaged"):
        load(saved)
    _rewrite(saved, fix_digest=True)
    forged = load(saved)
    assert forged.activation == "relu"
    assert not np.allclose(forged.transform(X), fitted["denoising"].transform(X))


def _add_entry(entries):
    entries["extra.txt"] = b"added"


def _add_folder(entries):
    entries["skae/"] = b""


def _remove_weights(entries):
    del entries["weights.pt"]


def _remove_digest(entries):
    del entries["skae.sha256"]


@pytest.mark.parametrize(
    "change, message",
    [
        (_add_entry, r"entries \['extra.txt'\], which a skae file"),
        (_add_folder, r"entries \['skae/'\], which a skae file"),
        (_remove_weights, "no weights.pt entry"),
        (_remove_digest, "no skae.sha256 entry"),
    ],
    ids=["extra entry", "extra folder", "no weights", "no digest"],
)
@pytest.mark.parametrize("fix_digest", [False, True], ids=["as is", "digest fixed"])
def test_load_refuses_added_or_removed_entries(saved, change, message, fix_digest):
    entries = _read_entries(saved)
    change(entries)
    if fix_digest and "skae.sha256" in entries:
        entries["skae.sha256"] = _archive_digest(entries).encode("ascii")
    _write_entries(saved, entries)
    with pytest.raises(ValueError, match=f"{message}.*modified or damaged"):
        load(saved)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_load_refuses_repeated_entries(saved):
    entries = _read_entries(saved)
    with zipfile.ZipFile(saved, "a") as archive:
        archive.writestr("skae.json", entries["skae.json"])
    with pytest.raises(ValueError, match=r"\['skae.json'\] more than once"):
        load(saved)


def test_format_version_1_files_still_load(saved, fitted, X):
    _as_format_version_1(saved)
    with pytest.warns(UserWarning, match="format version 1.*weights only"):
        restored = load(saved)
    assert_same_estimator(restored, fitted["denoising"])
    assert_same_outputs(restored, fitted["denoising"], X)


def test_format_version_1_files_keep_their_checks(saved):
    # The digest of the weights, in skae.json.
    _as_format_version_1(saved)
    entries = _read_entries(saved)
    payload = torch.load(io.BytesIO(entries["weights.pt"]), weights_only=True)
    next(iter(payload["module"].values())).add_(1.0)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    entries["weights.pt"] = buffer.getvalue()
    _write_entries(saved, entries)
    with pytest.raises(ValueError, match="SHA-256 digest.*modified or damaged"):
        load(saved)
    # A version 1 file has no skae.sha256 entry: one declared version 1 by
    # an edit of a version 2 file is refused.
    entries["skae.sha256"] = b"0" * 64
    _write_entries(saved, entries)
    with pytest.raises(ValueError, match=r"\['skae.sha256'\].*format version 1"):
        load(saved)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda doc: doc["params"].update(n_components=3), "shape"),
        (lambda doc: doc["params"].update(hidden_layer_sizes=[]), "missing"),
        (lambda doc: doc["params"].update(n_components=-1), "parameters are invalid"),
        (lambda doc: doc["params"].update(no_such_param=1), "parameters do not fit"),
        (lambda doc: doc["fitted"].update(n_features_in_=4), "n_features_in_=4"),
        (lambda doc: doc["fitted"].update(__dict__={}), "invalid fitted attribute"),
        (lambda doc: doc["fitted"].update(loss_="hinge"), "loss_"),
        (lambda doc: doc["net"]["hook_tensors"].clear(), "corrupt hook"),
    ],
)
def test_load_refuses_inconsistent_document(saved, edit, message):
    # Behind the digest (rewritten to match, as a forger would), the
    # document is checked against itself and against the weights.
    _rewrite(saved, edit=edit, fix_digest=True)
    with pytest.raises(ValueError, match=message):
        load(saved)


def _random_bytes(path):
    path.write_bytes(np.random.RandomState(0).bytes(1000))


def _torch_file(path):
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)


def _zip_without_document(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights.pt", b"")


@pytest.mark.parametrize(
    "make, message",
    [
        (_random_bytes, "not a zip archive"),
        (_torch_file, "no skae.json entry.*torch.save"),
        (_zip_without_document, "no skae.json entry"),
    ],
)
def test_load_refuses_foreign_files(tmp_path, make, message):
    path = tmp_path / "foreign"
    make(path)
    with pytest.raises(ValueError, match=message):
        load(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda doc: doc.update(format_version=FORMAT_VERSION + 1), "Upgrade skae"),
        (lambda doc: doc.update(format_version="1"), "format version"),
        (lambda doc: doc.update({"class": "os.system"}), "unknown estimator class"),
        (lambda doc: doc.update({"class": "PCA"}), "unknown estimator class"),
        (lambda doc: doc.update(format="other"), "does not describe a skae"),
        (lambda doc: doc.pop("fitted"), r"lacks the keys \['fitted'\]"),
        (lambda doc: doc["net"].pop("seed"), "'net' entry"),
        (
            lambda doc: doc["params"].update(alpha={"__type__": "function"}),
            "unknown type tag",
        ),
    ],
)
def test_load_refuses_foreign_documents(saved, edit, message):
    _rewrite(saved, edit=edit, fix_digest=True)
    with pytest.raises(ValueError, match=message):
        load(saved)


def test_load_refuses_invalid_json(saved):
    with zipfile.ZipFile(saved) as archive:
        weights = archive.read("weights.pt")
    with zipfile.ZipFile(saved, "w") as archive:
        archive.writestr("skae.json", b"{not json")
        archive.writestr("weights.pt", weights)
    with pytest.raises(ValueError, match="not valid JSON"):
        load(saved)


class _TouchOnUnpickle:
    """Unpickling this object creates a file: a stand-in for any code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def _raw_pickle(obj):
    return pickle.dumps(obj)


def _torch_saved(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "serialize, unsafe_load",
    [
        (_raw_pickle, pickle.loads),
        (
            _torch_saved,
            lambda data: torch.load(io.BytesIO(data), weights_only=False),
        ),
    ],
    ids=["pickle", "torch.save"],
)
@pytest.mark.parametrize("fix_digest", [True, False])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_load_runs_nothing_from_a_malicious_file(
    saved, tmp_path, serialize, unsafe_load, fix_digest
):
    # The payload is live: loading it unsafely runs it.
    canary = tmp_path / "canary"
    unsafe_load(serialize(_TouchOnUnpickle(canary)))
    assert canary.exists()

    marker = tmp_path / "marker"
    _rewrite(saved, weights=serialize(_TouchOnUnpickle(marker)), fix_digest=fix_digest)
    message = "nothing in it was run" if fix_digest else "modified or damaged"
    with pytest.raises(ValueError, match=message):
        load(saved)
    assert not marker.exists()


def test_imputer_file_from_before_indicate_missing(tmp_path):
    """Check that an imputer's file without ``indicate_missing`` among its
    parameters (written before it existed, when the autoencoder read no
    indicators) loads as ``indicate_missing=False`` and fills the same."""
    from skae import AutoencoderImputer, DenoisingAutoencoder

    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 2)) @ rng.normal(size=(2, 5))
    X[rng.uniform(size=X.shape) < 0.2] = np.nan
    est = DenoisingAutoencoder(
        n_components=2, noise="masking", max_iter=3, random_state=0, device="cpu"
    )
    imputer = AutoencoderImputer(est, indicate_missing=False).fit(X)
    path = tmp_path / "imputer.skae"
    save(imputer, path)
    _rewrite(
        path,
        edit=lambda doc: doc["wrapper"]["params"].pop("indicate_missing"),
        fix_digest=True,
    )
    copy = load(path)
    assert copy.indicate_missing is False
    np.testing.assert_array_equal(copy.transform(X), imputer.transform(X))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda w: w.update({"class": "Pipeline"}), "unknown wrapper class"),
        (lambda w: w["fitted"].update({"__class__": 1}), "invalid fitted attribute"),
        (lambda w: w.pop("params"), "lacks the keys"),
        (
            lambda w: w["params"].update({"contamination": 3.0}),
            "parameters are invalid",
        ),
    ],
)
def test_forged_wrapper_entry_is_refused(tmp_path, edit, message):
    """Check that a detector's file edited behind a rewritten digest is
    refused by the checks on its 'wrapper' entry, running nothing."""
    from skae import AutoencoderOutlierDetector

    X = np.random.RandomState(0).normal(size=(60, 4))
    detector = AutoencoderOutlierDetector(
        Autoencoder(n_components=2, max_iter=3, random_state=0, device="cpu")
    ).fit(X)
    path = tmp_path / "detector.skae"
    save(detector, path)
    _rewrite(path, edit=lambda doc: edit(doc["wrapper"]), fix_digest=True)
    with pytest.raises(ValueError, match=message):
        load(path)
