"""Faults during training and inference: divergence, interruption, running out
of memory, overflow, and concurrent use."""

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from skae import (
    Autoencoder,
    AutoencoderImputer,
    AutoencoderOutlierDetector,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)
from skae._base import _OutOfMemoryError
from skae._engine.net import AutoencoderNet

ESTIMATORS = [
    Autoencoder,
    SparseAutoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
]


def _data(n=200, d=8, seed=0):
    return np.random.RandomState(seed).rand(n, d).astype(np.float32)


def _small(cls, **params):
    params = {
        "n_components": 3,
        "hidden_layer_sizes": (),
        "max_iter": 4,
        "batch_size": 32,
        "random_state": 0,
        **params,
    }
    return cls(**params)


def _state(est):
    return {k: v.clone() for k, v in est.net_.module_.state_dict().items()}


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ----------------------------------------------------------------- divergence

DIVERGING = {
    "activation": "identity",
    "solver": "sgd",
    "learning_rate_init": 10.0,
}


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_divergence_is_an_error_and_leaves_the_estimator_unfitted(cls):
    X = _data() * 100
    params = dict(DIVERGING)
    if cls is SparseAutoencoder:
        params.update(sparsity="l1")
    est = _small(cls, **params)
    with pytest.raises(ValueError, match="Training diverged.*left unfitted.*Lower"):
        est.fit(X)
    assert not hasattr(est, "net_")
    assert not hasattr(est, "n_features_in_")
    with pytest.raises(Exception, match="not fitted"):
        est.transform(X)


def test_divergence_in_a_refit_keeps_the_previous_model():
    X = _data()
    est = _small(Autoencoder, activation="identity").fit(X)
    codes, state, n_iter = est.transform(X), _state(est), est.n_iter_
    with pytest.raises(ValueError, match="keeps its state from before"):
        est.set_params(**DIVERGING).fit(X * 100)
    assert est.n_iter_ == n_iter and _same_state(state, _state(est))
    np.testing.assert_array_equal(est.transform(X), codes)


@pytest.mark.parametrize("continuing", ["warm_start", "partial_fit"])
def test_divergence_when_continuing_rewinds_to_the_start_of_the_call(continuing):
    X = _data()
    est = _small(Autoencoder, activation="identity", solver="sgd").fit(X)
    state, n_iter, curve = _state(est), est.n_iter_, list(est.loss_curve_)
    est.set_params(learning_rate_init=10.0, warm_start=True)
    with pytest.raises(ValueError, match="Training diverged"):
        if continuing == "warm_start":
            est.fit(X * 100)
        else:
            est.partial_fit(X * 100)
    assert _same_state(state, _state(est))
    assert est.n_iter_ == n_iter and est.loss_curve_ == curve
    assert len(est.net_.history) == n_iter
    assert np.isfinite(est.transform(X)).all()


# --------------------------------------------------------------- interruption


class _InterruptAt(Callback):
    """Raise KeyboardInterrupt in the middle of epoch ``epoch`` (1-based)."""

    def __init__(self, epoch=1):
        self.epoch = epoch

    def on_epoch_begin(self, net, **kwargs):
        self.batches_ = 0

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        self.batches_ += 1
        if training and len(net.history) == self.epoch and self.batches_ >= 2:
            raise KeyboardInterrupt


class _Recorder(Callback):
    """Keep a copy of the weights at the end of every epoch, in ``states``.

    A class attribute: the estimator trains deep copies of its callbacks.
    """

    states = []

    def on_epoch_end(self, net, **kwargs):
        self.states.append({k: v.clone() for k, v in net.module_.state_dict().items()})


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_keyboard_interrupt_keeps_the_last_completed_epoch(cls):
    X = _data()
    _Recorder.states = states = []
    est = _small(cls, max_iter=10, callbacks=[_Recorder(), _InterruptAt(epoch=3)])
    with pytest.warns(UserWarning, match="interrupted by the user.*epoch.*2"):
        est.fit(X)
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2
    assert np.isfinite(est.loss_curve_).all()
    assert _same_state(states[1], _state(est))
    codes = est.transform(X)
    assert codes.shape == (len(X), 3) and np.isfinite(codes).all()


