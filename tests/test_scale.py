"""Data of any scale and range: units, cross-entropy's range, stopping."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
)
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from skorch.callbacks import Callback

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)


def _r2(est, X):
    """Reconstruction R² of X, in X's units."""
    residual = est.inverse_transform(est.transform(X)) - X
    return 1 - (residual**2).sum() / ((X - X.mean(axis=0)) ** 2).sum()


def _large_offset_data():
    rng = np.random.RandomState(0)
    return rng.randn(300, 10) @ rng.randn(10, 10) * 1e6 + 5e6


def test_data_far_from_unit_scale_is_learned_in_its_units():
    """Check that data at 1e6 scale with a 5e6 offset trains as well as the
    same data standardized, and reconstructs in its own units."""
    B = _large_offset_data()
    pca_r2 = _r2(PCA(4).fit(B), B)
    fitted = {}
    for cls in (Autoencoder, SparseAutoencoder):
        # Default fits end by their stopping rule, at any scale.
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            raw = cls(n_components=4, random_state=0).fit(B)
            unit = cls(n_components=4, random_state=0).fit((B - 5e6) / 1e6)
        # The same model up to float32 rounding: training does not see units.
        np.testing.assert_allclose(
            raw.transform(B), unit.transform((B - 5e6) / 1e6), atol=2e-3
        )
        # Its loss in the decoder's units (documented), not X's 1e12 times.
        np.testing.assert_allclose(raw.loss_curve_, unit.loss_curve_, rtol=1e-3)
        assert _r2(raw, B) > 0.5
        fitted[cls] = raw
    # The plain autoencoder matches PCA's reconstruction (it was 0.000 when
    # the decoder worked in raw units).
    ae = fitted[Autoencoder]
    assert _r2(ae, B) > 0.98 * pca_r2
    assert -ae.score(B) == pytest.approx(
        np.mean((ae.inverse_transform(ae.transform(B)) - B) ** 2), rel=1e-4
    )


def _low_rank_rows(offset, spread=1.0):
    rng = np.random.RandomState(0)
    B = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 6))
    return spread * (B + 0.05 * rng.normal(size=(200, 6))) + offset


@pytest.mark.parametrize(
    "cls",
    [Autoencoder, SparseAutoencoder, ContractiveAutoencoder, DenoisingAutoencoder],
)
def test_data_far_from_zero_trains_as_centred_data(cls):
    """Check that float64 data far from zero compared with their spread (1e9
    plus values of spread 2, where float32 numbers are 64 apart) train and
    score as the same data centred: they were rounded to one value per
    column, every row got the same reconstruction and score reported 0.0."""
    centred = _low_rank_rows(0.0, spread=2.0)
    X = centred + 1e9
    fits = []
    for data in (X, centred):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataConversionWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(cls(n_components=3, max_iter=30, random_state=0).fit(data))
    far, near = fits
    np.testing.assert_allclose(far.transform(X), near.transform(centred), atol=1e-3)
    np.testing.assert_allclose(
        far.score_samples(X), near.score_samples(centred), rtol=1e-3, atol=1e-6
    )
    codes = far.transform(X)
    np.testing.assert_allclose(
        far.inverse_transform(codes) - 1e9,
        near.inverse_transform(near.transform(centred)),
        atol=1e-3,
    )
    assert _r2(far, X) == pytest.approx(_r2(near, centred), abs=1e-3)
    # Float32 codes decode to float32 rows near 1e9, as float32 can hold them.
    decoded = far.inverse_transform(codes.astype(np.float32))
    assert decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, X, rtol=1e-6)


@pytest.mark.parametrize("offset, spread", [(1e12, 0.5), (1e15, 2.0)])
def test_spread_below_a_millionth_of_a_millionth_is_a_spread(offset, spread):
    """Check that a real float64 spread tiny against the values (0.5 at
    1e12; 2 at 1e15, where float64 numbers are 0.125 apart) is centred,
    not taken for a constant column's rounding: it was, and the network
    saw one value per column (score 0.0, reconstructions off by 1e7)."""
    centred = _low_rank_rows(0.0, spread=spread)
    X = centred + offset
    far = Autoencoder(n_components=3, max_iter=20, random_state=0).fit(X)
    # The same data as float64 holds them, centred by hand.
    near = Autoencoder(n_components=3, max_iter=20, random_state=0)
    near.fit(X - X.mean(axis=0))
    np.testing.assert_allclose(far.score(X), near.score(X - X.mean(axis=0)), rtol=1e-3)


