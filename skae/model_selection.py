"""Hyperparameter search that trains a whole grid of autoencoders at once."""

import time
import warnings
from collections import defaultdict
from copy import deepcopy

import numpy as np
from sklearn.base import _fit_context, clone, is_classifier
from sklearn.model_selection import GridSearchCV, ParameterGrid
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._split import check_cv
from sklearn.model_selection._validation import (
    _insert_error_scores,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import get_tags
from sklearn.utils.validation import _check_method_params, indexable

from ._batched_search import _Evaluation

__all__ = ["BatchedGridSearchCV"]


class BatchedGridSearchCV(BaseSearchCV):
    """Exhaustive search over a grid, training the autoencoders batched.

    The same search as :class:`sklearn.model_selection.GridSearchCV`, with
    the same results, but the candidates whose autoencoders share an
    architecture train together, every fold at once, as one batched model:
    their weights are stacked along a leading axis and one forward and
    backward pass per step serves them all. Each candidate on each fold
    ends as a sequential ``fit`` with the same parameters on that fold
    would (same initial weights, shuffling, noise, optimizer steps and
    stopping epoch), to float32 rounding.

    The estimator is a skae autoencoder, or a
    :class:`~sklearn.pipeline.Pipeline` with one: then the autoencoders
    train batched and the later steps are fitted on their codes for each
    candidate and fold. Steps before the autoencoder (a scaler) are fitted
    once per fold, shared by every candidate, when the grid sets none of
    their parameters. Candidates train together when
    their autoencoders have the same class, ``n_components``,
    ``hidden_layer_sizes``, ``activation``, ``loss``, kind of penalty and
    of noise, ``solver``, ``batch_size``, ``max_iter``, ``tol``,
    ``n_iter_no_change``, ``learning_rate``, ``early_stopping``,
    ``shuffle`` and ``device``; within a group the penalty weights and
    targets, ``noise_level``, ``learning_rate_init``, ``alpha``,
    ``validation_fraction``, ``random_state`` and the fold may differ. A
    group too large for the device's memory is trained in chunks. Any
    other candidate (another estimator, user ``callbacks``, the exact
    Jacobian penalty ``jacobian="exact"``, fit parameters, a grid over the
    steps before the autoencoder) is fitted one by one as
    :class:`~sklearn.model_selection.GridSearchCV` would, ``n_jobs`` at a
    time. ``batched_`` records which fits trained batched; a search in
    which none did warns and says why.

    Parameters
    ----------
    estimator : estimator object
        A skae autoencoder, or a pipeline starting with one. Any other
        estimator is searched without batching.

    param_grid : dict or list of dictionaries
        Dictionary with parameter names (`str`) as keys and lists of
        parameter settings to try as values, or a list of such
        dictionaries, in which case the grids spanned by each dictionary
        in the list are explored.

    scoring : str, callable, list, tuple or dict, default=None
        Strategy to evaluate the performance of each candidate on the test
        folds, as in :class:`~sklearn.model_selection.GridSearchCV`. None
        uses the estimator's ``score`` method (for an autoencoder, the mean
        negative reconstruction error).

    n_jobs : int, default=None
        Number of jobs to run the fits that are not batched in parallel, as
        in :class:`~sklearn.model_selection.GridSearchCV` (None means 1
        unless in a :obj:`joblib.parallel_backend` context, -1 means all
        processors). Batched training runs in this process.

    refit : bool, str, or callable, default=True
        Refit an estimator using the best found parameters on the whole
        dataset, as in :class:`~sklearn.model_selection.GridSearchCV`. The
        refitted estimator is made available at the ``best_estimator_``
        attribute.

    cv : int, cross-validation generator or an iterable, default=None
        Determines the cross-validation splitting strategy: None for
        5-fold, an int for that many folds (stratified for a classifier
        with a binary or multiclass target), a splitter or an iterable of
        (train, test) index arrays.

    verbose : int, default=0
        Controls the verbosity: the higher, the more messages.

    error_score : 'raise' or numeric, default=np.nan
        Value to assign to the score if an error occurs in estimator
        fitting, for example when a candidate's training loss becomes
        non-finite; the other candidates of its batch are not affected.
        If set to 'raise', the error is raised.

    return_train_score : bool, default=False
        If ``False``, the ``cv_results_`` attribute will not include
        training scores.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        A dict with keys as column headers and values as columns, that can
        be imported into a pandas ``DataFrame``, with the keys of
        :class:`~sklearn.model_selection.GridSearchCV`'s: ``params``,
        ``param_*``, ``split*_test_score``, ``mean_test_score``,
        ``std_test_score``, ``rank_test_score``, ``mean_fit_time``,
        ``std_fit_time``, ``mean_score_time``, ``std_score_time`` and,
        with ``return_train_score``, ``split*_train_score``,
        ``mean_train_score`` and ``std_train_score`` (with a metric's name
        in place of ``score`` for multi-metric scoring). The fit time of a
        batched candidate is its share of its batch's training time.

    best_estimator_ : estimator
        Estimator that was chosen by the search, refitted on the whole
        data. Not available if ``refit=False``.

    best_score_ : float
        Mean cross-validated score of the best_estimator.

    best_params_ : dict
        Parameter setting that gave the best results on the hold out data.

    best_index_ : int
        The index (of the ``cv_results_`` arrays) which corresponds to the
        best candidate parameter setting.

    scorer_ : function or a dict
        Scorer function used on the held out data to choose the best
        parameters for the model.

    n_splits_ : int
        The number of cross-validation splits (folds/iterations).

    batched_ : ndarray of shape (n_candidates, n_splits), dtype=bool
        Whether each candidate's fit on each fold trained batched (False:
        fitted one by one, as ``GridSearchCV`` fits it).

    refit_time_ : float
        Seconds used for refitting the best model on the whole dataset.
        Only set if ``refit`` is not False.

    multimetric_ : bool
        Whether or not the scorers compute several metrics.

    n_features_in_ : int
        Number of features seen during :term:`fit`. Only defined if
        ``best_estimator_`` is defined.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Only defined if
        ``best_estimator_`` is defined and has feature names that are all
        strings.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : The same search, fitting each
        candidate on each fold separately.
    SparseAutoencoder : Autoencoder with sparse codes.
    DenoisingAutoencoder : Autoencoder reconstructing clean inputs from
        corrupted ones.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import SparseAutoencoder
    >>> from skae.model_selection import BatchedGridSearchCV
    >>> X = np.random.RandomState(0).uniform(size=(60, 8))
    >>> sae = SparseAutoencoder(n_components=4, max_iter=5, random_state=0)
    >>> grid = {"sparsity_weight": [0.1, 1.0], "sparsity_target": [0.05, 0.2]}
    >>> search = BatchedGridSearchCV(sae, grid, cv=3).fit(X)
    >>> search.cv_results_["mean_test_score"].shape
    (4,)
    >>> search.best_estimator_.transform(X).shape
    (60, 4)
    """

    _parameter_constraints: dict = {
        key: value
        for key, value in GridSearchCV._parameter_constraints.items()
        if key != "pre_dispatch"
    }

    # Bytes one batched model may take; None measures the device's memory.
    _memory_budget = None

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        error_score=np.nan,
        return_train_score=False,
    ):
        self.estimator = estimator
        self.param_grid = param_grid
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.refit = refit
        self.cv = cv
        self.verbose = verbose
        self.error_score = error_score
        self.return_train_score = return_train_score

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The search transforms with its best estimator.
        tags.transformer_tags = deepcopy(get_tags(self.estimator).transformer_tags)
        return tags

    def _run_search(self, evaluate_candidates):
        """Search all candidates in param_grid."""
        evaluate_candidates(ParameterGrid(self.param_grid))

    def _report_batching(self, candidate_params):
        """Warn when no fit of this round trained batched, and say why."""
        if not candidate_params:
            return
        batched = self.batched_[-len(candidate_params) :]
        if batched.any():
            return
        reasons = sorted(set(self._not_batched_reasons)) or ["unknown"]
        warnings.warn(
            f"BatchedGridSearchCV trained none of the {batched.size} fits "
            "batched; they ran one by one, as GridSearchCV runs them. "
            f"Why: {'; '.join(reasons[:3])}.",
            UserWarning,
            stacklevel=4,
        )

    @_fit_context(
        # The estimator's parameters are validated by its own fit.
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs), \
                default=None
            Target relative to X for a pipeline ending in a classifier or
            regressor; None for an autoencoder alone.

        **params : dict of str -> object
            Parameters passed to the ``fit`` method of the estimator, the
            scorer and the CV splitter, as in
            :class:`~sklearn.model_selection.GridSearchCV`. Candidates
            given fit parameters are fitted one by one.

        Returns
        -------
        self : object
            Instance of fitted estimator.
        """
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        params = _check_method_params(X, params=params)
        routed_params = self._get_routed_params_for_fit(params)
        cv_orig = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        self.n_splits_ = cv_orig.get_n_splits(X, y, **routed_params.splitter.split)
        base_estimator = clone(self.estimator)
        self.batched_ = np.zeros((0, self.n_splits_), dtype=bool)
        self._not_batched_reasons = []

        all_candidate_params = []
        all_out = []
        all_more_results = defaultdict(list)
        results = {}

        def evaluate_candidates(candidate_params, cv=None, more_results=None):
            nonlocal results
            cv = cv or cv_orig
            candidate_params = list(candidate_params)
            n_splits = self.n_splits_
            cv_splits = list(cv.split(X, y, **routed_params.splitter.split))
            if len(cv_splits) != n_splits:
                raise ValueError(
                    "cv.split and cv.get_n_splits return inconsistent results. "
                    f"Expected {n_splits} splits, got {len(cv_splits)}"
                )
            if self.verbose > 0:
                print(
                    f"Fitting {n_splits} folds for each of {len(candidate_params)} "
                    f"candidates, totalling {len(candidate_params) * n_splits} fits"
                )
            out = _Evaluation(self, base_estimator, X, y, scorers, routed_params).run(
                candidate_params, cv_splits
            )
            self._report_batching(candidate_params)
            if len(out) < 1:
                raise ValueError(
                    "No fits were performed. Was the CV iterator empty? "
                    "Were there no candidates?"
                )
            _warn_or_raise_about_fit_failures(out, self.error_score)
            if callable(self.scoring):
                _insert_error_scores(out, self.error_score)
            all_candidate_params.extend(candidate_params)
            all_out.extend(out)
            if more_results is not None:
                for key, value in more_results.items():
                    all_more_results[key].extend(value)
            results = self._format_results(
                all_candidate_params, n_splits, all_out, all_more_results
            )
            return results

        self._run_search(evaluate_candidates)
        first_test_score = all_out[0]["test_scores"]
        self.multimetric_ = isinstance(first_test_score, dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(first_test_score)
            refit_metric = self.refit

        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(
                self.refit, refit_metric, results
            )
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][
                    self.best_index_
                ]
            self.best_params_ = results["params"][self.best_index_]

        if self.refit:
            self.best_estimator_ = clone(base_estimator).set_params(
                **clone(self.best_params_, safe=False)
            )
            refit_start_time = time.time()
            if y is not None:
                self.best_estimator_.fit(X, y, **routed_params.estimator.fit)
            else:
                self.best_estimator_.fit(X, **routed_params.estimator.fit)
            self.refit_time_ = time.time() - refit_start_time
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_

        self.scorer_ = getattr(scorers, "_scorers", scorers)
        self.cv_results_ = results
        return self
