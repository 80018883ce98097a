"""AutoencoderImputer: scikit-learn's imputer conventions, the loss that
leaves missing entries out, bad input."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skae import Autoencoder, AutoencoderImputer, DenoisingAutoencoder
from skae._nn.objectives import reconstruction_error

FAST = dict(max_iter=5, batch_size=16, device="cpu", random_state=0)

pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def low_rank():
    """400 rows near a 2-d plane in 8-d, 25% of the entries missing."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 2)) @ rng.normal(size=(2, 8))
    X += 0.05 * rng.normal(size=X.shape)
    X_missing = np.where(rng.uniform(size=X.shape) < 0.25, np.nan, X)
    return X, X_missing


@parametrize_with_checks(
    [AutoencoderImputer(DenoisingAutoencoder(n_components=2, noise="masking", **FAST))]
)
def test_sklearn_compatible_imputer(estimator, check):
    check(estimator)


def _rmse(imputer, X, X_missing):
    missing = np.isnan(X_missing)
    X_filled = imputer.fit(X_missing).transform(X_missing)
    return np.sqrt(np.mean((X_filled[missing] - X[missing]) ** 2))


def test_fills_only_the_missing_entries(low_rank):
    X, X_missing = low_rank
    imputer = AutoencoderImputer(random_state=0).fit(X_missing)
    X_filled = imputer.transform(X_missing)
    missing = np.isnan(X_missing)
    assert X_filled.shape == X.shape and np.isfinite(X_filled).all()
    np.testing.assert_array_equal(X_filled[~missing], X_missing[~missing])
    np.testing.assert_allclose(imputer.statistics_, np.nanmean(X_missing, axis=0))
    np.testing.assert_allclose(imputer.scale_, np.nanstd(X_missing, axis=0))
    # New rows are filled from what they hold, row by row.
    np.testing.assert_allclose(
        imputer.transform(X_missing[:7]), X_filled[:7], rtol=1e-5
    )


def test_learns_the_structure_around_the_gaps(low_rank):
    """Check that the network fills the gaps from the observed entries far
    better than the column means: it is trained on what was observed, not
    on the mean it was given in the gaps (counting the gaps in the loss
    teaches it to output the mean there: 0.51x the means' RMSE instead,
    against 0.20x)."""
    X, X_missing = low_rank
    ours = _rmse(AutoencoderImputer(random_state=0), X, X_missing)
    means = _rmse(SimpleImputer(), X, X_missing)
    assert ours < 0.35 * means


def test_masked_reconstruction_error_definition():
    """Each row's error over its observed entries, scaled to the full row."""
    rng = np.random.RandomState(0)
    output, target = (torch.tensor(rng.normal(size=(5, 4))) for _ in range(2))
    observed = torch.tensor(rng.uniform(size=(5, 4)) < 0.6)
    observed[0] = False  # a row with nothing observed counts 0
    got = reconstruction_error(output, target, "squared_error", observed)
    for i in range(5):
        seen = observed[i]
        expected = 0.0
        if seen.any():
            err = (output[i, seen] - target[i, seen]).square().sum()
            expected = float(err) * 4 / int(seen.sum())
        assert float(got[i]) == pytest.approx(expected)
    everything = torch.ones(5, 4, dtype=torch.bool)
    torch.testing.assert_close(
        reconstruction_error(output, target, "squared_error", everything),
        reconstruction_error(output, target, "squared_error"),
    )
    # A mask of the first 3 columns: the 4th (an imputer's missing
    # indicator, say) is never a target, and the rows scale to 3 columns.
    first = reconstruction_error(output, target, "squared_error", observed[:, :3])
    for i in range(1, 5):
        seen = observed[i, :3]
        err = (output[i, :3][seen] - target[i, :3][seen]).square().sum()
        expected = float(err) * 3 / max(int(seen.sum()), 1)
        assert float(first[i]) == pytest.approx(expected)


def test_a_never_observed_feature_gets_no_gradient(low_rank):
    """Check that the engine leaves the masked entries out of the loss: the
    decoder's output unit of a feature that is never observed keeps its
    initial weights and bias (Adam moves nothing without a gradient), while
    the other units train."""
    X, _ = low_rank
    observed = np.ones(X.shape, dtype=bool)
    observed[:, 3] = False
    fits = []
    for max_iter in (1, 6):
        params = dict(FAST, max_iter=max_iter, alpha=0.0)
        ae = Autoencoder(n_components=2, hidden_layer_sizes=(), **params)
        ae._observed = observed
        ae.fit(X)
        layer = ae.net_.module_.decoder[-1]
        fits.append((layer.weight.detach().numpy(), layer.bias.detach().numpy()))
    (w1, b1), (w6, b6) = fits
    np.testing.assert_array_equal(w1[3], w6[3])
    assert b1[3] == b6[3]
    others = [i for i in range(8) if i != 3]
    assert np.abs(w1[others] - w6[others]).min(axis=1).max() > 0


