"""AutoencoderOutlierDetector: scikit-learn's outlier-detector conventions,
PyOD-named fitted attributes, the trimmed loss."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone, is_outlier_detector
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from skae import Autoencoder, AutoencoderOutlierDetector
from skae.model_selection import BatchedGridSearchCV

FAST = dict(max_iter=5, batch_size=16, device="cpu", random_state=0)


pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def data():
    """Rows near a 2-d plane in 6-d, and 20 rows far off it."""
    rng = np.random.RandomState(0)
    inliers = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 6))
    inliers += 0.05 * rng.normal(size=inliers.shape)
    outliers = 3 * rng.normal(size=(20, 6))
    return inliers, outliers


@pytest.fixture(scope="module")
def labelled(data):
    """The rows of ``data`` shuffled, labelled +1 (inlier) and -1 (outlier)."""
    inliers, outliers = data
    X = np.vstack([inliers, outliers])
    y = np.r_[np.ones(len(inliers)), -np.ones(len(outliers))]
    order = np.random.RandomState(1).permutation(len(X))
    return X[order], y[order]


@parametrize_with_checks(
    [AutoencoderOutlierDetector(Autoencoder(n_components=2, **FAST))]
)
def test_sklearn_compatible_detector(estimator, check):
    check(estimator)


def test_conventions_and_pyod_attributes(data):
    """Check scikit-learn's signs, the contamination fraction, and the
    PyOD-named attributes' meaning."""
    inliers, outliers = data
    X = np.vstack([inliers, outliers])
    detector = AutoencoderOutlierDetector(
        Autoencoder(n_components=2, max_iter=50, random_state=0, device="cpu"),
        contamination=0.1,
    ).fit(X)
    assert is_outlier_detector(detector)
    scores = detector.score_samples(X)
    np.testing.assert_allclose(detector.decision_function(X), scores - detector.offset_)
    labels = detector.predict(X)
    assert set(np.unique(labels)) == {-1, 1}
    assert abs((labels == -1).mean() - 0.1) <= 1 / len(X)
    np.testing.assert_array_equal(labels, np.where(scores < detector.offset_, -1, 1))
    # PyOD's meaning: higher decision_scores_ is more abnormal, labels_ 0/1.
    np.testing.assert_allclose(detector.decision_scores_, -scores)
    assert detector.threshold_ == -detector.offset_
    np.testing.assert_array_equal(detector.labels_, (labels == -1).astype(int))
    # The far rows are the ones flagged.
    assert (labels[len(inliers) :] == -1).mean() > 0.9
    assert (labels[: len(inliers)] == 1).mean() > 0.95


def test_default_estimator_and_pickling(data):
    inliers, _ = data
    detector = AutoencoderOutlierDetector(contamination=0.05).fit(inliers)
    assert type(detector.estimator_) is Autoencoder
    again = pickle.loads(pickle.dumps(detector))
    np.testing.assert_array_equal(again.predict(inliers), detector.predict(inliers))


def test_random_state_seeds_the_default_estimator(data):
    """Check that ``random_state`` seeds the default autoencoder, as
    IsolationForest's seeds its trees, and leaves a given one's seed alone."""
    rows = data[0][:40]
    fits = [
        AutoencoderOutlierDetector(random_state=seed).fit(rows) for seed in (0, 0, 1)
    ]
    assert fits[0].estimator_.random_state == 0
    np.testing.assert_array_equal(fits[0].decision_scores_, fits[1].decision_scores_)
    assert not np.array_equal(fits[0].decision_scores_, fits[2].decision_scores_)
    given = AutoencoderOutlierDetector(Autoencoder(**FAST), random_state=1).fit(rows)
    assert given.estimator_.random_state == FAST["random_state"]


def test_trimmed_loss_leaves_the_worst_rows_out(data):
    """Check that with trim_fraction the far rows do not pull the model: the
    inliers are reconstructed better than by a model trained on every row."""
    inliers, outliers = data
    X = np.vstack([inliers, outliers])
    params = dict(n_components=2, max_iter=60, random_state=0, device="cpu")
    errors = {}
    for trim in (0.0, 0.1):
        detector = AutoencoderOutlierDetector(
            Autoencoder(**params), contamination=0.06, trim_fraction=trim
        ).fit(X)
        errors[trim] = -detector.score_samples(inliers).mean()
        gap = detector.score_samples(inliers).mean()
        gap -= detector.score_samples(outliers).mean()
        errors[trim, "gap"] = gap
    assert errors[0.1] < 0.8 * errors[0.0]
    assert errors[0.1, "gap"] > errors[0.0, "gap"]