def test_constant_column_far_from_zero_leaves_the_scores_right():
    """Check that a constant column at 1e9 beside ordinary ones is centred
    too: the first layer's folded bias (W s 1e9 in float32) was off by
    about 60 units, and score was 0.88 for an error of 0.024."""
    centred = _low_rank_rows(0.0)
    X = centred.copy()
    X[:, 2] = 1e9
    model = Autoencoder(n_components=3, max_iter=20, random_state=0).fit(X)
    reconstructions = model.inverse_transform(model.transform(X))
    np.testing.assert_allclose(
        -model.score(X), np.mean((reconstructions - X) ** 2), rtol=1e-3
    )
    # A constant column of ordinary values is left as it was.
    X[:, 2] = 1.0
    assert Autoencoder(n_components=3, max_iter=2).fit(X)._input_shift is None


def test_partial_fit_far_from_zero_keeps_the_first_chunks_centring():
    """Check that partial_fit centres every chunk by the first chunk's
    shift: chunks at 1e9 train as the same chunks centred."""
    centred = _low_rank_rows(0.0, spread=2.0)
    models = [Autoencoder(n_components=3, random_state=0) for _ in range(2)]
    for chunk in np.array_split(np.arange(len(centred)), 4):
        models[0].partial_fit(centred[chunk] + 1e9)
        models[1].partial_fit(centred[chunk])
    np.testing.assert_allclose(
        models[0].transform(centred + 1e9), models[1].transform(centred), atol=1e-3
    )


def test_masking_noise_far_from_zero_sets_values_to_zero_in_x_units():
    """Check that masking noise sets an entry to 0 in X's units, as
    documented, on data centred in float64: it set it to 0 in the centred
    units, the column's training mean, for the columns far from zero only."""
    X = _low_rank_rows(0.0, spread=2.0)
    X[:, :3] += 1e9  # columns 0-2 centred, 3-5 not
    model = DenoisingAutoencoder(
        n_components=3, noise="masking", noise_level=0.5, max_iter=1
    )
    model.fit(X)
    assert model._input_shift is not None
    inputs = torch.as_tensor(model._centred(X), dtype=torch.float32)
    corrupt = model._corruption(model._centred(X))
    outputs = corrupt(inputs, torch.Generator().manual_seed(0)).double().numpy()
    masked = outputs != inputs.double().numpy()
    assert masked[:, :3].any() and masked[:, 3:].any()
    in_x_units = outputs + model._input_shift
    # Float32 holds -1e9 to within 64 (float32's spacing there).
    np.testing.assert_allclose(in_x_units[masked], 0.0, atol=64.0)
    np.testing.assert_array_equal(outputs[:, 3:][masked[:, 3:]], 0.0)


def test_data_float32_cannot_resolve_warns_and_says_what_to_do():
    """Check that data whose spread float32 rounds away, where skae cannot
    centre them first (float32 X is rounded already; cross-entropy needs X
    in [0, 1]), warn that the network sees them rounded and what to do."""
    with pytest.warns(
        DataConversionWarning,
        match=r"column \d+ has mean 1e\+09.*64 apart.*Pass X as float64",
    ):
        Autoencoder(n_components=3, max_iter=5, random_state=0).fit(
            _low_rank_rows(1e9, spread=1e3).astype(np.float32)
        )
    unit = np.random.RandomState(0).uniform(size=(100, 4))
    unit[:, 0] = 0.5 + 1e-7 * unit[:, 0]
    with pytest.warns(DataConversionWarning, match=r"loss='squared_error'"):
        Autoencoder(n_components=2, loss="binary_cross_entropy", max_iter=5).fit(unit)
    # Far from zero but resolved, or of no spread at all: no warning.
    # Timestamps in seconds (1.7e9) spread over a day are rounded to 128 s.
    resolved = [
        _low_rank_rows(1e3).astype(np.float32),
        _low_rank_rows(1.7e9, spread=86400.0).astype(np.float32),
        np.full((50, 3), 1e9, dtype=np.float32) + np.arange(3, dtype=np.float32),
    ]
    for X in resolved:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataConversionWarning)
            ContractiveAutoencoder(n_components=2, max_iter=2).fit(X)