class _SpoilAfter(Callback):
    """Add large noise to the weights as epoch ``epoch + 1`` begins: the
    epochs after ``epoch`` score far worse on the validation rows."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch + 1:
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in net.module_.parameters():
                    p.add_(10 * torch.randn(p.shape, generator=generator))


def test_keyboard_interrupt_with_early_stopping_keeps_the_best_epoch():
    """Check that an interrupted fit with early stopping keeps, and says it
    keeps, the weights of its best epoch on the validation rows, as early
    stopping does at any end: it said the last completed epoch's."""
    X = _data()
    _Recorder.states = states = []
    est = _small(
        Autoencoder,
        max_iter=20,
        early_stopping=True,
        tol=0.0,
        callbacks=[_Recorder(), _SpoilAfter(epoch=3), _InterruptAt(epoch=6)],
    )
    with pytest.warns(UserWarning, match="interrupted by the user") as record:
        est.fit(X)
    assert est.n_iter_ == 5
    best = int(np.argmax(est.validation_scores_)) + 1
    assert best <= 3
    assert _same_state(states[best - 1], _state(est))
    message = str(record[0].message)
    assert "5 completed epochs" in message and f"(epoch {best})" in message


class _TransformEachEpoch(Callback):
    """Call ``transform`` of the estimator being fitted after each epoch, and
    keep what it raised in ``errors`` (a class attribute: the estimator
    trains deep copies of its callbacks, not the estimator itself)."""

    estimator, errors = None, []

    def on_epoch_end(self, net, **kwargs):
        try:
            _TransformEachEpoch.estimator.transform(_data(5))
        except Exception as exc:  # what a user's callback would see
            _TransformEachEpoch.errors.append(exc)


def test_transform_during_the_first_fit_is_not_fitted_yet():
    """Check that the estimator reads as unfitted until its first fit ends
    (NotFittedError from transform in a callback): it read as fitted once
    fit had set n_features_in_, and transform raised an AttributeError."""
    est = _small(Autoencoder, max_iter=2, callbacks=[_TransformEachEpoch()])
    _TransformEachEpoch.estimator, _TransformEachEpoch.errors = est, []
    est.fit(_data())
    errors = _TransformEachEpoch.errors
    assert len(errors) == 2 and all(isinstance(e, NotFittedError) for e in errors)
    assert np.isfinite(est.transform(_data(5))).all()


def test_keyboard_interrupt_in_the_first_epoch_propagates_and_fits_nothing():
    est = _small(Autoencoder, callbacks=[_InterruptAt(epoch=1)])
    with pytest.raises(KeyboardInterrupt):
        est.fit(_data())
    assert not hasattr(est, "net_") and not hasattr(est, "n_features_in_")


def test_keyboard_interrupt_when_continuing_keeps_the_previous_epochs():
    X = _data()
    est = _small(Autoencoder, max_iter=3, warm_start=True).fit(X)
    state = _state(est)
    est.set_params(callbacks=[_InterruptAt(epoch=4)])
    with pytest.warns(UserWarning, match="interrupted by the user"):
        est.fit(X)
    assert est.n_iter_ == 3 and _same_state(state, _state(est))
    # Training goes on from there.
    est.set_params(callbacks=None).partial_fit(X)
    assert est.n_iter_ == 4


class _FailAtBatch(Callback):
    def __init__(self, batch, error):
        self.batch, self.error = batch, error

    def initialize(self):
        self.seen_ = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.seen_ += 1
        if self.seen_ == self.batch:
            raise self.error("mid-epoch")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize(
    "params",
    [
        dict(sparsity="l1", sparsity_weight=1.0, sparsity_warmup=500),
        dict(sparsity="kl", sparsity_momentum=0.9),
    ],
    ids=["warm-up", "moving average"],
)
def test_failed_call_rewinds_the_training_statistics(params, error):
    """Check that a call failing or interrupted mid-epoch also rewinds the
    module's training statistics (the steps the warm-up counts, KL's moving
    average): the next call trains as if the failed one never ran."""
    X = _data()
    failed, twin = (
        SparseAutoencoder(n_components=4, batch_size=16, random_state=0, **params)
        for _ in range(2)
    )
    for est in (failed, twin):
        est.partial_fit(X)
    failed.set_params(callbacks=[_FailAtBatch(5, error)])
    if error is KeyboardInterrupt:  # the last completed epoch is kept
        with pytest.warns(UserWarning, match="interrupted by the user"):
            failed.partial_fit(X)
    else:
        with pytest.raises(error):
            failed.partial_fit(X)
    assert failed.net_.module_.steps_trained == twin.net_.module_.steps_trained
    failed.set_params(callbacks=None).partial_fit(X)
    twin.partial_fit(X)
    np.testing.assert_array_equal(failed.transform(X), twin.transform(X))