def test_noise_marks_what_it_hides_and_spares_the_indicators():
    """Check the noises on the imputer's input (values, then missing
    indicators): masking sets the values it hides to 0 and marks them
    missing; no noise changes an indicator otherwise."""
    from skae._denoising import _gaussian, _masking, _salt_and_pepper

    rng = np.random.RandomState(0)
    values = torch.tensor(rng.normal(size=(300, 4)) + 3.0)
    indicators = torch.tensor((rng.uniform(size=(300, 4)) < 0.3).astype(float))
    x = torch.cat([values, indicators], dim=1)
    generator = torch.Generator().manual_seed(0)
    out = _masking(x, generator, level=0.4, n_values=4)
    hidden = out[:, :4] == 0
    assert 0.3 < hidden.double().mean() < 0.5
    torch.testing.assert_close(out[:, :4][~hidden], values[~hidden])
    assert (out[:, 4:][hidden] == 1).all()
    torch.testing.assert_close(out[:, 4:][~hidden], indicators[~hidden])
    low, high = values.min(dim=0).values.float(), values.max(dim=0).values.float()
    for noisy in (
        _gaussian(x, generator, level=0.5, n_values=4),
        _salt_and_pepper(x, generator, level=0.5, low=low, high=high, n_values=4),
    ):
        assert (noisy[:, :4] != values).double().mean() > 0.2
        torch.testing.assert_close(noisy[:, 4:], indicators)


def test_missing_indicators_are_inputs_not_targets(low_rank):
    """Check that with ``indicate_missing`` the autoencoder reads one
    indicator column per feature and is never trained to output them: the
    decoder's output units for those columns keep their initial zero
    weights."""
    _, X_missing = low_rank
    imputer = AutoencoderImputer(
        DenoisingAutoencoder(n_components=2, noise="masking", **FAST)
    ).fit(X_missing)
    assert imputer.estimator_.n_features_in_ == 16
    weight = imputer.estimator_.net_.module_.decoder[-1].weight.detach().numpy()
    assert np.abs(weight[:8]).min(axis=1).max() > 0
    np.testing.assert_array_equal(weight[8:], 0.0)
    assert not hasattr(imputer.estimator_, "_n_values")
    plain = AutoencoderImputer(
        DenoisingAutoencoder(n_components=2, noise="masking", **FAST),
        indicate_missing=False,
    ).fit(X_missing)
    assert plain.estimator_.n_features_in_ == 8
    filled = plain.transform(X_missing)
    assert np.isfinite(filled).all()


def test_add_indicator_and_feature_names(low_rank):
    _, X_missing = low_rank
    X_missing = X_missing.copy()
    X_missing[:, 5] = np.nan_to_num(X_missing[:, 5])  # no gap in column 5
    imputer = AutoencoderImputer(
        DenoisingAutoencoder(n_components=2, noise="masking", **FAST),
        add_indicator=True,
    ).fit(X_missing)
    out = imputer.transform(X_missing)
    indicator = MissingIndicator().fit(X_missing).transform(X_missing)
    assert out.shape == (len(X_missing), 8 + indicator.shape[1])
    np.testing.assert_array_equal(out[:, 8:], indicator)
    names = imputer.get_feature_names_out()
    assert list(names[:8]) == [f"x{i}" for i in range(8)]
    assert "missingindicator_x5" not in names and "missingindicator_x0" in names


@pytest.mark.parametrize("output", ["pandas", "polars"])
def test_add_indicator_under_a_global_output_setting(low_rank, output):
    """Check that the indicator columns are appended under a global
    ``transform_output``, as SimpleImputer appends them."""
    pytest.importorskip(output)
    import sklearn

    _, X_missing = low_rank
    imputer = AutoencoderImputer(
        DenoisingAutoencoder(n_components=2, noise="masking", **FAST),
        add_indicator=True,
    ).fit(X_missing)
    expected = imputer.transform(X_missing)
    with sklearn.config_context(transform_output=output):
        out = imputer.transform(X_missing)
        again = clone(imputer).fit_transform(X_missing)
    assert type(out).__module__.split(".")[0] == output
    assert list(out.columns) == list(imputer.get_feature_names_out())
    np.testing.assert_array_equal(np.asarray(out), expected)
    np.testing.assert_array_equal(np.asarray(again), expected)


