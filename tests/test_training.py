"""The training record and its control: curves, stopping, continuation."""

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback, LRScheduler

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    latent = rng.normal(size=(400, 4))
    return (
        latent @ rng.normal(size=(4, 12)) + 0.1 * rng.normal(size=(400, 12))
    ).astype(np.float32)


class _RecordWeights(Callback):
    """Keep a copy of the module's weights after every epoch."""

    def on_train_begin(self, net, **kwargs):
        self.weights_ = []

    def on_epoch_end(self, net, **kwargs):
        self.weights_.append(copy.deepcopy(net.module_.state_dict()))


def test_training_record(X):
    """Check that loss_curve_, n_iter_ and best_loss_ describe the training."""
    ae = Autoencoder(n_components=3, max_iter=12, tol=0.0, device="cpu", random_state=0)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(12\\)"):
        ae.fit(X)
    assert ae.n_iter_ == 12
    assert len(ae.loss_curve_) == 12
    assert all(isinstance(v, float) and np.isfinite(v) for v in ae.loss_curve_)
    assert ae.best_loss_ == min(ae.loss_curve_)
    assert ae.loss_curve_[-1] < ae.loss_curve_[0]
    assert not hasattr(ae, "validation_scores_")


def test_tol_stops_training_without_convergence_warning(X):
    """Check that no improvement by tol for n_iter_no_change epochs stops training."""
    ae = Autoencoder(
        n_components=3,
        max_iter=50,
        tol=1e6,
        n_iter_no_change=3,
        learning_rate="constant",
        device="cpu",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ae.fit(X)
    # The first epoch sets the best loss; three more fail to beat it by tol.
    assert ae.n_iter_ == 4


class _RecordLearningRate(Callback):
    """Record the optimizer's learning rate at the start of every epoch."""

    def __init__(self):
        self.rates = []

    def on_epoch_begin(self, net, **kwargs):
        self.rates.append(net.optimizer_.param_groups[0]["lr"])


def test_adaptive_learning_rate_divides_by_ten_at_each_plateau(X):
    """Check that learning_rate="adaptive" lowers the rate twice, then stops."""
    recorder = _RecordLearningRate()
    rates = recorder.rates
    ae = Autoencoder(
        n_components=3,
        max_iter=50,
        tol=1e6,
        n_iter_no_change=2,
        learning_rate_init=0.01,
        warm_start=True,
        device="cpu",
        random_state=0,
        callbacks=[recorder],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ae.fit(X)
    # One improving epoch, then three plateaus of two epochs each.
    assert ae.n_iter_ == 7
    np.testing.assert_allclose(rates, [1e-2] * 3 + [1e-3] * 2 + [1e-4] * 2)
    # The next fit starts again from learning_rate_init; partial_fit goes on
    # at the rate fit ended with.
    rates.clear()
    ae.fit(X)
    assert rates[0] == pytest.approx(1e-2)
    rates.clear()
    ae.partial_fit(X)
    assert rates == [pytest.approx(1e-4)]


def test_early_stopping_restores_best_weights():
    """Check that early stopping restores the weights of the best validation epoch."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 30)).astype(np.float32)  # noise: easy to overfit
    ae = Autoencoder(
        n_components=30,
        hidden_layer_sizes=(128,),
        learning_rate_init=1e-2,
        early_stopping=True,
        validation_fraction=0.3,
        n_iter_no_change=5,
        max_iter=200,
        batch_size=8,
        device="cpu",
        random_state=0,
        callbacks=[("record", _RecordWeights())],
    )
    ae.fit(X)
    weights = dict(ae.net_.callbacks_)["record"].weights_
    scores = ae.validation_scores_
    assert len(scores) == ae.n_iter_ == len(weights) < 200
    best = int(np.argmax(scores))
    assert ae.best_validation_score_ == scores[best]
    # Overfitting made the validation loss rise after its best epoch ...
    assert best < ae.n_iter_ - 1
    # ... and the model holds that epoch's weights, not the last ones.
    final = ae.net_.module_.state_dict()
    for name, value in final.items():
        torch.testing.assert_close(value, weights[best][name], rtol=0, atol=0)
    assert any(not torch.equal(final[k], weights[-1][k]) for k in final)


def test_early_stopping_keeps_the_lowest_validation_loss_whatever_tol(X):
    """Check that the kept weights are the epoch of the lowest validation
    loss however little lower it is than an earlier one, as in
    scikit-learn's MLP, while tol decides when to stop: they were the last
    epoch that improved by tol (at tol=1, the first), and
    best_validation_score_ described other weights."""
    ae = Autoencoder(
        n_components=3,
        early_stopping=True,
        tol=1.0,  # in units of the constant reconstruction's loss
        n_iter_no_change=5,
        learning_rate="constant",
        max_iter=50,
        device="cpu",
        random_state=0,
        callbacks=[("record", _RecordWeights())],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(X)
    weights = dict(ae.net_.callbacks_)["record"].weights_
    # No epoch improves by a whole constant loss: the patience ends at 6.
    assert ae.n_iter_ == 6
    best = int(np.argmax(ae.validation_scores_))
    assert best > 0 and ae.best_validation_score_ == ae.validation_scores_[best]
    final = ae.net_.module_.state_dict()
    for name, value in final.items():
        torch.testing.assert_close(value, weights[best][name], rtol=0, atol=0)


class _StopAtEpochEnd(Callback):
    """End training at the end of epoch ``epoch``, as a user's callback may
    (before the stopping rule reads that epoch)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def test_callback_ending_training_keeps_the_rules_best_epoch_and_its_score(X):
    """Check that when a callback ends training at an epoch's end, which the
    stopping rule never reads, best_validation_score_ is the score of the
    weights the rule restores: it was the best of every epoch, the last
    included, whose weights were not kept."""
    recorder = _RecordWeights()
    ae = Autoencoder(
        n_components=3,
        early_stopping=True,
        learning_rate_init=1e-2,
        max_iter=30,
        device="cpu",
        random_state=0,
        callbacks=[("record", recorder), ("stop", _StopAtEpochEnd(8))],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(X)
    weights = dict(ae.net_.callbacks_)["record"].weights_
    scores = ae.validation_scores_
    assert ae.n_iter_ == 8
    kept = next(
        i
        for i, w in enumerate(weights)
        if all(torch.equal(w[k], v) for k, v in ae.net_.module_.state_dict().items())
    )
    # The rule read epochs 1-7 only: it restored the best of those.
    assert kept == int(np.argmax(scores[:7]))
    assert ae.best_validation_score_ == scores[kept]


def test_early_stopping_needs_samples_on_both_sides():
    """Check that a validation split that leaves a side empty is a clear error."""
    ae = Autoencoder(
        n_components=2, early_stopping=True, validation_fraction=0.9, device="cpu"
    )
    with pytest.raises(ValueError, match="leaves 5 of 5 samples"):
        ae.fit(np.ones((5, 4)))


def test_validation_part_is_rounded_up_as_in_mlp_regressor():
    """Check that the validation part has ceil(fraction * n) rows, as
    MLPRegressor's: 5 rows at the default 0.1 hold one out, not none."""
    X = np.random.RandomState(0).normal(size=(5, 3))
    ae = Autoencoder(n_components=2, early_stopping=True, max_iter=2, device="cpu")
    ae.fit(X)
    assert len(ae.validation_scores_) == ae.n_iter_
    train, valid = ae._split_validation(23, 0)
    assert (len(train), len(valid)) == (20, 3)  # 2.3 rounded up
    assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(23))


def test_partial_fit_trains_one_epoch_per_call(X):
    """Check that partial_fit initialises once, then continues one epoch a call."""
    ae = SparseAutoencoder(n_components=4, device="cpu", random_state=0)
    for call in range(1, 6):
        ae.partial_fit(X)
        assert ae.n_iter_ == call == len(ae.loss_curve_)
    assert ae.loss_curve_[-1] < ae.loss_curve_[0]
    before = ae.transform(X)
    ae.partial_fit(X)
    assert ae.n_iter_ == 6
    assert not np.array_equal(ae.transform(X), before)
    with pytest.raises(ValueError, match="features"):
        ae.partial_fit(X[:, :5])


def test_warm_start_continues_training(X):
    """Check that warm_start=True continues from the fitted model."""
    params = dict(n_components=3, max_iter=5, tol=0.0, device="cpu", random_state=0)
    cold = Autoencoder(**params)
    with pytest.warns(ConvergenceWarning):
        first = cold.fit(X).loss_curve_
        again = cold.fit(X).loss_curve_
    assert again == first  # a cold refit starts afresh, identically

    warm = Autoencoder(warm_start=True, **params)
    with pytest.warns(ConvergenceWarning):
        warm.fit(X)
        warm.fit(X)
    assert warm.n_iter_ == 10
    assert warm.loss_curve_[:5] == first
    assert warm.loss_curve_[5] < first[0]


def test_warm_start_validates_on_the_same_rows(X, monkeypatch):
    """Check that every warm_start call with early_stopping holds out the
    same validation rows (as MLPRegressor does): a later call does not
    validate on rows an earlier one trained on."""
    split = Autoencoder._split_validation
    held_out = []

    def recording(self, n_samples, seed):
        train, valid = split(self, n_samples, seed)
        held_out.append(valid)
        return train, valid

    monkeypatch.setattr(Autoencoder, "_split_validation", recording)
    warm = Autoencoder(
        n_components=3,
        max_iter=3,
        early_stopping=True,
        validation_fraction=0.2,
        warm_start=True,
        device="cpu",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            warm.fit(X)
    assert len(held_out) == 3 and len(held_out[0]) == math.ceil(0.2 * len(X))
    for valid in held_out[1:]:
        np.testing.assert_array_equal(valid, held_out[0])
    assert warm.n_iter_ == len(warm.validation_scores_) == 9


def test_verbose_shows_progress_bar_with_loss(X, capsys):
    """Check that verbose shows a tqdm bar over epochs with the current loss."""
    DenoisingAutoencoder(n_components=3, max_iter=3, verbose=1, device="cpu").fit(X)
    err = capsys.readouterr().err
    assert "DenoisingAutoencoder" in err
    assert "3/3" in err
    assert "loss=" in err


def test_silent_by_default(X, capsys):
    """Check that nothing is printed when verbose=False."""
    Autoencoder(n_components=3, max_iter=2, device="cpu").fit(X)
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_skorch_callbacks_learning_rate_scheduler(X):
    """Check that a skorch LRScheduler in callbacks drives the learning rate."""
    scheduler = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    ae = Autoencoder(
        n_components=3,
        max_iter=4,
        tol=0.0,
        learning_rate_init=0.01,
        device="cpu",
        random_state=0,
        callbacks=[scheduler],
    )
    with pytest.warns(ConvergenceWarning):
        ae.fit(X)
    for group in ae.net_.optimizer_.param_groups:
        assert group["lr"] == pytest.approx(0.01 * 0.5**4)
    # The callback given is the one used (as skorch uses it), not a copy.
    assert ae.callbacks[0] is scheduler
    assert scheduler.lr_scheduler_.optimizer is ae.net_.optimizer_


def test_skorch_batch_scheduler_steps_every_batch(X):
    """Check that a per-batch LRScheduler works: it writes each batch's
    learning rate to the history's batch records, which the engine keeps
    when a callback listens to batches (a linear decay to zero here)."""
    ae = Autoencoder(
        n_components=3,
        max_iter=3,
        batch_size=16,
        tol=0.0,
        learning_rate="constant",
        learning_rate_init=0.01,
        device="cpu",
        random_state=0,
    )
    n_steps = 3 * -(-len(X) // 16)
    ae.set_params(
        callbacks=[
            LRScheduler(
                policy="LambdaLR",
                lr_lambda=lambda step: 1 - step / n_steps,
                step_every="batch",
            )
        ]
    )
    with pytest.warns(ConvergenceWarning):
        ae.fit(X)
    batches = [b for epoch in ae.net_.history for b in epoch["batches"]]
    train = [b for b in batches if "train_batch_size" in b]
    assert len(train) == n_steps
    assert sum(b["train_batch_size"] for b in train) == 3 * len(X)
    assert np.isfinite([b["train_loss"] for b in train]).all()
    np.testing.assert_allclose(
        [b["event_lr"] for b in train],
        [0.01 * (1 - t / n_steps) for t in range(n_steps)],
        rtol=1e-6,
    )
    assert ae.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


class _LogToFile(Callback):
    """Write each epoch's loss to an open file (a callback that cannot be
    copied or pickled)."""

    def __init__(self, stream):
        self.stream = stream

    def on_epoch_end(self, net, **kwargs):
        self.stream.write(f"{net.history[-1, 'train_loss']}\n")


def test_callback_holding_an_open_file_is_accepted(X, tmp_path):
    """Check that a callback that cannot be deep-copied works, as in skorch."""
    with open(tmp_path / "log.txt", "w") as stream:
        ae = Autoencoder(
            n_components=3, max_iter=3, tol=0.0, callbacks=[_LogToFile(stream)]
        )
        with pytest.warns(ConvergenceWarning):
            ae.fit(X)
    lines = (tmp_path / "log.txt").read_text().splitlines()
    np.testing.assert_allclose([float(v) for v in lines], ae.loss_curve_, rtol=1e-6)


def test_loss_auto_picks_cross_entropy_for_unit_interval_data():
    """Check loss="auto": cross-entropy on [0, 1] data, squared error else."""
    rng = np.random.default_rng(0)
    X01 = rng.uniform(size=(60, 5))
    params = dict(n_components=2, max_iter=2, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sae = SparseAutoencoder(**params).fit(X01)
        assert sae.loss == "auto" and sae.loss_ == "binary_cross_entropy"
        # Reconstructions go through the logistic output: inside (0, 1).
        X_hat = sae.inverse_transform(sae.transform(X01))
        assert X_hat.min() > 0 and X_hat.max() < 1
        assert SparseAutoencoder(**params).fit(X01 - 0.5).loss_ == "squared_error"
        explicit = SparseAutoencoder(loss="squared_error", **params).fit(X01)
        assert explicit.loss_ == "squared_error"
        assert Autoencoder(**params).fit(X01).loss_ == "squared_error"
        assert Autoencoder(loss="auto", **params).fit(X01).loss_ == (
            "binary_cross_entropy"
        )
        # partial_fit keeps the resolved loss and refuses data it cannot fit.
        with pytest.raises(ValueError, match=r"needs every input value in \[0, 1\]"):
            sae.partial_fit(X01 + 1.0)
        assert sae.loss_ == "binary_cross_entropy"


@pytest.mark.parametrize("unit_norm_decoder", [False, True])
def test_kl_codes_start_at_the_target_rate(unit_norm_decoder):
    """Check that KL code units are initialised at logit(rho), others not,
    with a unit-norm decoder too (its initialisation set the biases to 0:
    every code started at 0.5)."""
    X = np.random.default_rng(0).uniform(size=(200, 8))
    params = dict(n_components=6, max_iter=1, random_state=0, device="cpu")
    params["unit_norm_decoder"] = unit_norm_decoder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for rho in (0.01, 0.2):
            sae = SparseAutoencoder(sparsity_target=rho, **params)
            sae.set_params(learning_rate_init=1e-9).fit(X)
            bias = sae.net_.module_.code_layer.bias.detach().numpy()
            np.testing.assert_allclose(bias, np.log(rho / (1 - rho)), rtol=1e-5)
            # Centred input: the mean code starts near the target, not 0.5.
            assert rho / 2 <= sae.transform(X).mean() <= 2 * rho
        l1 = SparseAutoencoder(sparsity="l1", **params).fit(X)
        assert np.abs(l1.net_.module_.code_layer.bias.detach().numpy()).max() < 1


@pytest.mark.parametrize(
    "est, data",
    [
        (Autoencoder(hidden_layer_sizes=(5,), activation="relu"), "normal"),
        (Autoencoder(hidden_layer_sizes=(), activation="identity"), "normal"),
        (SparseAutoencoder(), "unit"),
        (DenoisingAutoencoder(hidden_layer_sizes=(5,)), "normal"),
        (ContractiveAutoencoder(), "normal"),
    ],
    ids=["relu", "linear", "sparse-cross-entropy", "denoising", "contractive"],
)
def test_training_starts_from_the_best_constant_reconstruction(est, data):
    """Check that the output layer starts with zero weights and the data mean
    (its logit for cross-entropy) as bias, so that every input is first
    reconstructed as the mean, and that the other layers are random."""
    rng = np.random.default_rng(0)
    X = rng.normal(2.0, 0.5, size=(200, 8))
    if data == "unit":
        X = rng.uniform(size=(200, 8))
    # A learning rate of 1e-9 leaves the weights as initialised.
    est.set_params(n_components=3, max_iter=1, learning_rate_init=1e-9, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(device="cpu").fit(X)
    output_layer = est.net_.module_.decoder[-1]
    np.testing.assert_allclose(output_layer.weight.detach().numpy(), 0, atol=1e-7)
    np.testing.assert_allclose(
        est.inverse_transform(est.transform(X)),
        np.broadcast_to(X.mean(axis=0), X.shape),
        rtol=1e-5,
    )
    assert np.abs(est.net_.module_.code_layer.weight.detach().numpy()).min() > 0


def test_input_scaling_per_estimator():
    """Check that the encoder sees each feature standardized (floored at the
    median feature's spread), or only centred for a cross-entropy
    SparseAutoencoder, and that components_ act on the raw input."""
    rng = np.random.default_rng(0)
    X = rng.normal(2.0, 0.3, size=(100, 4)) * np.array([1.0, 3.0, 0.1, 0.5])
    U = rng.uniform(size=(100, 4))
    params = dict(n_components=2, hidden_layer_sizes=(), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(**params, device="cpu").fit(X)
        sae = SparseAutoencoder(**params, device="cpu").fit(X)
        bce = SparseAutoencoder(**params, device="cpu").fit(U)
    assert bce.loss_ == "binary_cross_entropy"
    std = X.std(axis=0)
    standardized = 1 / np.maximum(std, np.median(std))
    for est, data, expected in (
        (ae, X, standardized),
        (sae, X, standardized),
        (bce, U, np.ones(4)),
    ):
        X = data
        module = est.net_.module_
        np.testing.assert_allclose(module.input_offset.numpy(), X.mean(axis=0), 1e-6)
        np.testing.assert_allclose(module.input_scale.numpy(), expected, rtol=1e-5)
        # components_ are the weights applied to the centred raw input.
        bias = module.code_layer.bias.detach().numpy()
        pre = (X - X.mean(axis=0)) @ est.components_.T + bias
        f = {"tanh": np.tanh, "logistic": lambda a: 1 / (1 + np.exp(-a))}
        codes = f[module.activation](pre)
        np.testing.assert_allclose(est.transform(X), codes, atol=1e-5)


def test_moments_and_units():
    """Check the exact mean, the (subsampled) variances and the units from them."""
    from skae._units import _moments, _units

    X = np.random.default_rng(0).normal(3.0, 2.0, size=(2501, 7)).astype(np.float32)
    X[:, 0] *= 1e6
    mean, variance = _moments(X)
    np.testing.assert_allclose(mean, X.mean(axis=0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(variance, X.var(axis=0, dtype=np.float64), rtol=1e-10)
    # A subsample of every 4th row (700 values at most) keeps the mean exact
    # and estimates the variances closely.
    sub_mean, sub_variance = _moments(X, max_values=7 * 700)
    np.testing.assert_array_equal(sub_mean, mean)
    np.testing.assert_allclose(sub_variance, variance, rtol=0.1)
    input_scale, target_scale = _units(variance, mean)
    std = np.sqrt(variance)
    # Features at or above the median spread are standardized; none is
    # amplified beyond the median feature.
    np.testing.assert_allclose(input_scale, 1 / np.maximum(std, np.median(std)))
    assert target_scale == pytest.approx(1 / np.sqrt(variance.mean()), rel=1e-12)
    # Constant data: unit scales.
    input_scale, target_scale = _units(np.zeros(3), np.full(3, 5.0))
    assert target_scale == 1.0
    np.testing.assert_array_equal(input_scale, 1.0)
    # Spread below float32's spacing at the mean (the float64 rounding of
    # identical rows' mean) is none either.
    input_scale, target_scale = _units(np.full(3, 1e-31), np.full(3, 0.5))
    assert target_scale == 1.0
    np.testing.assert_array_equal(input_scale, 1.0)


def test_training_on_one_row_says_the_model_learns_only_that_row(X):
    """Check that fit warns when it trains on one row (one sample, or an
    early-stopping split leaving one), as partial_fit's first call did: the
    model reconstructs that row and nothing else, silently."""
    params = dict(n_components=2, max_iter=3, device="cpu", random_state=0)
    for estimator, data, do in [
        (Autoencoder(**params), X[:1], r"Fit on more rows\."),
        (
            Autoencoder(early_stopping=True, validation_fraction=0.5, **params),
            X[:3],
            "lower validation_fraction",
        ),
    ]:
        with pytest.warns(UserWarning, match=f"here one, .*no more than.*{do}"):
            estimator.fit(data)
    with pytest.warns(UserWarning, match="representative chunk"):
        Autoencoder(**params).partial_fit(X[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        Autoencoder(**params).fit(X[:2])