@pytest.mark.parametrize("wrapper", ["imputer", "detector"])
def test_failed_refit_of_a_wrapper_keeps_its_previous_fit(wrapper):
    """Check that an imputer or detector whose autoencoder fails during a
    refit keeps its previous fit whole: its statistics and feature count
    were those of the new data, beside the old autoencoder (the imputer's
    fills were off by 1e4)."""
    old, new = _data(), 1000 * _data(seed=1)[:, :5] + 50
    if wrapper == "imputer":
        old[::7, 2] = new[::5, 1] = np.nan
        est = AutoencoderImputer(_small(Autoencoder, max_iter=2)).fit(old)
        output = est.transform
    else:
        est = AutoencoderOutlierDetector(_small(Autoencoder, max_iter=2)).fit(old)
        output = est.decision_function
    before, expected = dict(vars(est)), output(old)
    est.estimator.set_params(callbacks=[_FailAtBatch(3, RuntimeError)])
    with pytest.raises(RuntimeError, match="mid-epoch"):
        est.fit(new)
    assert vars(est).keys() == before.keys()
    for name, value in before.items():
        assert getattr(est, name) is value, name
    np.testing.assert_array_equal(output(old), expected)


@pytest.mark.parametrize("failure", ["invalid noise level", "callback error"])
def test_failed_call_leaves_the_net_training_settings(failure):
    """Check that a failed call leaves a continued net's training settings
    (step size, batch size, weight decay, noise) as they were: the new
    settings reached the shared net before the call failed, and the next
    call trained at the failed call's step size."""
    X = _data()
    make = lambda: _small(  # noqa: E731
        DenoisingAutoencoder, noise="masking", max_iter=3, warm_start=True
    )
    failed, twin = make().fit(X), make().fit(X)
    settings = {"learning_rate_init": 0.5, "batch_size": 8, "alpha": 0.1}
    if failure == "invalid noise level":
        failed.set_params(noise_level=2.0, **settings)
        with pytest.raises(ValueError, match="noise_level"):
            failed.partial_fit(X)
        failed.set_params(noise_level=twin.noise_level)
    else:
        failed.set_params(callbacks=[_FailAtBatch(3, RuntimeError)], **settings)
        with pytest.raises(RuntimeError, match="mid-epoch"):
            failed.fit(X)
        failed.set_params(callbacks=None)
    net, expected = failed.net_, twin.net_
    for name in ("lr", "batch_size", "weight_decay"):
        assert getattr(net, name) == getattr(expected, name), name
    assert (
        net.optimizer_.param_groups[0]["lr"]
        == (expected.optimizer_.param_groups[0]["lr"])
    )
    # Carried on with the twin's parameters, it trains as the twin does.
    failed.set_params(**{k: twin.get_params()[k] for k in settings})
    failed.partial_fit(X)
    twin.partial_fit(X)
    np.testing.assert_array_equal(failed.transform(X), twin.transform(X))


def test_a_callback_stopping_at_the_end_of_an_epoch_is_not_an_interruption():
    class StopAfter(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                raise KeyboardInterrupt

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Training interrupted")
        est = _small(Autoencoder, max_iter=10, callbacks=[StopAfter()]).fit(_data())
    assert est.n_iter_ == 2


# -------------------------------------------------------------- out of memory


def _raise_oom(*args, **kwargs):
    raise _OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_during_fit_says_which_batch_size_to_lower(monkeypatch):
    monkeypatch.setattr(AutoencoderNet, "train_step_single", _raise_oom)
    est = _small(Autoencoder, batch_size=64)
    with pytest.raises(MemoryError, match=r"batch_size=64.*batch_size=32"):
        est.fit(_data())
    assert not hasattr(est, "net_")


def test_out_of_memory_during_transform_is_explained(monkeypatch):
    X = _data()
    est = _small(Autoencoder).fit(X)
    monkeypatch.setattr(type(est.net_.module_), "inference_encoder", _raise_oom)
    with pytest.raises(MemoryError, match="ran out of memory.*rows at a time"):
        est.transform(X)


# ------------------------------------------------------------------ overflow


@pytest.mark.parametrize("method", ["transform", "score_samples"])
def test_inputs_that_overflow_the_network_are_refused(method):
    X = _data()
    est = _small(Autoencoder, activation="identity").fit(X)
    huge = np.full((3, X.shape[1]), 3e38, dtype=np.float32)
    with pytest.raises(ValueError, match="not finite.*Scale X"):
        getattr(est, method)(huge)


def test_codes_that_overflow_the_decoder_are_refused():
    X = _data()
    est = _small(Autoencoder, activation="identity").fit(X)
    with torch.no_grad():
        est.net_.module_.decoder[-1].weight.fill_(10.0)
    codes = np.full((2, 3), 3e37, dtype=np.float32)
    with pytest.raises(ValueError, match="reconstructions .* not finite"):
        est.inverse_transform(codes)


# ---------------------------------------------------------------- concurrency


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_transform_from_several_threads_gives_identical_results(cls):
    X = _data(n=3000)
    est = _small(cls, max_iter=2).fit(X)
    expected = est.transform(X)
    barrier = threading.Barrier(4)

    def encode(_):
        barrier.wait()
        return est.transform(X), est.score_samples(X)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(encode, range(8)))
    for codes, scores in results:
        np.testing.assert_array_equal(codes, expected)
        np.testing.assert_array_equal(scores, results[0][1])


