"""BatchedGridSearchCV: GridSearchCV's search, with the candidates trained batched."""

import doctest
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from skorch.callbacks import PrintLog

import skae._batched_search as batched_search
import skae.model_selection as model_selection
from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)
from skae._engine.stacked import member_bytes
from skae.model_selection import BatchedGridSearchCV

FAST = dict(max_iter=4, batch_size=16, device="cpu", random_state=0)

# 73 rows in 3 folds: training sets of 48, 49 and 49 rows, i.e. 3 batches of
# 16 for one fold and 4 (the last of one row) for the others.
CV = KFold(3)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The models here are tiny: a second torch thread only waits for the
    # first, and slows every step many-fold when the cores are busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).uniform(size=(73, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:150] / 16.0).astype(np.float32), y[:150]


def _capturing_scorer(fitted):
    """A scorer that keeps each estimator it scores, with its test rows."""

    def scorer(estimator, X_test, y=None):
        fitted.append((estimator, X_test))
        return estimator.score(X_test)

    return scorer


def _train_rows(X, X_test):
    (train,) = [tr for tr, te in CV.split(X) if np.array_equal(X[te], X_test)]
    return train


def _assert_same_fit(fitted, reference, X_test):
    ours = dict(fitted.net_.module_.named_parameters())
    for name, p in reference.net_.module_.named_parameters():
        np.testing.assert_allclose(
            ours[name].detach().cpu().numpy(),
            p.detach().cpu().numpy(),
            rtol=1e-4,
            atol=1e-5,
        )
    assert fitted.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(fitted.loss_curve_, reference.loss_curve_, rtol=1e-5)
    layer = reference.net_.module_.sparse_code
    if layer is not None:
        # The units' activity counts and the recorded dead fractions.
        np.testing.assert_array_equal(
            fitted.net_.module_.sparse_code.samples_since_fired.cpu(),
            layer.samples_since_fired.cpu(),
        )
        assert (
            fitted.net_.history[:, "dead_fraction"]
            == reference.net_.history[:, "dead_fraction"]
        )
    # A code sums n_features inputs in [0, 1] times weights that agree to
    # atol 1e-5 each (float32 training in another order of operations, on
    # another CPU's kernels): its own atol is n_features times wider. A net
    # that lost its optimizer state is off by 0.03 or more.
    np.testing.assert_allclose(
        fitted.transform(X_test),
        reference.transform(X_test),
        rtol=1e-4,
        atol=1e-5 * X_test.shape[1],
    )


def _check_against_sequential(X, estimator, grid):
    fitted = []
    search = BatchedGridSearchCV(
        estimator, grid, cv=CV, scoring=_capturing_scorer(fitted), refit=False
    )
    search.fit(X)
    # Every fit trained batched: the comparison below is batched training
    # against sequential fits, not sequential against sequential.
    assert search.batched_.shape == (len(search.cv_results_["params"]), 3)
    assert search.batched_.all()
    assert len(fitted) == len(search.cv_results_["params"]) * 3
    for ours, X_test in fitted:
        params = {name: ours.get_params()[name] for name in grid}
        reference = clone(estimator).set_params(**params)
        reference.fit(X[_train_rows(X, X_test)])
        _assert_same_fit(ours, reference, X_test)
    return fitted


