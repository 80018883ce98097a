"""Hyperparameter search that trains a whole grid of autoencoders at once.

``BatchedGridSearchCV`` is scikit-learn's ``BaseSearchCV``: its ``fit`` is
scikit-learn's, unchanged. Its ``_run_search`` first trains, batched, every
candidate-fold fit that can train batched (``skae/_batched_search.py``),
then hands the grid to scikit-learn's ``evaluate_candidates`` with the same
splits: each of those fits adopts its trained net (``skae/_pretrained.py``)
and the others train one by one, as in ``GridSearchCV``.
"""

import warnings
from contextlib import nullcontext
from copy import deepcopy

import numpy as np
from joblib import parallel_config
from joblib._parallel_backends import (
    LokyBackend,
    MultiprocessingBackend,
    SequentialBackend,
    ThreadingBackend,
)
from joblib.parallel import get_active_backend
from sklearn.base import is_classifier
from sklearn.model_selection import GridSearchCV, ParameterGrid
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._split import check_cv
from sklearn.utils import get_tags
from sklearn.utils.validation import _check_method_params, indexable

from ._batched_search import Pretraining, pretrain
from ._pretrained import Pretrained

__all__ = ["BatchedGridSearchCV"]


def _effective_n_jobs(n_jobs):
    """The search's n_jobs, or joblib's configured one when it is None."""
    return get_active_backend()[1] if n_jobs is None else n_jobs


def _in_process(n_jobs):
    """Run parallel fits in threads of this process instead of processes
    (joblib's default): the fits that trained batched adopt their nets
    from this process's memory. A backend chosen by the caller (Dask, say)
    is left alone; its fits then train one by one."""
    if _effective_n_jobs(n_jobs) in (None, 1):
        return nullcontext()
    backend, _ = get_active_backend()
    if isinstance(backend, (LokyBackend, MultiprocessingBackend)):
        return parallel_config(backend="threading")
    return nullcontext()


def _fits_elsewhere(n_jobs):
    """Why the search's fits cannot adopt batched nets (they run outside
    this process, under the caller's backend), or None when they can."""
    if _effective_n_jobs(n_jobs) in (None, 1):
        return None
    backend, _ = get_active_backend()
    if isinstance(backend, (ThreadingBackend, SequentialBackend)):
        return None
    return (
        f"the joblib backend the caller chose ({type(backend).__name__}) may "
        "run the fits outside this process, where no batched net is; batch "
        "with n_jobs=1 or joblib's threading backend"
    )


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
    which none did warns and says why. While the search fits, its trained
    nets go to any fit in this process of the same estimator class,
    parameters and training data: a second search over the same estimator
    and data running in another thread at the same time may take some (the
    same models to float32 rounding), and ``batched_`` still counts those
    fits batched, which this search then trains itself.

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
        processors). Batched training runs in this process, and the
        search's fits run in threads of this process (where they adopt
        their trained nets) in place of joblib's default processes. Under
        another backend the caller chose (Dask, say) nothing trains
        batched: every fit trains one by one where that backend runs it.

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
    pre_dispatch : int or str, default="2*n_jobs"
        Controls the number of jobs dispatched during parallel execution,
        as in :class:`~sklearn.model_selection.GridSearchCV`.

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
        in place of ``score`` for multi-metric scoring). The mean fit time of
        a batched candidate adds its share of its batch's training time to
        the time its fits took to adopt their trained weights;
        ``std_fit_time`` is the spread of those adoption times only (the
        search keeps no per-split fit times to add the shares to).

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

    _parameter_constraints: dict = {**GridSearchCV._parameter_constraints}

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
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
    ):
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_grid = param_grid

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The search transforms with its best estimator.
        tags.transformer_tags = deepcopy(get_tags(self.estimator).transformer_tags)
        return tags

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
        # scikit-learn's fit, which calls _run_search with the data at hand.
        self._inputs = (X, y, params)
        self.batched_ = None
        self._batched_seconds = {}
        try:
            with _in_process(self.n_jobs):
                super().fit(X, y, **params)
        finally:
            del self._inputs
        self._add_batched_fit_times()
        return self

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        """Train the batchable fits, then evaluate every candidate
        (``callback_ctx``: scikit-learn's callbacks, from 1.9)."""
        X, y, params = self._inputs
        X, y = indexable(X, y)
        params = _check_method_params(X, params=params)
        routed = self._get_routed_params_for_fit(params)
        cv = getattr(self, "_checked_cv_orig", None)
        if cv is None:  # scikit-learn < 1.9
            cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        # The splits are drawn once, for the batched training and for the
        # evaluation alike (a shuffling splitter would draw others).
        # A split given as boolean masks (which scikit-learn's searches
        # take) becomes the indices of its rows, which the batched training
        # selects by.
        splits = [
            tuple(_as_indices(part) for part in split)
            for split in cv.split(X, y, **routed.splitter.split)
        ]
        candidates = list(ParameterGrid(self.param_grid))
        elsewhere = _fits_elsewhere(self.n_jobs)
        if elsewhere is None:
            done = pretrain(
                self, self.estimator, X, y, candidates, splits, routed.estimator.fit
            )
        else:  # nothing is trained ahead of time that no fit could adopt
            done = Pretraining(Pretrained())
            for c in range(len(candidates)):
                for s in range(len(splits)):
                    done.reasons[c, s] = elsewhere
        context = {}
        if callback_ctx is not None:  # as GridSearchCV's _run_search does
            context["callback_ctx"] = callback_ctx.subcontext(
                task_name="search",
                max_subtasks=len(candidates) * len(splits),
                sequential_subtasks=False,
            ).call_on_fit_task_begin(estimator=self)
        with done.store.active():
            evaluate_candidates(candidates, cv=check_cv(splits), **context)
        if context:
            context["callback_ctx"].call_on_fit_task_end(estimator=self)
        batched = np.zeros((len(candidates), len(splits)), dtype=bool)
        for c, s in done.store.taken:
            batched[c, s] = True
        self.batched_ = batched
        self._batched_seconds = {key: done.seconds[key] for key in done.store.taken}
        self._report_batching(done, batched)

    def _report_batching(self, done, batched):
        """Warn when no fit trained batched, and say why."""
        if batched.size == 0 or batched.any():
            return
        reasons = sorted(set(done.reasons.values())) or [
            "the data its autoencoder was fitted on differed from the batched "
            "training's (a step before it, or the estimator around it, "
            "changed the data, e.g. at random or to another dtype)"
        ]
        warnings.warn(
            f"BatchedGridSearchCV trained none of the {batched.size} fits "
            "batched; they ran one by one, as GridSearchCV runs them. "
            f"Why: {'; '.join(reasons[:3])}.",
            UserWarning,
            stacklevel=5,
        )

    def _add_batched_fit_times(self):
        """A batched fit's fit time is its share of its batch's training
        (scikit-learn timed only its adoption)."""
        if not self._batched_seconds:
            return
        n_candidates, n_splits = self.batched_.shape
        extra = np.zeros((n_candidates, n_splits))
        for (c, s), seconds in self._batched_seconds.items():
            extra[c, s] = seconds
        results = self.cv_results_
        results["mean_fit_time"] = results["mean_fit_time"] + extra.mean(axis=1)


def _as_indices(rows):
    """A split's rows as an array of indices (a boolean mask's positions)."""
    rows = np.asarray(rows)
    return np.flatnonzero(rows) if rows.dtype == bool else rows