def test_two_estimators_fitted_at_once_equal_their_separate_fits():
    X1, X2 = _data(seed=1), _data(seed=2)

    def fit(args):
        X, seed = args
        return _small(DenoisingAutoencoder, random_state=seed, max_iter=6).fit(X)

    alone = [fit((X1, 1)), fit((X2, 2))]
    barrier = threading.Barrier(2)

    def fit_together(args):
        barrier.wait()
        return fit(args)

    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit_together, [(X1, 1), (X2, 2)]))
    for a, b in zip(alone, together):
        assert _same_state(_state(a), _state(b))
        assert a.loss_curve_ == b.loss_curve_


def test_fitting_does_not_touch_global_random_state():
    torch.manual_seed(123)
    np.random.seed(123)
    expected_torch, expected_numpy = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    _small(DenoisingAutoencoder).fit(_data())
    assert torch.equal(torch.rand(3), expected_torch)
    np.testing.assert_array_equal(np.random.rand(3), expected_numpy)


class _ThreadCount(Callback):
    """Append ``pid torch_threads`` to a file when training begins."""

    def __init__(self, path=None):
        self.path = path

    def on_train_begin(self, net, **kwargs):
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()} {torch.get_num_threads()}\n")


def test_parallel_grid_search_workers_do_not_oversubscribe(tmp_path):
    # joblib's process workers start with OpenMP limited to
    # cpu_count // n_jobs threads, and torch follows it.
    path = str(tmp_path / "threads.txt")
    est = _small(Autoencoder, max_iter=1, callbacks=[_ThreadCount(path)])
    search = GridSearchCV(est, {"alpha": [1e-4, 1e-3]}, cv=2, n_jobs=2)
    search.fit(_data(n=60))
    rows = [line.split() for line in open(path).read().splitlines()]
    workers = [int(threads) for pid, threads in rows if int(pid) != os.getpid()]
    assert workers, "the search ran no fit in a worker process"
    assert max(workers) <= max(1, os.cpu_count() // 2)


def test_transform_finds_nan_and_infinity_through_the_first_layer():
    """Check that transform, which looks for NaN and infinity in a float32 X
    in the first layer's output rather than in a pass over X, refuses them
    in any block and row with scikit-learn's message, and that a first
    layer whose sum overflows (finite values) is not mistaken for them."""
    from skae._engine.inference import INFERENCE_BLOCK as _INFERENCE_BLOCK

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2 * _INFERENCE_BLOCK + 5, 4)).astype(np.float32)
    for activation in ("tanh", "relu"):
        est = _small(Autoencoder, activation=activation, hidden_layer_sizes=(3,))
        est.fit(X)
        for row in (0, _INFERENCE_BLOCK + 7, len(X) - 1):
            for value, message in ((np.nan, "contains NaN"), (np.inf, "infinity")):
                bad = X.copy()
                bad[row, 2] = value
                with pytest.raises(ValueError, match=message):
                    est.transform(bad)
    # Large finite inputs: the first layer's sum overflows float32 while
    # each value is finite, and tanh maps them to finite codes.
    est = _small(Autoencoder, activation="tanh", hidden_layer_sizes=())
    est.fit(X)
    big = np.full((200, 4), 1e37, dtype=np.float32)
    module = est.net_.module_
    with torch.inference_mode():
        weight = module.input_weight
        bias = module.encoder[0].bias - weight @ module.input_offset
        first = torch.from_numpy(big) @ weight.T + bias
    assert torch.isfinite(first).all() and not torch.isfinite(first.sum())
    codes = est.transform(big)
    assert np.isfinite(codes).all()