def test_other_missing_values_and_bad_input(low_rank):
    X, X_missing = low_rank
    coded = np.where(np.isnan(X_missing), -1.0, X_missing)
    imputer = AutoencoderImputer(
        DenoisingAutoencoder(n_components=2, noise="masking", **FAST),
        missing_values=-1.0,
    ).fit(coded)
    out = imputer.transform(coded)
    np.testing.assert_array_equal(out[coded != -1], coded[coded != -1])
    assert not (out == -1).any()
    with pytest.raises(ValueError, match="holds NaN, but missing_values=-1.0"):
        imputer.transform(X_missing)
    empty = X_missing.copy()
    empty[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"Column\(s\) \[2\] of X have no observed"):
        AutoencoderImputer().fit(empty)
    infinite = X_missing.copy()
    infinite[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        AutoencoderImputer().fit(infinite)
    # None marks no number: it would impute nothing (SimpleImputer refuses it
    # for numeric data too).
    with pytest.raises(ValueError, match="'missing_values' parameter.*Got None"):
        AutoencoderImputer(missing_values=None).fit(coded)


def test_pickle_and_pipeline_search(low_rank):
    X, X_missing = low_rank
    y = (X[:, 0] > np.median(X[:, 0])).astype(int)
    est = DenoisingAutoencoder(n_components=2, noise="masking", **FAST)
    imputer = AutoencoderImputer(est).fit(X_missing)
    copy = pickle.loads(pickle.dumps(imputer))
    np.testing.assert_allclose(copy.transform(X_missing), imputer.transform(X_missing))
    pipe = make_pipeline(AutoencoderImputer(est), LogisticRegression())
    search = GridSearchCV(pipe, {"autoencoderimputer__n_passes": [1, 3]}, cv=2).fit(
        X_missing, y
    )
    assert search.best_score_ > 0.8


def test_batched_search_fits_the_imputer_one_by_one_and_says_why(low_rank):
    """Check that BatchedGridSearchCV searches an imputer as GridSearchCV
    does, saying that its masked fit has no batched form (it said the
    estimator had no skae autoencoder)."""
    from skae.model_selection import BatchedGridSearchCV

    _, X_missing = low_rank
    imputer = AutoencoderImputer(DenoisingAutoencoder(n_components=2, **FAST))

    def score(estimator, X_test, y=None):
        return -float(np.nanmean(estimator.transform(X_test)))

    for estimator in (imputer, make_pipeline(imputer)):
        grid = {
            f"{'autoencoderimputer__' * (estimator is not imputer)}n_passes": [1, 2]
        }
        with pytest.warns(UserWarning, match="AutoencoderImputer's masked fit"):
            ours = BatchedGridSearchCV(estimator, grid, scoring=score, cv=2)
            ours.fit(X_missing)
        theirs = GridSearchCV(estimator, grid, scoring=score, cv=2).fit(X_missing)
        np.testing.assert_array_equal(
            ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
        )


@pytest.mark.parametrize("noise", ["masking", "salt_and_pepper"])
@pytest.mark.parametrize("add_indicator", [False, True])
# 2.0**60: a marker that adding 1 leaves unchanged.
@pytest.mark.parametrize("missing_values", [np.nan, -1.0, 2.0**60])
def test_saved_with_skae_io(low_rank, tmp_path, add_indicator, missing_values, noise):
    from skae.io import load, save

    _, X_missing = low_rank
    X_missing = X_missing.copy()
    X_missing[:, 5] = np.nan_to_num(X_missing[:, 5])  # no gap in column 5
    if not np.isnan(missing_values):
        X_missing = np.where(np.isnan(X_missing), missing_values, X_missing)
    imputer = AutoencoderImputer(
        DenoisingAutoencoder(n_components=2, noise=noise, **FAST),
        missing_values=missing_values,
        add_indicator=add_indicator,
    ).fit(X_missing)
    save(imputer, tmp_path / "imputer.skae")
    copy = load(tmp_path / "imputer.skae")
    # The corruption spares the missing indicators, as in the fit (salt and
    # pepper keeps the value columns' range).
    corrupt, fitted = copy.estimator_.net_.corrupt, imputer.estimator_.net_.corrupt
    assert corrupt.keywords["n_values"] == fitted.keywords["n_values"] == 8
    assert type(copy) is AutoencoderImputer
    assert copy.get_params(deep=False).keys() == imputer.get_params(deep=False).keys()
    assert type(copy.estimator) is DenoisingAutoencoder
    np.testing.assert_array_equal(
        copy.transform(X_missing), imputer.transform(X_missing)
    )
    assert list(copy.get_feature_names_out()) == list(imputer.get_feature_names_out())


def test_statistics_and_input_a_block_of_rows_at_a_time(low_rank, monkeypatch):
    """Check that the column statistics and the standardized input are
    computed a block of rows at a time: the same as over the whole of X
    (the last, partial block included), and with float64 temporaries of a
    block's size, not a float64 copy of X."""
    import tracemalloc

    import skae._impute as impute

    _, X_missing = low_rank
    X_missing = X_missing.copy()
    X_missing[-1, 2] = 40.0  # far from the column's mean, in the last block
    whole = AutoencoderImputer(DenoisingAutoencoder(n_components=2, **FAST))
    whole.fit(X_missing)
    monkeypatch.setattr(impute, "_BLOCK", 7)
    blocks = clone(whole).fit(X_missing)
    np.testing.assert_allclose(blocks.statistics_, whole.statistics_, rtol=1e-12)
    np.testing.assert_allclose(blocks.scale_, whole.scale_, rtol=1e-12)
    np.testing.assert_allclose(
        blocks.statistics_, np.nanmean(X_missing, axis=0), rtol=1e-12
    )
    np.testing.assert_allclose(blocks.scale_, np.nanstd(X_missing, axis=0), rtol=1e-12)
    np.testing.assert_allclose(  # the sums' order rounds otherwise
        blocks.transform(X_missing), whole.transform(X_missing), rtol=1e-10
    )
    monkeypatch.setattr(impute, "_BLOCK", 4096)
    big = np.random.RandomState(0).normal(size=(400_000, 5)).astype(np.float32)
    observed = np.ones(big.shape, dtype=bool)
    tracemalloc.start()
    try:
        impute._column_sums(big, observed, lambda x: x**2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < big.nbytes / 4  # a float64 copy is 2 * big.nbytes


@pytest.mark.parametrize("unit", [1e-13, 1e-6, 1e6, 1e160])
def test_columns_at_any_scale_are_standardized(low_rank, unit):
    """Check that a column in tiny or huge units gets its own spread (not
    taken for a constant column) and fills in its range, like the others."""
    X, X_missing = low_rank
    X_missing = X_missing.copy()
    X_missing[:, 3] *= unit
    imputer = AutoencoderImputer(
        DenoisingAutoencoder(n_components=2, noise="masking", **FAST)
    ).fit(X_missing)
    np.testing.assert_allclose(
        imputer.scale_[3], np.nanstd(X_missing[:, 3] / unit) * unit, rtol=1e-6
    )
    filled = imputer.transform(X_missing)[:, 3]
    assert np.isfinite(filled).all()
    gaps = np.isnan(X_missing[:, 3])
    span = np.nanmax(np.abs(X_missing[:, 3]))
    assert np.abs(filled[gaps]).max() < 3 * span


def test_a_row_with_nothing_observed_gets_the_means(low_rank):
    """Check that a row with every entry missing is filled with the
    training means (nothing to reconstruct it from), as SimpleImputer does."""
    X, X_missing = low_rank
    imputer = AutoencoderImputer(
        DenoisingAutoencoder(n_components=2, noise="masking", **FAST)
    ).fit(X_missing)
    rows = np.vstack([np.full(X.shape[1], np.nan), X_missing[:3]])
    filled = imputer.transform(rows)
    np.testing.assert_allclose(filled[0], np.nanmean(X_missing, axis=0))
    np.testing.assert_allclose(filled[1:], imputer.transform(X_missing[:3]))


def test_cross_entropy_estimator_is_refused_with_the_reason(low_rank):
    _, X_missing = low_rank
    estimator = Autoencoder(loss="binary_cross_entropy", **FAST)
    with pytest.raises(ValueError, match="standardized.*loss='squared_error'"):
        AutoencoderImputer(estimator).fit(X_missing)


def test_early_stopping_on_validation_rows_with_nothing_observed_is_refused():
    """Check that validation rows without an observed entry (a loss of 0 at
    every epoch, which early stopping would take for the best) are refused
    rather than stopping at the first epoch's weights."""
    X = np.random.RandomState(0).normal(size=(10, 4))
    X[:6] = np.nan
    estimator = Autoencoder(
        n_components=2, max_iter=20, early_stopping=True, random_state=0
    )
    with pytest.raises(ValueError, match="validation row.*no observed entry"):
        AutoencoderImputer(estimator).fit(X)
    X[:6, 0] = 1.0  # observed entries everywhere: it trains
    AutoencoderImputer(estimator).fit(X)


@pytest.mark.parametrize("indicate_missing", [True, False])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_constant_loss_is_the_masked_loss_of_the_mean(
    low_rank, indicate_missing, early_stopping
):
    """Check that the loss of the best constant reconstruction, tol's unit
    and the "learned almost nothing" baseline, is the loss the masked fit
    measures for the network it starts as: it counted the missing entries
    at the fill and the indicator columns, and read up to twice the
    masked loss's scale, so that a fit that learned warned it had not."""
    from skae._build import _constant_loss

    _, X_missing = low_rank
    # No learning: the first epoch's loss is that of the starting network.
    still = Autoencoder(
        n_components=2,
        learning_rate_init=1e-12,
        max_iter=1,
        early_stopping=early_stopping,
        **{k: v for k, v in FAST.items() if k != "max_iter"},
    )
    imputer = AutoencoderImputer(still, indicate_missing=indicate_missing)
    imputer.fit(X_missing)
    net = imputer.estimator_.net_
    np.testing.assert_allclose(
        net.history[0, "train_loss"], _constant_loss(net), rtol=1e-5
    )


@pytest.mark.parametrize("value", [3e-6, 0.1, 0.0])
def test_a_constant_column_is_filled_with_its_value(low_rank, value):
    """Check that the gaps of a column whose observed entries are all one
    value get that value (a rounding residue in its mean made it a column
    of spread 1, filled by the network's reconstruction: 3e-6 came back
    between -0.005 and 0.007)."""
    _, X_missing = low_rank
    X = np.hstack([X_missing, np.full((len(X_missing), 1), value)])
    gaps = np.random.RandomState(1).uniform(size=len(X)) < 0.2
    X[gaps, -1] = np.nan
    imputer = AutoencoderImputer(DenoisingAutoencoder(n_components=2, **FAST)).fit(X)
    assert imputer.scale_[-1] == 0
    np.testing.assert_allclose(imputer.transform(X)[gaps, -1], value, rtol=1e-12)
    # New rows with another value there: the other fills do not move.
    other = X.copy()
    other[~gaps, -1] = value + 5.0
    np.testing.assert_array_equal(
        imputer.transform(other)[:, :-1], imputer.transform(X)[:, :-1]
    )


def test_statistics_are_accumulated_in_float64(low_rank):
    """Check that float16 data get exact column statistics (their sums were
    accumulated in float16: a column near 1000 overflowed, with an error
    about infinity that X does not hold, and one near 100 lost 1%)."""
    _, X_missing = low_rank
    X = (X_missing + [1000, 100, 0, 0, 0, 0, 0, 0]).astype(np.float16)
    imputer = AutoencoderImputer(DenoisingAutoencoder(n_components=2, **FAST)).fit(X)
    exact = X.astype(np.float64)
    np.testing.assert_allclose(imputer.statistics_, np.nanmean(exact, axis=0))
    np.testing.assert_allclose(imputer.scale_, np.nanstd(exact, axis=0))
    filled = imputer.transform(X)
    assert filled.dtype == np.float16 and np.isfinite(filled).all()


@pytest.mark.parametrize("make", [lambda: PCA(2), lambda: make_pipeline(Autoencoder())])
def test_an_estimator_that_cannot_mask_its_loss_is_refused(low_rank, make):
    """Check that an estimator other than a skae autoencoder (PCA, a
    Pipeline) is refused with the reason: it was fitted with the missing
    entries in its loss, which the docstring says never happens."""
    _, X_missing = low_rank
    with pytest.raises(ValueError, match=r"only skae's autoencoders do.*is a"):
        AutoencoderImputer(make()).fit(X_missing)


def test_pandas_na_marks_the_entries_nan_marks(low_rank, tmp_path):
    """Check that missing_values=pandas.NA, which SimpleImputer takes, fills
    as np.nan does (validation turns pandas.NA into NaN), indicator
    included, and that saving it says how to."""
    pd = pytest.importorskip("pandas")
    from skae.io import save

    _, X_missing = low_rank
    frame = pd.DataFrame(X_missing).astype("Float64")
    estimator = DenoisingAutoencoder(n_components=2, **FAST)
    ours = AutoencoderImputer(estimator, missing_values=pd.NA, add_indicator=True)
    nan = AutoencoderImputer(estimator, add_indicator=True)
    np.testing.assert_array_equal(ours.fit_transform(frame), nan.fit_transform(frame))
    assert ours.__sklearn_tags__().input_tags.allow_nan
    with pytest.raises(ValueError, match=r"Set missing_values=np\.nan before saving"):
        save(ours, tmp_path / "imputer.skae")