def test_identical_rows_are_constant_columns():
    """Check that rows that are all the same, whose float64 mean is off
    by rounding, are constant columns: the rounding is not taken for their
    spread and blown up (the contractive penalty reached 1e28)."""
    rows = np.tile(np.random.RandomState(0).normal(size=(1, 4)), (30, 1))
    assert rows.var(axis=0).max() > 0  # the mean's rounding
    model = ContractiveAutoencoder(n_components=2, hidden_layer_sizes=(), max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # nothing to learn
        model.fit(rows)
    assert model.best_loss_ < 1.0
    np.testing.assert_allclose(
        model.transform(rows[:1] + 1e-6), model.transform(rows[:1]), atol=1e-4
    )


@pytest.mark.parametrize("weight", [0.0, 0.01])
def test_contractive_fits_data_at_tiny_scales(weight):
    """Check that data at 1e-20 (raw-input weights near 1e20, whose squares
    overflow float32) trains as the same data at unit scale, with the
    weight scaled as the raw-input Jacobian's square: the fit diverged at
    its first epoch for any weight, 0 included."""
    X = _low_rank_rows(0.0)
    fits = []
    for scale in (1.0, 1e-20):
        model = ContractiveAutoencoder(
            n_components=3,
            contraction_weight=weight * scale**2,
            max_iter=20,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(model.fit(X * scale))
    assert np.isfinite(fits[1].best_loss_)
    np.testing.assert_allclose(
        fits[1].transform(X * 1e-20), fits[0].transform(X), atol=2e-3
    )


def test_raw_wine_codes_feed_a_classifier():
    """Check that codes of unscaled wine (features from 0.1 to 1000) classify
    about as well as PCA's (0.70 when the encoder saw raw units)."""
    X, y = load_wine(return_X_y=True)
    pipe = make_pipeline(
        Autoencoder(n_components=8, random_state=0),
        StandardScaler(),
        LogisticRegression(max_iter=2000),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        accuracy = cross_val_score(pipe, X, y, cv=3).mean()
    assert accuracy > 0.9


def test_auto_loss_tolerates_rounding_at_one():
    """Check that MinMaxScaler's 1 + 2e-16 counts as inside [0, 1]."""
    X = MinMaxScaler().fit_transform(load_breast_cancer().data)
    assert X.max() > 1.0  # the rounding this test is about
    params = dict(n_components=4, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert SparseAutoencoder(**params).fit(X).loss_ == "binary_cross_entropy"
        Autoencoder(loss="binary_cross_entropy", **params).fit(X)
        with pytest.raises(ValueError, match=r"in \[0, 1\]"):
            Autoencoder(loss="binary_cross_entropy", **params).fit(X + 1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_interval_tolerance_is_a_rounding_error(dtype):
    """Check that values 4 epsilons of the dtype outside [0, 1] count as
    inside, and that -1e-6 (a value, not a rounding error) does not."""
    eps = np.finfo(dtype).eps
    params = dict(n_components=1, hidden_layer_sizes=(), max_iter=2, random_state=0)
    inside = np.array([[-4 * eps], [1 + 4 * eps], [0.5]], dtype=dtype)
    outside = np.array([[0.0], [-1e-6], [0.5]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        auto = Autoencoder(loss="auto", **params)
        assert auto.fit(inside).loss_ == "binary_cross_entropy"
        assert auto.fit(outside).loss_ == "squared_error"
        with pytest.raises(ValueError, match=r"got values in \[-1e-06, 0.5\]"):
            Autoencoder(loss="binary_cross_entropy", **params).fit(outside)


@pytest.mark.parametrize("scale", [1e19, 1e30, 1e-30])
def test_scores_at_extreme_scales_are_the_unit_scores_rescaled(scale):
    """Check that squared-error scores in X's units stay finite where they
    overflow float32 (data near 1e19 and beyond): the unit-scale model's
    scores times scale**2, the fit itself being scale-free."""
    X = np.random.RandomState(0).normal(size=(100, 3))
    params = dict(n_components=1, max_iter=5, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        unit = Autoencoder(**params).fit(X)
        scaled = Autoencoder(**params).fit(X * scale)
    scores = scaled.score_samples(X * scale)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(
        scores / scale**2, unit.score_samples(X), rtol=1e-3, atol=1e-6
    )


def test_float32_scores_beyond_float32_range_are_refused_with_the_fix():
    """Check that float32 data whose errors exceed float32's range (1e19
    scale: errors near 1e38 and beyond) get an error that says to pass
    float64, not -inf scores and a NaN ``offset_`` that flags nothing; the
    same data in float64 score finitely."""
    from skae import AutoencoderOutlierDetector

    X = np.random.RandomState(0).normal(size=(100, 3)) * 1e21
    params = dict(n_components=1, max_iter=5, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Autoencoder(**params).fit(X.astype(np.float32))
        assert np.isfinite(model.score_samples(X)).all()
        with pytest.raises(ValueError, match="exceed the range of X's dtype"):
            model.score_samples(X.astype(np.float32))
        with pytest.raises(ValueError, match="Pass X as float64"):
            AutoencoderOutlierDetector(Autoencoder(**params)).fit(X.astype(np.float32))
        detector = AutoencoderOutlierDetector(Autoencoder(**params)).fit(X)
    assert np.isfinite(detector.offset_)
    assert (detector.predict(X) == -1).mean() == pytest.approx(0.1, abs=0.02)


def test_cross_entropy_model_scores_any_finite_input():
    """Check that a cross-entropy model scores held-out rows outside [0, 1]
    (finite, never an error), and scores them as less normal."""
    X = load_digits().data
    pipe = make_pipeline(MinMaxScaler(), SparseAutoencoder(max_iter=5, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, cv=3)
        sae = SparseAutoencoder(max_iter=5, random_state=0).fit(X[:1000] / 16)
    assert np.all(np.isfinite(scores))
    assert sae.loss_ == "binary_cross_entropy"
    rows = X[1000:1100] / 16
    inside = sae.score_samples(rows)
    outside = sae.score_samples(rows * 1.5 - 0.2)
    assert np.all(np.isfinite(outside))
    assert outside.mean() < inside.mean()
    # Rows inside the range are scored by the cross-entropy itself.
    further = sae.score_samples(rows * 3 - 1)
    assert further.mean() < outside.mean()


def test_model_at_the_mean_reconstruction_warns():
    """Check that a fit that learned nothing (a penalty so strong that every
    code stays at its rate) says so."""
    X = StandardScaler().fit_transform(load_wine().data)
    with pytest.warns(ConvergenceWarning, match="learned almost nothing"):
        SparseAutoencoder(
            n_components=4, sparsity_weight=1e4, max_iter=30, random_state=0
        ).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="Maximum iterations"):
            Autoencoder(n_components=4, max_iter=30, random_state=0).fit(X)


def test_model_that_lost_what_it_learned_warns():
    """Check that a fit whose kept (last) epoch is back at the mean
    reconstruction warns, though an earlier epoch was better (ReLU units
    that died under a large step size)."""
    X = load_diabetes(scaled=False).data
    model = ContractiveAutoencoder(
        n_components=3,
        hidden_layer_sizes=(8,),
        activation="relu",
        learning_rate_init=0.5,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="the epoch it keeps"):
        model.fit(X)
    constant = float(model.net_.module_.constant_loss)
    assert model.best_loss_ < 0.9 * constant <= model.loss_curve_[-1]
    residual = model.inverse_transform(model.transform(X)) - X
    assert (residual**2).sum() > 0.99 * ((X - X.mean(axis=0)) ** 2).sum()


class _SpoilLastStep(Callback):
    """Throw the weights far off after the last training step of epoch
    ``epoch``: its mean training loss stays that of the steps before."""

    def __init__(self, epoch, n_steps):
        self.epoch, self.n_steps = epoch, n_steps

    def on_epoch_begin(self, net, **kwargs):
        self.steps_ = 0

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        self.steps_ += bool(training)
        if len(net.history) == self.epoch and self.steps_ == self.n_steps:
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in net.module_.parameters():
                    p.add_(100 * torch.randn(p.shape, generator=generator))


def test_model_worse_than_the_mean_warns_whatever_its_epochs_mean_loss():
    """Check that the learned-nothing check reads the kept weights' own
    reconstruction loss, not the epoch's mean training loss: a fit whose
    last step threw its weights off (as a step size far too large does)
    reconstructed worse than the mean with no warning."""
    X = StandardScaler().fit_transform(load_wine().data)
    model = Autoencoder(
        n_components=3,
        max_iter=3,
        batch_size=32,
        random_state=0,
        callbacks=[_SpoilLastStep(epoch=3, n_steps=-(-len(X) // 32))],
    )
    with pytest.warns(ConvergenceWarning, match="learned almost nothing") as record:
        model.fit(X)
    constant = float(model.net_.module_.constant_loss)
    assert model.loss_curve_[-1] < 0.99 * constant  # the epoch's mean
    residual = model.inverse_transform(model.transform(X)) - X
    assert (residual**2).sum() > ((X - X.mean(axis=0)) ** 2).sum()
    assert any("on its training rows" in str(w.message) for w in record)


@pytest.mark.parametrize(
    "cls",
    [Autoencoder, SparseAutoencoder, ContractiveAutoencoder, DenoisingAutoencoder],
)
@pytest.mark.parametrize("load", [load_iris, load_wine])
def test_default_fit_on_small_data_ends_by_its_stopping_rule(cls, load):
    """Check that a default fit on small standardized data (112 or 133
    rows: one batch per epoch, and 200 epochs, before batch_size="auto"
    and max_iter="auto") stops at a plateau, before its step budget and
    without a ConvergenceWarning."""
    X = StandardScaler().fit_transform(load().data)
    X = X[: int(0.75 * X.shape[0])]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = cls(n_components=3, random_state=0).fit(X)
    assert est.n_iter_ < est._max_epochs(X.shape[0])
    # Small data is split into at least 20 batches per epoch...
    assert est.net_.batch_size == max(16, -(-X.shape[0] // 20))
    # ... and gets at least 50 000 optimizer steps.
    batches = -(-X.shape[0] // est.net_.batch_size)
    assert est._max_epochs(X.shape[0]) * batches >= 50_000


def test_auto_max_iter_is_a_step_budget():
    """Check that max_iter="auto" is 200 epochs on large data, more on small."""
    ae = Autoencoder()
    assert ae._max_epochs(100_000) == 200
    assert ae._max_epochs(1000) == 50_000 // 20
    assert Autoencoder(max_iter=7)._max_epochs(1000) == 7
    assert Autoencoder(batch_size=10)._max_epochs(100) == 5000


def test_stopping_rule_does_not_depend_on_units():
    """Check that tol is measured against the constant reconstruction's loss:
    the same data in other units stops at the same epoch."""
    X = StandardScaler().fit_transform(load_iris().data)
    runs = [
        Autoencoder(n_components=2, random_state=0).fit(X * scale + 7 * scale)
        for scale in (1.0, 1e4)
    ]
    assert runs[0].n_iter_ < runs[0]._max_epochs(X.shape[0])
    assert runs[0].n_iter_ == runs[1].n_iter_
    np.testing.assert_allclose(runs[0].loss_curve_, runs[1].loss_curve_, rtol=1e-3)


def test_linear_autoencoder_reaches_pca_on_wine():
    """Check that the linear autoencoder reaches PCA's training error on
    standardized wine (2.04x with an epoch of one or two batches)."""
    X = StandardScaler().fit_transform(load_wine().data)
    pca = PCA(8).fit(X)
    pca_mse = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(
            n_components=8, activation="identity", hidden_layer_sizes=(), random_state=0
        ).fit(X)
    assert -ae.score(X) < 1.05 * pca_mse
