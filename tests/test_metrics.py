"""Sparsity figures and the scorers that tune sparsity without labels."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import check_scoring
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skae import Autoencoder, SparseAutoencoder
from skae.metrics import (
    make_budget_scorer,
    make_rate_distortion_scorer,
    sparsity_summary,
)

# Short training on purpose: 20 epochs are enough to see the trade-off.
pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)

FAST = dict(
    n_components=16,
    loss="squared_error",
    max_iter=20,
    learning_rate_init=1e-2,
    batch_size=32,
    device="cpu",
    random_state=0,
)
WEIGHTS = [0.0, 3.0, 60.0, 150.0]
# Measured on the folds below (KL, rho=0.05, codes started at the target
# rate; the squared error in the decoder's units, about 14 times X's on
# these digits): the average number of units above 0.5 per sample is about
# 4.4-5.1, 2.2-2.7, 0.08-0.36 and 0.0 of 16 for the four weights, so a
# budget of 1.0 unit separates the two weak penalties from the two strong
# ones with a margin of at least 0.6 on either side.
BUDGET = 1.0


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return (X[:300] / 16.0).astype(np.float32)


@pytest.fixture(scope="module")
def kl_models(digits):
    """KL models for each weight, trained as on the first fold of cv=3."""
    X_train = digits[100:]
    return {
        w: SparseAutoencoder(sparsity_weight=w, **FAST).fit(X_train) for w in WEIGHTS
    }


def _mean_active_units(estimator, X, y=None):
    return sparsity_summary(estimator, X).mean_active_units


@pytest.fixture(scope="module")
def search(digits):
    """One search over the KL weight, scored three ways on each fold.

    "score" is the scorer GridSearchCV builds when ``scoring=None``: it calls
    the candidate's own ``score``. Sharing the fits keeps the module fast;
    ``n_jobs=2`` sends the scorers to worker processes, pickled.
    """
    estimator = SparseAutoencoder(**FAST)
    scoring = {
        "score": check_scoring(estimator),
        "budget": make_budget_scorer(max_active_units=BUDGET),
        "active_units": _mean_active_units,
    }
    return GridSearchCV(
        estimator,
        {"sparsity_weight": WEIGHTS},
        scoring=scoring,
        refit="budget",
        cv=3,
        n_jobs=2,
    ).fit(digits)


def _folds(results, metric):
    """Test scores of shape (n_splits, n_candidates)."""
    return np.array([results[f"split{i}_test_{metric}"] for i in range(3)])


def test_default_score_prefers_weakest_sparsity_penalty(search):
    """Check that searching sparsity_weight with the default score picks 0."""
    results = search.cv_results_
    assert [p["sparsity_weight"] for p in results["params"]] == WEIGHTS
    # What GridSearchCV(scoring=None) would select: the top of this ranking.
    assert results["rank_test_score"][0] == 1
    assert np.all(results["rank_test_score"][1:] > 1)
    # Every step up in the penalty costs reconstruction: the mean test score
    # (about -0.026, -0.027, -0.043, -0.055) falls strictly as beta grows,
    # and on every fold the weakest penalty scores best.
    assert np.all(np.diff(results["mean_test_score"]) < 0)
    scores = _folds(results, "score")
    assert np.all(scores.argmax(axis=1) == 0)


def test_budget_scorer_picks_best_model_within_budget(search, digits):
    """Check that a budget scorer selects a penalty > 0 whose models meet it."""
    results = search.cv_results_
    units = _folds(results, "active_units")
    budget = _folds(results, "budget")
    score = _folds(results, "score")

    best = search.best_index_
    assert search.best_params_["sparsity_weight"] > 0
    # The chosen models meet the budget on every fold and score exactly
    # their negative reconstruction error there.
    assert np.all(units[:, best] <= BUDGET)
    np.testing.assert_array_equal(budget[:, best], score[:, best])
    # The weakest penalty, the default score's choice, breaks the budget on
    # every fold, and so ranks below every candidate within budget.
    assert np.all(units[:, 0] > BUDGET)
    assert np.all(budget[:, 0] < -1e6)
    within = np.all(units <= BUDGET, axis=0)
    assert within.sum() == 2
    assert results["rank_test_budget"][0] > within.sum()
    # Among the candidates within budget, the best reconstruction wins.
    mean_score = results["mean_test_score"]
    assert best == np.flatnonzero(within)[np.argmax(mean_score[within])]
    # The model refitted on all the data meets the budget too.
    refitted = sparsity_summary(search.best_estimator_, digits)
    assert refitted.mean_active_units <= BUDGET


def test_sparsity_summary_matches_direct_computation(kl_models, digits):
    """Check that sparsity_summary's figures equal those computed from codes."""
    X = digits[:100]
    for est in kl_models.values():
        codes = est.transform(X).astype(np.float64)
        active = codes > 0.5
        summary = sparsity_summary(est, X)
        assert summary.threshold == 0.5
        np.testing.assert_allclose(summary.mean_activation, codes.mean(axis=0))
        np.testing.assert_allclose(summary.active_rate, active.mean(axis=0))
        assert summary.dead_fraction == np.mean(~active.any(axis=0))
        assert summary.mean_active_units == pytest.approx(active.sum(axis=1).mean())
        assert summary.active_fraction == pytest.approx(active.mean())
        custom = sparsity_summary(est, X, threshold=0.1)
        assert custom.threshold == 0.1
        assert custom.mean_active_units == pytest.approx((codes > 0.1).sum(1).mean())


