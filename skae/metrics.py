"""Sparsity figures and scorers that trade reconstruction against sparsity.

An autoencoder's :meth:`score` is its negative reconstruction error. A search
over a sparsity weight with that score alone always prefers the weakest
penalty: every sparsity penalty costs reconstruction. The scorers here make
sparsity part of the objective, so that a search such as
``GridSearchCV(SparseAutoencoder(), {"sparsity_weight": [...]},
scoring=make_budget_scorer(max_active_units=3))`` tunes it without labels.

A code unit is *active* on a sample when the magnitude of its code exceeds a
threshold; see :func:`sparsity_summary` for the definition used throughout.
"""

from numbers import Real

from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)

from ._dictionary_metrics import (
    fraction_of_variance_unexplained,
    matched_cosine_similarity,
    mean_max_cosine_similarity,
)
from ._metrics_checks import _codes_and_error, _summary

__all__ = [
    "fraction_of_variance_unexplained",
    "make_budget_scorer",
    "make_rate_distortion_scorer",
    "matched_cosine_similarity",
    "mean_max_cosine_similarity",
    "sparsity_summary",
]

_THRESHOLD_CONSTRAINT = [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")]


@validate_params(
    {
        "estimator": [HasMethods(["fit"])],
        "X": ["array-like"],
        "threshold": _THRESHOLD_CONSTRAINT,
    },
    prefer_skip_nested_validation=True,
)
def sparsity_summary(estimator, X, *, threshold="auto"):
    """Compute figures that describe how sparse the codes of an autoencoder are.

    A code unit ``j`` is *active* on a sample when ``|h_j| > threshold``. With
    ``threshold="auto"`` the threshold follows the code activation:

    - ``"relu"`` and ``"identity"``: 0, so a unit is active when its code is
      non-zero. This is the L0 count of sparse coding (the number of non-zero
      coefficients). Inactive ReLU units output exactly 0, so it needs no
      scale-dependent tolerance; linear codes are never exactly zero and are
      reported as dense, which they are.
    - ``"logistic"``: 0.5. A logistic unit "fires" when its output is close
      to 1 and is silent when it is close to 0, the reading of the KL sparsity
      penalty, whose target ``rho`` is the fraction of samples on which a unit
      fires. 0.5 is the midpoint, and ``h > 0.5`` holds exactly when the
      unit's pre-activation is positive: the same rule as a ReLU unit.
    - ``"tanh"``: 0.5, by the same rule as the logistic: active when more than
      half-way from rest (0) to saturation (1 in magnitude), on either side.

    The codes of ``sparsity="topk"`` and ``"batch_topk"`` are ReLUs whatever
    ``activation`` the hidden layers have: 0 for them. Pass a float to
    count differently, e.g. ``threshold=0.1`` to count a logistic unit as
    active unless it is close to 0.

    Parameters
    ----------
    estimator : estimator instance
        A fitted skae autoencoder, or a fitted
        :class:`~sklearn.pipeline.Pipeline` whose final step is one; X then
        goes through the preceding steps' ``transform`` first.

    X : array-like of shape (n_samples, n_features)
        Data to encode.

    threshold : "auto" or float, default="auto"
        A unit is active on a sample when the magnitude of its code exceeds
        ``threshold``. "auto" chooses by code activation, as described above.

    Returns
    -------
    summary : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        mean_activation : ndarray of shape (n_components,)
            Mean of ``|h_j|`` over the samples, for each unit. For logistic
            and ReLU codes, which are non-negative, it is the mean activation
            ``rho_hat_j`` of the KL sparsity penalty, which training drives
            towards ``sparsity_target``.
        active_rate : ndarray of shape (n_components,)
            Fraction of the samples on which each unit is active (its firing
            rate). When it is much smaller than ``mean_activation`` (logistic
            codes), the units carry information in a low analog level rather
            than by firing: the codes are small, not sparse.
        dead_fraction : float
            Fraction of the units that are active on no sample of X.
        mean_active_units : float
            Average number of active units per sample (the codes' L0), in
            ``[0, n_components]``.
        active_fraction : float
            ``mean_active_units / n_components``, the mean of
            ``active_rate``, in [0, 1].
        threshold : float
            The threshold used.

    See Also
    --------
    make_budget_scorer : Reconstruction under a budget of active units.
    make_rate_distortion_scorer : Reconstruction error plus a cost per active
        unit.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import SparseAutoencoder
    >>> from skae.metrics import sparsity_summary
    >>> X = np.random.RandomState(0).uniform(size=(100, 8))
    >>> sae = SparseAutoencoder(n_components=16, max_iter=5, random_state=0)
    >>> summary = sparsity_summary(sae.fit(X), X)
    >>> summary.mean_activation.shape
    (16,)
    >>> summary.threshold
    0.5
    """
    codes, threshold, _ = _codes_and_error(
        estimator, X, threshold, "sparsity_summary", with_error=False
    )
    return _summary(codes, threshold)


class _BudgetScorer:
    """Negative reconstruction error under a budget of active units."""

    def __init__(self, max_active_units, max_active_fraction, threshold, penalty):
        self.max_active_units = max_active_units
        self.max_active_fraction = max_active_fraction
        self.threshold = threshold
        self.over_budget_penalty = penalty

    def __call__(self, estimator, X, y=None):
        codes, threshold, error = _codes_and_error(
            estimator, X, self.threshold, "The budget scorer", with_error=True
        )
        summary = _summary(codes, threshold)
        if self.max_active_units is not None:
            excess = summary.mean_active_units - self.max_active_units
        else:
            excess = summary.active_fraction - self.max_active_fraction
        if excess <= 0:
            return float(-error)
        return float(-(error + self.over_budget_penalty * (1.0 + excess)))

    def __repr__(self):
        if self.max_active_units is not None:
            budget = f"max_active_units={self.max_active_units!r}"
        else:
            budget = f"max_active_fraction={self.max_active_fraction!r}"
        return (
            f"make_budget_scorer({budget}, threshold={self.threshold!r}, "
            f"over_budget_penalty={self.over_budget_penalty!r})"
        )


@validate_params(
    {
        "max_active_units": [Interval(Real, 0, None, closed="left"), None],
        "max_active_fraction": [Interval(Real, 0, 1, closed="both"), None],
        "threshold": _THRESHOLD_CONSTRAINT,
        "over_budget_penalty": [Interval(Real, 0, None, closed="neither")],
    },
    prefer_skip_nested_validation=True,
)
def make_budget_scorer(
    *,
    max_active_units=None,
    max_active_fraction=None,
    threshold="auto",
    over_budget_penalty=1e6,
):
    """Make a scorer of reconstruction quality under a budget of active units.

    The scorer answers "how well does the model reconstruct X while using at
    most this many active units per sample on average?": the constrained
    form of the trade-off between reconstruction and sparsity, with the
    budget in the units a user thinks in. A model within budget scores its
    negative reconstruction error, exactly its ``score``; a model over budget
    scores far below, so that a search selects the best reconstruction among
    the models that meet the budget.

    With ``error`` the mean reconstruction error on X (``-score(X)``) and
    ``excess`` the amount by which the average number of active units (or
    the active fraction) on X exceeds the budget, the score is::

        -error                                         if excess <= 0
        -(error + over_budget_penalty * (1 + excess))  otherwise

    This is a big-M penalty. It is finite, so that
    :class:`~sklearn.model_selection.GridSearchCV` neither warns about
    non-finite scores nor loses the order among over-budget models; the
    ``1 + excess`` factor ranks them by how far over budget they are, so that
    when no model meets the budget the least-violating one is selected. A
    search averages scores over K folds: a candidate over budget on even one
    fold has a mean score below ``-over_budget_penalty / K`` and ranks below
    every candidate within budget on all folds whose mean error is smaller
    than ``over_budget_penalty / K``. The default of 1e6 covers any
    reasonable model for ``K <= 10`` (errors are averaged over features: even
    on raw 8-bit pixels they stay below 7e4).

    Parameters
    ----------
    max_active_units : float, default=None
        Budget on the average number of active units per sample. Exactly one
        of ``max_active_units`` and ``max_active_fraction`` must be given.

    max_active_fraction : float, default=None
        Budget on the average fraction of the units active per sample, in
        [0, 1]. Prefer it to ``max_active_units`` when comparing code sizes
        by their fraction in use.

    threshold : "auto" or float, default="auto"
        A unit is active on a sample when the magnitude of its code exceeds
        ``threshold``; see :func:`sparsity_summary` for "auto".

    over_budget_penalty : float, default=1e6
        The big-M offset applied to models over budget, in units of the
        reconstruction error.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``, higher is better, for a
        fitted skae autoencoder or a Pipeline ending in one. It pickles, so
        it works with ``GridSearchCV(scoring=scorer, n_jobs=...)``.

    See Also
    --------
    sparsity_summary : The sparsity figures, including the number of active
        units.
    make_rate_distortion_scorer : The unconstrained (Lagrangian) form of the
        same trade-off.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skae import SparseAutoencoder
    >>> from skae.metrics import make_budget_scorer
    >>> X = np.random.RandomState(0).uniform(size=(90, 8))
    >>> search = GridSearchCV(
    ...     SparseAutoencoder(n_components=16, max_iter=5, random_state=0),
    ...     {"sparsity_weight": [0.0, 1.0]},
    ...     scoring=make_budget_scorer(max_active_units=4),
    ...     cv=3,
    ... ).fit(X)
    >>> search.cv_results_["mean_test_score"].shape
    (2,)
    """
    if (max_active_units is None) == (max_active_fraction is None):
        raise ValueError(
            "make_budget_scorer needs exactly one budget: pass either "
            "max_active_units or max_active_fraction, got "
            f"max_active_units={max_active_units!r} and "
            f"max_active_fraction={max_active_fraction!r}."
        )
    return _BudgetScorer(
        max_active_units, max_active_fraction, threshold, over_budget_penalty
    )


class _RateDistortionScorer:
    """Negative of reconstruction error plus a cost per active unit."""

    def __init__(self, unit_cost, threshold):
        self.unit_cost = unit_cost
        self.threshold = threshold

    def __call__(self, estimator, X, y=None):
        codes, threshold, error = _codes_and_error(
            estimator, X, self.threshold, "The rate-distortion scorer", with_error=True
        )
        rate = _summary(codes, threshold).mean_active_units
        return float(-(error + self.unit_cost * rate))

    def __repr__(self):
        return (
            f"make_rate_distortion_scorer(unit_cost={self.unit_cost!r}, "
            f"threshold={self.threshold!r})"
        )


@validate_params(
    {
        "unit_cost": [Interval(Real, 0, None, closed="left")],
        "threshold": _THRESHOLD_CONSTRAINT,
    },
    prefer_skip_nested_validation=True,
)
def make_rate_distortion_scorer(unit_cost, *, threshold="auto"):
    """Make a scorer of reconstruction error plus a cost per active unit.

    The score is ``-(error + unit_cost * mean_active_units)``: distortion
    plus a price on rate, the Lagrangian form of rate-distortion theory.
    With sparse codes the rate grows with the number of active units (coding
    which units are active costs about ``log2(n_components)`` bits each), and
    minimising ``error + unit_cost * units`` is the Lagrangian relaxation of
    :func:`make_budget_scorer`'s problem (least error with at most so many
    active units): every ``unit_cost`` selects a model that is best for some
    budget. ``unit_cost`` has a plain meaning: an extra active unit per
    sample is worth keeping only if it lowers the reconstruction error by
    more than ``unit_cost``. It counts units, not the active fraction, so
    that this meaning does not change with ``n_components``.

    Parameters
    ----------
    unit_cost : float
        Price of one active unit per sample, in units of the reconstruction
        error (``-score``). 0 gives the plain ``score``.

    threshold : "auto" or float, default="auto"
        A unit is active on a sample when the magnitude of its code exceeds
        ``threshold``; see :func:`sparsity_summary` for "auto".

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``, higher is better, for a
        fitted skae autoencoder or a Pipeline ending in one. It pickles, so
        it works with ``GridSearchCV(scoring=scorer, n_jobs=...)``.

    See Also
    --------
    sparsity_summary : The sparsity figures, including the number of active
        units.
    make_budget_scorer : The constrained form of the same trade-off.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import SparseAutoencoder
    >>> from skae.metrics import make_rate_distortion_scorer
    >>> X = np.random.RandomState(0).uniform(size=(100, 8))
    >>> sae = SparseAutoencoder(n_components=16, max_iter=5, random_state=0)
    >>> scorer = make_rate_distortion_scorer(0.01)
    >>> isinstance(scorer(sae.fit(X), X), float)
    True
    """
    return _RateDistortionScorer(unit_cost, threshold)