CASES = {
    "autoencoder-hidden": (
        Autoencoder(n_components=3, hidden_layer_sizes=(5,), **FAST),
        {"alpha": [0.0, 1e-2], "learning_rate_init": [1e-3, 1e-2]},
    ),
    "autoencoder-tied": (
        # Tied and untied nets train batched, in a group each.
        Autoencoder(n_components=3, hidden_layer_sizes=(5,), **FAST),
        {"tied_weights": [True, False], "alpha": [0.0, 1e-2]},
    ),
    "sparse-l1-tied": (
        # The L1 penalty reads the (transposed, tied) decoder weights.
        SparseAutoencoder(n_components=4, sparsity="l1", tied_weights=True, **FAST),
        {"sparsity_weight": [0.01, 1.0]},
    ),
    "sparse-kl": (
        SparseAutoencoder(n_components=4, **FAST),
        {"sparsity_weight": [0.1, 3.0], "sparsity_target": [0.05, 0.2]},
    ),
    "sparse-l1": (
        SparseAutoencoder(n_components=4, sparsity="l1", **FAST),
        {"sparsity_weight": [0.01, 1.0], "random_state": [0, 1]},
    ),
    "denoising-gaussian": (
        DenoisingAutoencoder(n_components=3, hidden_layer_sizes=(5,), **FAST),
        {"noise_level": [0.1, 0.5]},
    ),
    "contractive-closed-form": (
        ContractiveAutoencoder(n_components=3, **FAST),
        {"contraction_weight": [0.01, 1.0], "solver": ["adam", "sgd"]},
    ),
    "sparse-topk": (
        SparseAutoencoder(n_components=6, sparsity="topk", **FAST),
        {"n_nonzero_coefs": [1, 3], "learning_rate_init": [1e-3, 1e-2]},
    ),
    "sparse-warmup": (
        # Folds of 3 and 4 batches an epoch: the nets' step counts differ.
        SparseAutoencoder(n_components=4, sparsity="l1", **FAST),
        {"sparsity_warmup": [0, 5, 11], "sparsity_weight": [0.1, 1.0]},
    ),
    "sparse-topk-revival": (
        # Squared error and 12 units for 1-2 active: AuxK revives dead units
        # (windows differ between folds with "auto": stacked per net).
        SparseAutoencoder(
            n_components=12, sparsity="topk", loss="squared_error", **FAST
        ),
        {
            "revival_weight": [0.1, 1.0],
            "n_nonzero_coefs": [1, 2],
            "dead_unit_window": ["auto", 16],
        },
    ),
    "contractive-projection": (
        ContractiveAutoencoder(n_components=3, hidden_layer_sizes=(4,), **FAST),
        {"contraction_weight": [0.01, 1.0], "n_projections": [1, 2]},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_candidate_matches_its_sequential_fit(X, case):
    """Check that each candidate on each fold equals a sequential fit on that fold."""
    estimator, grid = CASES[case]
    _check_against_sequential(X, estimator, grid)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CASES)
def test_each_candidate_matches_its_sequential_fit_on_cuda(X, case):
    """Check the same on the GPU: batched kernels against sequential ones."""
    estimator, grid = CASES[case]
    _check_against_sequential(X, clone(estimator).set_params(device="cuda"), grid)


def test_revival_case_revives(X):
    """Check that the revival case above has dead units and that AuxK moves
    its fits (so that matching them tests the batched AuxK)."""
    estimator, _ = CASES["sparse-topk-revival"]
    params = dict(n_nonzero_coefs=1, dead_unit_window=16)
    off = clone(estimator).set_params(revival_weight=0.0, **params).fit(X)
    on = clone(estimator).set_params(revival_weight=1.0, **params).fit(X)
    assert max(off.net_.history[:, "dead_fraction"]) > 0
    assert np.abs(on.dictionary_ - off.dictionary_).max() > 1e-3


def test_batched_topk_search_warns_of_nothing_but_its_budget(X):
    """Check that the batched TopK step raises no warning of its own (torch
    warned, every step, that it resized an ``out=`` buffer of the wrong
    shape, which later torch releases refuse)."""
    estimator = SparseAutoencoder(n_components=6, sparsity="topk", **FAST)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = BatchedGridSearchCV(estimator, {"n_nonzero_coefs": [1, 2]}, cv=CV)
        search.fit(X)
    assert search.batched_.all()
    others = [w for w in caught if not issubclass(w.category, ConvergenceWarning)]
    assert not others, [str(w.message)[:200] for w in others]


def test_members_stop_on_their_own_epochs(X):
    """Check that members stop at their own epoch, as their sequential fits do."""
    estimator = Autoencoder(
        n_components=3,
        hidden_layer_sizes=(),
        max_iter=40,
        tol=0.05,
        n_iter_no_change=2,
        batch_size=16,
        device="cpu",
        random_state=0,
    )
    grid = {
        "learning_rate": ["adaptive", "constant"],
        "early_stopping": [False, True],
        "learning_rate_init": [1e-3, 3e-2],
    }
    fitted = _check_against_sequential(X, estimator, grid)
    # Within one batch (same early_stopping), epochs differ: finished
    # members were taken out while the others went on.
    for early_stopping in (False, True):
        n_iter = {f.n_iter_ for f, _ in fitted if f.early_stopping == early_stopping}
        assert len(n_iter) > 1
    assert any(hasattr(f, "validation_scores_") for f, _ in fitted)


def _assert_same_results(ours, theirs):
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    for key, value in theirs.cv_results_.items():
        if "time" in key:
            continue
        if key == "params":
            assert ours.cv_results_[key] == value
        elif np.asarray(value).dtype.kind == "f":
            np.testing.assert_allclose(ours.cv_results_[key], value, atol=1e-6)
        else:
            np.testing.assert_array_equal(ours.cv_results_[key], value)


def test_pipeline_results_match_grid_search(digits):
    """Check that a pipeline search gives GridSearchCV's results and attributes."""
    X, y = digits
    # A closed-form classifier: an iterative one stops anywhere within its
    # tolerance, and codes equal to float32 rounding can move it there.
    pipe = make_pipeline(SparseAutoencoder(n_components=8, **FAST), RidgeClassifier())
    grid = {
        "sparseautoencoder__sparsity_weight": [0.1, 1.0],
        "ridgeclassifier__alpha": [0.1, 10.0],
    }
    kwargs = dict(
        cv=3,
        scoring=["accuracy", "balanced_accuracy"],
        refit="accuracy",
        return_train_score=True,
    )
    ours = BatchedGridSearchCV(pipe, grid, **kwargs).fit(X, y)
    theirs = GridSearchCV(pipe, grid, **kwargs).fit(X, y)
    _assert_same_results(ours, theirs)
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_index_ == theirs.best_index_
    assert ours.best_score_ == pytest.approx(theirs.best_score_)
    assert ours.multimetric_ and ours.n_splits_ == 3
    assert set(ours.scorer_) == {"accuracy", "balanced_accuracy"}
    assert ours.refit_time_ > 0
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_default_scoring_matches_grid_search(X):
    """Check that the estimator's own score gives GridSearchCV's cv_results_."""
    estimator = SparseAutoencoder(n_components=4, **FAST)
    grid = [{"sparsity_weight": [0.1, 1.0]}, {"sparsity": ["l1"]}]
    ours = BatchedGridSearchCV(estimator, grid, cv=CV).fit(X)
    theirs = GridSearchCV(estimator, grid, cv=CV).fit(X)
    _assert_same_results(ours, theirs)
    assert ours.transform(X).shape == (73, 4)
    restored = pickle.loads(pickle.dumps(ours))
    np.testing.assert_array_equal(restored.transform(X), ours.transform(X))


def test_splits_given_as_boolean_masks_train_on_their_rows(X):
    """Check that cv given as boolean (train, test) masks, which
    GridSearchCV takes, trains batched on the rows the masks select."""
    masks = []
    for train, _ in CV.split(X):
        mask = np.zeros(len(X), dtype=bool)
        mask[train] = True
        masks.append((mask, ~mask))
    estimator = Autoencoder(n_components=3, hidden_layer_sizes=(8,), **FAST)
    grid = {"alpha": [0.0, 0.1]}
    ours = BatchedGridSearchCV(estimator, grid, cv=masks).fit(X)
    assert ours.batched_.all()
    _assert_same_results(ours, GridSearchCV(estimator, grid, cv=masks).fit(X))
    _assert_same_results(ours, GridSearchCV(estimator, grid, cv=CV).fit(X))


@pytest.mark.parametrize(
    "estimator, reason",
    [
        (
            SparseAutoencoder(
                n_components=4, **(FAST | {"random_state": np.random.RandomState(0)})
            ),
            r"random_state is a RandomState instance.*\(pass an int\)",
        ),
        (
            ContractiveAutoencoder(n_components=4, jacobian="exact", **FAST),
            r"jacobian='exact' has no batched form",
        ),
    ],
    ids=["RandomState", "exact-jacobian"],
)
def test_fallback_warning_names_the_parameter_to_change(X, estimator, reason):
    """Check that a search that batches nothing says which parameter of the
    autoencoder stops it, in the user's terms."""
    grid = {"alpha": [1e-4, 1e-2]}
    with pytest.warns(UserWarning, match=reason):
        ours = BatchedGridSearchCV(estimator, grid, cv=CV).fit(X)
    assert not ours.batched_.any()
    _assert_same_results(ours, GridSearchCV(estimator, grid, cv=CV).fit(X))


def test_data_far_from_zero_fall_back_to_sequential_fits(X):
    """Check that candidates whose data are centred in float64 first (1e9
    plus values of spread 1) are fitted one by one, as GridSearchCV fits
    them: the batched nets share one float32 copy of X, uncentred."""
    far = X.astype(np.float64) + 1e9
    estimator = Autoencoder(n_components=3, hidden_layer_sizes=(), **FAST)
    grid = {"alpha": [1e-4, 1e-2]}
    with pytest.warns(UserWarning, match="centred in float64"):
        ours = BatchedGridSearchCV(estimator, grid, cv=CV).fit(far)
    assert not ours.batched_.any()
    _assert_same_results(ours, GridSearchCV(estimator, grid, cv=CV).fit(far))


def test_unbatched_candidates_fall_back_to_sequential_fits(X, monkeypatch):
    """Check that what cannot train batched is searched as GridSearchCV does."""
    batched = []
    fit_nets = batched_search.fit_nets
    monkeypatch.setattr(
        batched_search,
        "fit_nets",
        lambda nets, *a, **k: batched.append(len(nets)) or fit_nets(nets, *a, **k),
    )
    exact = ContractiveAutoencoder(
        n_components=3, hidden_layer_sizes=(4,), jacobian="exact", **FAST
    )
    grid = {"contraction_weight": [0.01, 1.0]}
    _assert_same_results(
        BatchedGridSearchCV(exact, grid, cv=CV).fit(X),
        GridSearchCV(exact, grid, cv=CV).fit(X),
    )
    # User callbacks run in the engine's own loop only.
    with_callbacks = Autoencoder(
        n_components=3, hidden_layer_sizes=(), callbacks=[PrintLog], **FAST
    )
    _assert_same_results(
        BatchedGridSearchCV(with_callbacks, {"alpha": [0.0, 0.1]}, cv=CV).fit(X),
        GridSearchCV(with_callbacks, {"alpha": [0.0, 0.1]}, cv=CV).fit(X),
    )
    assert batched == []
    pca_grid = {"n_components": [2, 3]}
    _assert_same_results(
        BatchedGridSearchCV(PCA(), pca_grid, cv=CV).fit(X),
        GridSearchCV(PCA(), pca_grid, cv=CV).fit(X),
    )


def test_diverging_candidate_gets_error_score(X):
    """Check that a diverging candidate scores error_score and spares the others."""
    estimator = Autoencoder(
        n_components=3, hidden_layer_sizes=(), activation="identity", **FAST
    )
    grid = {"learning_rate_init": [1e-3, 1e20, 1e-2]}
    with pytest.warns(FitFailedWarning, match="Training diverged"):
        ours = BatchedGridSearchCV(estimator, grid, cv=CV).fit(X)
    theirs = GridSearchCV(estimator, grid, cv=CV).fit(X)
    scores = ours.cv_results_["mean_test_score"]
    assert np.isnan(scores[1]) and np.all(np.isfinite(scores[[0, 2]]))
    _assert_same_results(ours, theirs)
    with pytest.raises(ValueError, match="Training diverged"):
        BatchedGridSearchCV(estimator, grid, cv=CV, error_score="raise").fit(X)


def test_hundreds_of_candidates_train_in_chunks(monkeypatch):
    """Check that a grid of 200 candidates trains in memory-bounded chunks."""
    X = np.random.RandomState(1).uniform(size=(24, 4)).astype(np.float32)
    estimator = SparseAutoencoder(
        n_components=2, max_iter=2, batch_size=8, device="cpu", random_state=0
    )
    grid = {
        "sparsity_weight": np.linspace(0.01, 5.0, 100).tolist(),
        "sparsity_target": [0.05, 0.2],
    }
    chunks = []
    fit_nets = batched_search.fit_nets

    def counting_fit_nets(nets, *args, **kwargs):
        chunks.append(len(nets))
        return fit_nets(nets, *args, **kwargs)

    monkeypatch.setattr(batched_search, "fit_nets", counting_fit_nets)
    search = BatchedGridSearchCV(estimator, grid, cv=2, refit=False)
    search._memory_budget = 64 * member_bytes(4, (2,), 8)
    search.fit(X)
    assert sum(chunks) == 400 and max(chunks) <= 64 and len(chunks) == 7
    scores = search.cv_results_["split1_test_score"]
    assert np.all(np.isfinite(scores))
    # A chunk's members do not depend on its other members: spot-check
    # candidates from the first and the last chunk against their own fits.
    for index in (0, 199):
        params = search.cv_results_["params"][index]
        train, test = list(KFold(2).split(X))[1]
        reference = clone(estimator).set_params(**params).fit(X[train])
        assert scores[index] == pytest.approx(reference.score(X[test]), abs=1e-5)


def test_out_of_memory_retries_in_smaller_chunks(X, monkeypatch):
    """Check that a chunk that runs out of memory is trained again in halves."""
    chunks = []
    fit_nets = batched_search.fit_nets

    def small_device(nets, *args, **kwargs):
        chunks.append(len(nets))
        if len(nets) > 3:
            raise torch.OutOfMemoryError("out of memory")
        return fit_nets(nets, *args, **kwargs)

    monkeypatch.setattr(batched_search, "fit_nets", small_device)
    estimator = SparseAutoencoder(n_components=3, **FAST)
    grid = {"sparsity_weight": [0.1, 0.5, 1.0, 2.0]}
    ours = BatchedGridSearchCV(estimator, grid, cv=CV).fit(X)
    assert chunks == [12, 6, 3, 3, 6, 3, 3]
    _assert_same_results(ours, GridSearchCV(estimator, grid, cv=CV).fit(X))


def test_threads_and_global_random_state_are_left_alone(X):
    """Check that searching leaves torch's and NumPy's global random state as is."""
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()
    estimator = DenoisingAutoencoder(n_components=3, hidden_layer_sizes=(), **FAST)
    BatchedGridSearchCV(estimator, {"noise": ["masking", "salt_and_pepper"]}).fit(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


@parametrize_with_checks(
    [
        BatchedGridSearchCV(
            Autoencoder(n_components=2, hidden_layer_sizes=(), **FAST),
            {"alpha": [1e-4, 1e-2]},
            cv=2,
        )
    ],
    expected_failed_checks=lambda est: {
        check: (
            "A search has no fit_transform (GridSearchCV has none either); "
            "it transforms with its refitted best estimator."
        )
        for check in (
            "check_transformer_data_not_an_array",
            "check_transformer_general",
            "check_transformer_preserve_dtypes",
        )
    },
)
def test_sklearn_compatible_search(estimator, check):
    """Check that the search passes scikit-learn's estimator checks."""
    check(estimator)


def test_docstring_example_runs():
    """Check that the example in BatchedGridSearchCV's docstring gives its output."""
    results = doctest.testmod(model_selection, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.attempted > 0
    assert results.failed == 0


def test_batched_fit_that_learned_nothing_warns():
    """Check that a batched fit at the mean reconstruction warns as fit does."""
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(load_wine().data)
    sae = SparseAutoencoder(n_components=4, max_iter=30, tol=1.0, random_state=0)
    search = BatchedGridSearchCV(sae, {"sparsity_weight": [1e4]}, cv=2, refit=False)
    with pytest.warns(ConvergenceWarning, match="learned almost nothing"):
        search.fit(X)


def test_batched_fits_use_the_auto_step_budget():
    """Check that batched fits resolve max_iter="auto" as fit does: more
    than 200 epochs on small data, ending by the stopping rule."""
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(load_iris().data)
    sae = SparseAutoencoder(n_components=3, random_state=0)
    fitted = []

    def capture(estimator, X_test, y=None):
        fitted.append(estimator)
        return estimator.score(X_test)

    search = BatchedGridSearchCV(
        sae, {"sparsity_weight": [1.0, 5.0]}, cv=2, refit=False, scoring=capture
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        search.fit(X)
    assert len(fitted) == 4
    for est in fitted:
        assert 200 < est.n_iter_ < est._max_epochs(X.shape[0] // 2)


def test_pipeline_with_a_scaler_first_trains_batched(digits):
    """Check that a pipeline whose autoencoder follows a scaler trains batched
    (the scaler fitted once per fold) and matches GridSearchCV's results."""
    from sklearn.preprocessing import StandardScaler

    X, y = digits
    pipe = make_pipeline(
        StandardScaler(),
        Autoencoder(n_components=4, hidden_layer_sizes=(), **FAST),
        RidgeClassifier(),
    )
    grid = {"autoencoder__alpha": [1e-4, 1e-2], "ridgeclassifier__alpha": [1.0, 10.0]}
    ours = BatchedGridSearchCV(pipe, grid, cv=CV).fit(X, y)
    assert ours.batched_.all()
    theirs = GridSearchCV(pipe, grid, cv=CV).fit(X, y)
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"],
        theirs.cv_results_["mean_test_score"],
        atol=0.02,
    )
    assert ours.best_params_ == theirs.best_params_


def test_grid_over_the_pipeline_steps_trains_each_on_its_own_steps():
    """Check that candidates with other steps before the autoencoder (a grid
    over the pipeline's steps) train batched on their own fold data and
    score as in GridSearchCV: the fold data of the first candidate served
    all, and a candidate could adopt a net trained on other data."""
    from sklearn.datasets import load_wine
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    # Raw wine: its columns' scales differ by 1e3, so the steps matter.
    X, y = load_wine(return_X_y=True)
    ae = Autoencoder(
        n_components=2,
        hidden_layer_sizes=(),
        learning_rate_init=1e-2,
        **{**FAST, "max_iter": 10},
    )
    ridge = RidgeClassifier()
    standard = [("sc", StandardScaler()), ("ae", ae), ("ridge", ridge)]
    grid = [
        {"steps": [standard]},
        {"steps": [[("ae", ae), ("ridge", ridge)]]},
        # The same steps as the first, left to train one by one: it took
        # the net of the second, trained on the raw rows.
        {"steps": [standard], "sc__with_std": [True]},
    ]
    ours = BatchedGridSearchCV(Pipeline(standard), grid, cv=3).fit(X, y)
    theirs = GridSearchCV(Pipeline(standard), grid, cv=3).fit(X, y)
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"],
        theirs.cv_results_["mean_test_score"],
        atol=0.02,
    )
    assert ours.batched_[:2].all() and not ours.batched_[2].any()


def test_search_over_the_scaler_is_sequential_and_says_so(digits):
    """Check that a grid over a step before the autoencoder runs one by one,
    with a warning that says why, and batched_ all False."""
    from sklearn.preprocessing import StandardScaler

    X, y = digits
    pipe = make_pipeline(
        StandardScaler(), Autoencoder(n_components=3, **FAST), RidgeClassifier()
    )
    search = BatchedGridSearchCV(
        pipe, {"standardscaler__with_mean": [True, False]}, cv=CV
    )
    with pytest.warns(UserWarning, match="trained none of the 6 fits batched.*steps"):
        search.fit(X, y)
    assert not search.batched_.any()


def test_n_jobs_runs_the_sequential_fits_in_parallel(X):
    """Check that n_jobs is accepted and gives the results of n_jobs=None."""
    est = Autoencoder(n_components=2, **FAST)
    grid = {"alpha": [1e-4, 1e-2]}
    fit_params = {}
    # Callbacks keep every fit sequential: n_jobs is what runs them.
    est.set_params(callbacks=[PrintLog(sink=lambda *a: None)])
    with pytest.warns(UserWarning, match="has callbacks"):
        one = BatchedGridSearchCV(est, grid, cv=CV, n_jobs=None).fit(X, **fit_params)
    with pytest.warns(UserWarning, match="has callbacks"):
        two = BatchedGridSearchCV(est, grid, cv=CV, n_jobs=2).fit(X, **fit_params)
    np.testing.assert_allclose(
        one.cv_results_["mean_test_score"],
        two.cv_results_["mean_test_score"],
        rtol=1e-5,
    )


def test_batched_fits_adopt_their_nets_with_n_jobs(X):
    """Check that with n_jobs=2 the batched fits are adopted, not retrained,
    and give the results of n_jobs=None."""
    est = SparseAutoencoder(n_components=2, **FAST)
    grid = {"sparsity_weight": [0.1, 1.0, 3.0]}
    one = BatchedGridSearchCV(est, grid, cv=CV).fit(X)
    two = BatchedGridSearchCV(est, grid, cv=CV, n_jobs=2).fit(X)
    assert one.batched_.all() and two.batched_.all()
    np.testing.assert_allclose(
        one.cv_results_["mean_test_score"],
        two.cv_results_["mean_test_score"],
        rtol=1e-5,
    )


def test_fit_adopts_only_a_matching_pretrained_net(X):
    """Check that an estimator's fit adopts a stored net only for the same
    class, parameters and training data, and each only once."""
    from skae._plan import Outcome
    from skae._pretrained import Pretrained, digest

    ae = Autoencoder(n_components=2, **FAST)
    plan = ae._plan(X, incremental=False)
    net = clone(ae).set_params(max_iter=1).fit(X).net_  # one epoch, not four
    store = Pretrained()
    store.add((0, 0), ae, digest(plan.X), plan, net, Outcome(stopped=True))
    with store.active():
        other_data = clone(ae).fit(X[:-1])
        other_params = clone(ae).set_params(alpha=0.5).fit(X)
        adopted = clone(ae).fit(X)
        again = clone(ae).fit(X)
    assert adopted.net_ is net and adopted.n_iter_ == 1
    for fitted in (other_data, other_params, again):
        assert fitted.net_ is not net and fitted.n_iter_ == FAST["max_iter"]
    assert store.taken == {(0, 0)}
    # Outside an active store, fit trains.
    assert clone(ae).fit(X).net_ is not net


def test_fit_copy_matches_installed_scikit_learn(X):
    """Check BatchedGridSearchCV against the installed GridSearchCV where
    nothing is batched: the same fitted attributes (public and private),
    the same cv_results_ and the same best candidate, for multi-metric
    scoring with a callable refit and train scores."""

    def refit(results):
        return int(np.argmax(results["mean_test_a"]))

    est = make_pipeline(PCA(2, random_state=0), RidgeClassifier())
    y = (X[:, 0] > 0.5).astype(int)
    kwargs = dict(
        cv=CV,
        scoring={"a": "accuracy", "b": "balanced_accuracy"},
        refit=refit,
        return_train_score=True,
    )
    grid = {"ridgeclassifier__alpha": [0.1, 1.0, 10.0]}
    theirs = GridSearchCV(est, grid, **kwargs).fit(X, y)
    with pytest.warns(UserWarning, match="no, skae autoencoder"):
        ours = BatchedGridSearchCV(est, grid, **kwargs).fit(X, y)
    own = {"batched_", "_batched_seconds"}
    assert set(vars(ours)) - own == set(vars(theirs))
    assert ours.cv_results_.keys() == theirs.cv_results_.keys()
    for key, value in theirs.cv_results_.items():
        if "time" not in key:
            np.testing.assert_array_equal(ours.cv_results_[key], value, err_msg=key)
    assert ours.best_index_ == theirs.best_index_
    assert ours.best_params_ == theirs.best_params_
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_batched_fits_continue_as_their_sequential_fits(X, solver):
    """Check that a batched fit hands its optimizer state (moments, step
    counts, learning rate) to its net: partial_fit continues it as it
    continues the sequential fit."""
    estimator = Autoencoder(n_components=3, solver=solver, **FAST)
    grid = {"learning_rate_init": [1e-3, 1e-2]}
    fitted = _check_against_sequential(X, estimator, grid)
    for ours, X_test in fitted:
        params = {name: ours.get_params()[name] for name in grid}
        reference = clone(estimator).set_params(**params)
        X_train = X[_train_rows(X, X_test)]
        reference.fit(X_train)
        ours.partial_fit(X_train)
        reference.partial_fit(X_train)
        _assert_same_fit(ours, reference, X_test)


class _Events:
    """A scikit-learn callback (1.9's API) that records the tasks it sees."""

    def __init__(self):
        self.events = []

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, **kwargs):
        self.events.append(("begin", context.task_name))

    def on_fit_task_end(self, estimator, context, **kwargs):
        self.events.append(("end", context.task_name))


def test_scikit_learn_callbacks_see_the_tasks_grid_search_reports(X):
    """Check that scikit-learn's callbacks (set_callbacks, from 1.9) see the
    search and each candidate-fold evaluation, as with GridSearchCV: they
    saw the fit and the refit only."""
    if not hasattr(GridSearchCV, "set_callbacks"):
        pytest.skip("scikit-learn's callbacks need scikit-learn 1.9")
    est = Autoencoder(n_components=2, hidden_layer_sizes=(), **FAST)
    events = []
    for cls in (BatchedGridSearchCV, GridSearchCV):
        callback = _Events()
        cls(est, {"alpha": [1e-4, 1e-2]}, cv=CV).set_callbacks(callback).fit(X)
        events.append(callback.events)
    ours, theirs = events
    assert ours == theirs
    assert ours.count(("begin", "candidate-split-evaluation")) == 6