@pytest.mark.parametrize(
    "activation, threshold",
    [("relu", 0.0), ("identity", 0.0), ("tanh", 0.5), ("logistic", 0.5)],
)
def test_auto_threshold_follows_code_activation(activation, threshold, digits):
    """Check that threshold="auto" counts active units per code activation."""
    est = Autoencoder(activation=activation, **{**FAST, "max_iter": 3}).fit(digits)
    codes = est.transform(digits).astype(np.float64)
    summary = sparsity_summary(est, digits)
    assert summary.threshold == threshold
    active = np.abs(codes) > threshold
    assert summary.mean_active_units == pytest.approx(active.sum(axis=1).mean())
    np.testing.assert_allclose(summary.mean_activation, np.abs(codes).mean(axis=0))
    if activation == "identity":
        # Linear codes are never exactly zero: dense, and reported as such.
        assert summary.active_fraction == 1.0


def test_mean_activation_moves_towards_sparsity_target(kl_models, digits):
    """Check that KL mean activation, active units fall as the weight grows."""
    X = digits[:100]
    summaries = [sparsity_summary(kl_models[w], X) for w in WEIGHTS]
    mean_activation = np.array([s.mean_activation.mean() for s in summaries])
    active_units = np.array([s.mean_active_units for s in summaries])
    dead = np.array([s.dead_fraction for s in summaries])
    # Measured: about 0.29, 0.17, 0.06, 0.055 against rho = 0.05 after only
    # 20 epochs (the codes start at the target rate and reconstruction pulls
    # them up); each step closer to the target.
    target = kl_models[0.0].sparsity_target
    assert np.all(np.diff(np.abs(mean_activation - target)) < 0)
    assert np.all(np.diff(active_units) < 0)
    assert np.all((active_units >= 0) & (active_units <= FAST["n_components"]))
    assert np.all((dead >= 0) & (dead <= 1))
    # No unit is dead without a penalty; most are under the strongest one
    # (all of them measured), whose units sit low rather than fire.
    assert dead[0] == 0
    assert dead[-1] > 0.5