def test_trimmed_fit_of_contaminated_data_is_not_said_to_learn_nothing():
    """Check that the learned-nothing check of a trimmed fit leaves the
    worst rows out, as its loss does: on rank-2 rows with 15% of outliers
    far away, a model that reconstructs the inliers within 1% of their
    spread was said to have learned almost nothing."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 8))
    X += 0.01 * rng.normal(size=X.shape)
    outliers = rng.rand(300) < 0.15
    X[outliers] = rng.normal(scale=30, size=(outliers.sum(), 8))
    estimator = Autoencoder(
        n_components=2, max_iter=20, learning_rate_init=0.01, tol=0, random_state=0
    )
    detector = AutoencoderOutlierDetector(estimator, trim_fraction=0.2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", ConvergenceWarning)
        detector.fit(X)
    assert not any("learned almost nothing" in str(w.message) for w in record)
    # The inliers are reconstructed, the outliers not.
    errors = -detector.score_samples(X)
    assert errors[~outliers].max() < errors[outliers].min()


def test_trim_fraction_below_one_row_per_batch_still_trims(data, monkeypatch):
    """Check that trim_fraction trims that fraction of the rows on average
    when it is less than one row of a batch (0.03 of 16 rows), and that the
    rows it trims are drawn reproducibly from random_state."""
    from skae._engine.net import AutoencoderNet

    trimmed = AutoencoderNet._trimmed
    counts = []

    def counting(net, x):
        kept = trimmed(net, x)
        counts.append((len(x), len(kept)))
        return kept

    monkeypatch.setattr(AutoencoderNet, "_trimmed", counting)
    X = np.vstack(data)
    params = dict(n_components=2, max_iter=40, batch_size=16, random_state=0)
    scores = []
    for _ in range(2):
        detector = AutoencoderOutlierDetector(
            Autoencoder(**params, device="cpu"), trim_fraction=0.03
        ).fit(X)
        scores.append(detector.score_samples(X))
    seen, kept = np.sum(counts, axis=0)
    assert (seen - kept) / seen == pytest.approx(0.03, abs=0.005)
    np.testing.assert_array_equal(scores[0], scores[1])


def test_tuned_with_grid_search_on_labels(labelled):
    """Check that GridSearchCV tunes the detector with scoring="roc_auc"
    against labels (+1 inlier, -1 outlier)."""
    X, y = labelled
    search = GridSearchCV(
        AutoencoderOutlierDetector(Autoencoder(**FAST)),
        {"estimator__n_components": [1, 2]},
        scoring="roc_auc",
        cv=3,
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.8


def _batched_as_sequential(estimator, grid, X, y):
    """Check that BatchedGridSearchCV trains every fit of ``grid`` batched,
    with GridSearchCV's mean ROC-AUC for each candidate."""
    args = dict(scoring="roc_auc", cv=3)
    batched = BatchedGridSearchCV(estimator, grid, **args).fit(X, y)
    assert batched.batched_.all()
    sequential = GridSearchCV(estimator, grid, **args).fit(X, y)
    np.testing.assert_allclose(
        batched.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
        rtol=1e-4,
    )


def test_tuned_with_batched_grid_search(labelled):
    """Check that BatchedGridSearchCV trains the detector's autoencoders
    batched, with the scores GridSearchCV gets from fitting one by one, and
    fits a trimmed detector one by one (its loss has no batched form)."""
    X, y = labelled
    detector = AutoencoderOutlierDetector(Autoencoder(**FAST))
    grid = {"estimator__n_components": [1, 2], "contamination": [0.05, 0.1]}
    args = dict(scoring="roc_auc", cv=3)
    _batched_as_sequential(detector, grid, X, y)
    trimmed = clone(detector).set_params(trim_fraction=0.1)
    with pytest.warns(UserWarning, match="a trimmed loss"):
        search = BatchedGridSearchCV(trimmed, {"contamination": [0.1]}, **args)
        search.fit(X, y)
    assert not search.batched_.any()
    # Trimmed and untrimmed candidates side by side: the trimmed ones train
    # their own nets, not the batched untrimmed ones of the same parameters.
    mixed = [{"trim_fraction": [0.2]}, {"trim_fraction": [0.0]}]
    batched = BatchedGridSearchCV(detector, mixed, **args).fit(X, y)
    sequential = GridSearchCV(detector, mixed, **args).fit(X, y)
    assert batched.batched_.tolist() == [[False] * 3, [True] * 3]
    np.testing.assert_allclose(
        batched.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
        rtol=1e-4,
    )
    scores = sequential.cv_results_["mean_test_score"]
    assert scores[0] != scores[1]  # the comparison above can tell them apart