def test_figures_and_scorers_go_through_pipeline(digits):
    """Check that a Pipeline's earlier steps transform X before the figures."""
    pipe = make_pipeline(
        StandardScaler(), SparseAutoencoder(sparsity="l1", sparsity_weight=0.1, **FAST)
    ).fit(digits)
    autoencoder = pipe[-1]
    Xt = pipe[0].transform(digits)
    assert autoencoder.net_.module_.activation == "relu"

    summary = sparsity_summary(pipe, digits)
    direct = sparsity_summary(autoencoder, Xt)
    assert summary.threshold == 0.0
    np.testing.assert_array_equal(summary.mean_activation, direct.mean_activation)
    assert summary.mean_active_units == direct.mean_active_units
    codes = autoencoder.transform(Xt)
    assert summary.mean_active_units == pytest.approx((codes > 0).sum(1).mean())
    pipe.set_output(transform="pandas")
    in_frames = sparsity_summary(pipe, digits)
    assert isinstance(in_frames.mean_activation, np.ndarray)
    np.testing.assert_array_equal(in_frames.mean_activation, summary.mean_activation)

    error = -autoencoder.score(Xt)
    units = direct.mean_active_units
    rate_distortion = make_rate_distortion_scorer(0.01)
    assert rate_distortion(pipe, digits) == pytest.approx(-(error + 0.01 * units))
    roomy = make_budget_scorer(max_active_units=units + 1)
    assert roomy(pipe, digits) == pytest.approx(-error)


def test_budget_scorer_ranks_within_budget_above_over_budget(kl_models, digits):
    """Check the budget scorer's values within and over the budget."""
    X = digits[:100]
    scorer = make_budget_scorer(max_active_units=BUDGET)
    scores, errors, excess = [], [], []
    for est in kl_models.values():
        scores.append(scorer(est, X))
        errors.append(-est.score(X))
        excess.append(sparsity_summary(est, X).mean_active_units - BUDGET)
    scores, errors, excess = map(np.array, (scores, errors, excess))
    over = excess > 0
    np.testing.assert_array_equal(over, [True, True, False, False])
    np.testing.assert_allclose(scores[~over], -errors[~over])
    np.testing.assert_allclose(scores[over], -(errors + 1e6 * (1 + excess))[over])
    assert scores[over].max() < scores[~over].min()
    # Over budget, the model further over ranks lower (1.2 vs 0.94 units).
    assert scores[0] < scores[1]
    # A budget on the active fraction is the same budget in other units.
    by_fraction = make_budget_scorer(max_active_fraction=BUDGET / FAST["n_components"])
    for est, score in zip(kl_models.values(), scores):
        if score > -1e6:
            assert by_fraction(est, X) == score
        else:
            assert by_fraction(est, X) < -1e6


def test_rate_distortion_scorer_traces_the_trade_off(kl_models, digits):
    """Check that a higher unit cost selects a sparser model."""
    X = digits[:100]
    chosen = []
    # Measured errors 0.0290, 0.0302, 0.0475, 0.0568 at 4.44, 2.24, 0.08, 0.0
    # units: a unit cost of 0.003 favours beta = 3 by a margin of 0.005, and
    # 0.03 favours beta = 60 by 0.007.
    for unit_cost in [0.0, 0.003, 0.03]:
        scorer = make_rate_distortion_scorer(unit_cost)
        scores = [scorer(kl_models[w], X) for w in WEIGHTS]
        chosen.append(WEIGHTS[int(np.argmax(scores))])
    assert chosen == [0.0, 3.0, 60.0]
    est = kl_models[3.0]
    assert make_rate_distortion_scorer(0.0)(est, X) == pytest.approx(est.score(X))
    value = make_rate_distortion_scorer(0.01, threshold=0.2)(est, X)
    units = sparsity_summary(est, X, threshold=0.2).mean_active_units
    assert value == pytest.approx(est.score(X) - 0.01 * units)


def test_scorers_pickle(kl_models, digits):
    """Check that the scorers survive pickling with their settings."""
    X = digits[:100]
    est = kl_models[60.0]
    for scorer in [
        make_budget_scorer(max_active_fraction=0.25, threshold=0.3),
        make_rate_distortion_scorer(0.01),
    ]:
        clone = pickle.loads(pickle.dumps(scorer))
        assert repr(clone) == repr(scorer)
        assert clone(est, X) == scorer(est, X)
    assert repr(make_budget_scorer(max_active_units=2)) == (
        "make_budget_scorer(max_active_units=2, threshold='auto', "
        "over_budget_penalty=1000000.0)"
    )


def test_parallel_search_scores_as_in_one_process(search, kl_models, digits):
    """Check that scorers pickled to GridSearchCV(n_jobs=2) workers score alike."""
    # kl_models were trained in this process exactly as the first fold's.
    X_test = digits[:100]
    budget = make_budget_scorer(max_active_units=BUDGET)
    expected = [budget(kl_models[w], X_test) for w in WEIGHTS]
    np.testing.assert_array_equal(search.cv_results_["split0_test_budget"], expected)
    expected = [_mean_active_units(kl_models[w], X_test) for w in WEIGHTS]
    assert search.cv_results_["split0_test_active_units"].tolist() == expected


def test_unfitted_and_foreign_estimators_raise_clear_errors(digits):
    """Check that unfitted and non-skae estimators raise informative errors."""
    scorers = [
        make_budget_scorer(max_active_units=2),
        make_rate_distortion_scorer(0.1),
    ]
    unfitted = [
        SparseAutoencoder(),
        make_pipeline(StandardScaler(), SparseAutoencoder()),
    ]
    for est in unfitted:
        with pytest.raises(NotFittedError):
            sparsity_summary(est, digits)
        for scorer in scorers:
            with pytest.raises(NotFittedError):
                scorer(est, digits)

    pca = PCA(n_components=2).fit(digits)
    with pytest.raises(TypeError, match="needs a skae autoencoder.*got PCA"):
        sparsity_summary(pca, digits)
    pipe = make_pipeline(StandardScaler(), PCA(n_components=2)).fit(digits)
    with pytest.raises(TypeError, match="got PCA as the final step of the Pipeline"):
        sparsity_summary(pipe, digits)
    for scorer in scorers:
        with pytest.raises(TypeError, match="needs a skae autoencoder"):
            scorer(pca, digits)


def test_invalid_arguments_raise_clear_errors(kl_models, digits):
    """Check that invalid thresholds, budgets and costs are rejected."""
    est = kl_models[0.0]
    with pytest.raises(InvalidParameterError, match="threshold"):
        sparsity_summary(est, digits, threshold=-0.1)
    with pytest.raises(InvalidParameterError, match="threshold"):
        sparsity_summary(est, digits, threshold="median")
    with pytest.raises(ValueError, match="exactly one budget"):
        make_budget_scorer()
    with pytest.raises(ValueError, match="exactly one budget"):
        make_budget_scorer(max_active_units=2, max_active_fraction=0.1)
    with pytest.raises(InvalidParameterError, match="max_active_fraction"):
        make_budget_scorer(max_active_fraction=1.5)
    with pytest.raises(InvalidParameterError, match="over_budget_penalty"):
        make_budget_scorer(max_active_units=2, over_budget_penalty=0)
    with pytest.raises(InvalidParameterError, match="unit_cost"):
        make_rate_distortion_scorer(-1.0)


def test_fraction_of_variance_unexplained_keeps_feature_names():
    """Check that a DataFrame reaches transform as it was fitted, so that
    no warning about feature names is raised (it was converted first)."""
    pd = pytest.importorskip("pandas")
    from skae import Autoencoder
    from skae.metrics import fraction_of_variance_unexplained

    X = np.random.RandomState(0).normal(size=(60, 4))
    frame = pd.DataFrame(X, columns=list("abcd"))
    model = Autoencoder(n_components=2, max_iter=3, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = fraction_of_variance_unexplained(model, frame)
    assert ours == pytest.approx(fraction_of_variance_unexplained(model, X))