def test_batched_search_seeds_the_default_estimator_as_fit_does(labelled):
    """Check that the default autoencoder, seeded by the detector's
    random_state, trains batched: the batched fits were of an unseeded
    Autoencoder, matched no fit, and every fit trained twice."""
    X, y = labelled
    detector = AutoencoderOutlierDetector(random_state=0)
    _batched_as_sequential(detector, {"random_state": [0, 1]}, X, y)


@pytest.mark.parametrize("case", ["scaled in a pipeline", "integer data"])
def test_batched_search_trains_a_detector_on_data_nobody_prepared(labelled, case):
    """A detector after a scaler in a Pipeline, and a detector given integer
    data, train batched, with the scores of fits one by one; a trimmed
    detector in a pipeline is fitted one by one."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X, y = labelled
    detector = AutoencoderOutlierDetector(Autoencoder(**FAST))
    if case == "integer data":
        estimator, prefix, X = detector, "", np.round(100 * X).astype(np.int64)
    else:
        estimator = make_pipeline(MinMaxScaler(), detector)
        prefix = "autoencoderoutlierdetector__"
    grid = {f"{prefix}estimator__n_components": [1, 2]}
    _batched_as_sequential(estimator, grid, X, y)
    if case == "scaled in a pipeline":
        trimmed = {**grid, f"{prefix}trim_fraction": [0.1]}
        with pytest.warns(UserWarning, match="a trimmed loss"):
            search = BatchedGridSearchCV(estimator, trimmed, scoring="roc_auc", cv=3)
            search.fit(X, y)
        assert not search.batched_.any()


def test_bad_input_is_refused(data):
    inliers, _ = data
    X = inliers.copy()
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        AutoencoderOutlierDetector(Autoencoder(**FAST)).fit(X)
    fitted = AutoencoderOutlierDetector(Autoencoder(**FAST)).fit(inliers)
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict(X)
    with pytest.raises(ValueError, match="contamination"):
        AutoencoderOutlierDetector(contamination=0.7).fit(inliers)


def test_other_estimators_score_but_do_not_trim(data):
    """Check that a scikit-learn estimator with score_samples serves as the
    detector's model, and that trim_fraction, which it cannot apply, is
    refused rather than ignored."""
    from sklearn.decomposition import PCA

    inliers, outliers = data
    detector = AutoencoderOutlierDetector(PCA(2)).fit(inliers)
    assert set(np.unique(detector.predict(outliers))) <= {-1, 1}
    with pytest.raises(ValueError, match="trim_fraction=0.2 trims.*PCA"):
        AutoencoderOutlierDetector(PCA(2), trim_fraction=0.2).fit(inliers)


@pytest.mark.parametrize("given", [False, True])
def test_saved_with_skae_io(data, tmp_path, given):
    from skae.io import load, save

    inliers, outliers = data
    X = np.vstack([inliers, outliers])
    detector = AutoencoderOutlierDetector(
        Autoencoder(**FAST) if given else None, contamination=0.07
    ).fit(X)
    save(detector, tmp_path / "detector.skae")
    copy = load(tmp_path / "detector.skae")
    assert type(copy) is AutoencoderOutlierDetector
    assert (copy.estimator is None) == (not given)
    assert copy.contamination == 0.07 and copy.offset_ == detector.offset_
    np.testing.assert_array_equal(copy.decision_scores_, detector.decision_scores_)
    np.testing.assert_array_equal(copy.predict(X), detector.predict(X))
    np.testing.assert_array_equal(copy.score_samples(X), detector.score_samples(X))


def test_skae_io_keeps_the_estimator_parameter_as_set_after_fit(data, tmp_path):
    """``set_params(estimator__...)`` after fit changes what the next fit
    trains, not the fitted model: a saved and loaded detector keeps both,
    as a pickled one does. A changed estimator class is refused."""
    from skae import SparseAutoencoder
    from skae.io import load, save

    inliers, _ = data
    detector = AutoencoderOutlierDetector(Autoencoder(n_components=2, **FAST))
    detector.fit(inliers)
    detector.set_params(estimator__n_components=3, estimator__alpha=0.5)
    save(detector, tmp_path / "detector.skae")
    copy = load(tmp_path / "detector.skae", device="cpu")
    assert copy.estimator.get_params() == detector.estimator.get_params()
    assert copy.estimator_.n_components == 2  # the fitted model as it was
    assert copy.fit(inliers).estimator_.n_components == 3

    detector.set_params(estimator=SparseAutoencoder(2, **FAST))
    with pytest.raises(
        ValueError, match="estimator parameter is an instance of Sparse.*Fit"
    ):
        save(detector, tmp_path / "changed.skae")
