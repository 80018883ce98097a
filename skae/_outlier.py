"""Outlier detection by reconstruction error: AutoencoderOutlierDetector."""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._autoencoder import Autoencoder
from ._base import _BaseAutoencoder
from ._validation import (
    _float_dtypes,
    _from_tensor,
    _numeric_input,
    _unchanged_on_failure,
)

__all__ = ["AutoencoderOutlierDetector"]


class AutoencoderOutlierDetector(OutlierMixin, BaseEstimator):
    """Outlier detector scoring rows by how badly an autoencoder rebuilds them.

    Fits a clone of ``estimator`` on the training data and scores each row
    with its ``score_samples`` (the negative reconstruction error: higher
    is more normal). The ``contamination`` fraction of the training rows
    with the lowest scores sets ``offset_``: ``decision_function`` is
    ``score_samples - offset_`` and ``predict`` is -1 (outlier) where it is
    negative, +1 elsewhere, as for scikit-learn's ``IsolationForest``.

    An autoencoder trained on data holding outliers learns to rebuild them
    too, and then scores them as normal. With ``trim_fraction`` each
    training step leaves out the rows of its batch that the network
    reconstructs worst (a trimmed loss), so that scattered outliers are not
    learned; the network starts from the training mean, so the rows far
    from it are left out from the first step. Outliers that form a class of
    their own (a digit among the others) are learned all the same.

    Parameters
    ----------
    estimator : skae autoencoder or None, default=None
        The autoencoder to fit (any of skae's four, unfitted; cloned). None
        is ``Autoencoder(random_state=random_state)``.

    contamination : float, default=0.1
        The fraction of the training rows taken as outliers, in (0, 0.5]:
        it sets ``offset_`` (and ``threshold_``).

    trim_fraction : float, default=0.0
        Fraction of each training batch left out of the training step: the
        rows reconstructed worst, in [0, 1); 0 trains on every row. A
        fraction of a row is one more row with that probability (0.03 of
        16-row batches trims 0.48 rows per batch on average). A value
        near ``contamination`` resists scattered outliers in the training
        data; it does not help against a whole class of them. Needs a skae
        autoencoder as ``estimator``.

    random_state : int, RandomState instance or None, default=None
        Seeds the default estimator (a given estimator keeps its own), as
        ``IsolationForest``'s seeds its trees: pass an int for the same
        detector from every fit.

    Attributes
    ----------
    estimator_ : skae autoencoder
        The fitted autoencoder.

    offset_ : float
        ``decision_function`` is ``score_samples - offset_``: the
        ``contamination`` quantile of the training rows' scores.

    decision_scores_ : ndarray of shape (n_samples,)
        The training rows' outlier scores with PyOD's meaning (higher is
        more abnormal): ``-score_samples`` of the training data.

    threshold_ : float
        PyOD's threshold on ``decision_scores_``: ``-offset_``.

    labels_ : ndarray of shape (n_samples,)
        The training rows' labels with PyOD's meaning: 1 for an outlier
        (``decision_scores_ > threshold_``), 0 for an inlier.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.ensemble.IsolationForest : An outlier detector with the same
        conventions.
    Autoencoder.score_samples : The scores, without a threshold.

    Notes
    -----
    PyOD's detectors use the opposite sign: their ``decision_function`` is
    higher for outliers and their labels are 0/1. Here ``decision_function``
    and ``predict`` follow scikit-learn (negative and -1 for outliers); the
    fitted ``decision_scores_``, ``threshold_`` and ``labels_`` carry PyOD's
    meaning, so that ``labels_ == (predict(X_train) == -1)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import Autoencoder, AutoencoderOutlierDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    >>> detector = AutoencoderOutlierDetector(
    ...     Autoencoder(n_components=2, max_iter=20, random_state=0),
    ...     contamination=0.05,
    ... ).fit(X)
    >>> int((detector.predict(X) == -1).sum())
    10
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "score_samples"]), None],
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
        "trim_fraction": [Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self, estimator=None, *, contamination=0.1, trim_fraction=0.0, random_state=None
    ):
        self.estimator = estimator
        self.contamination = contamination
        self.trim_fraction = trim_fraction
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the autoencoder on X and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; it may hold outliers (see ``trim_fraction``).

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted detector.
        """
        with _unchanged_on_failure(self):
            return self._fit(X)

    def _base_estimator(self):
        """The autoencoder (or estimator) that ``fit`` fits a clone of."""
        if self.estimator is None:
            return Autoencoder(random_state=self.random_state)
        return self.estimator

    def _fit(self, X):
        estimator = clone(self._base_estimator())
        X = _from_tensor(X)
        with _numeric_input(self):
            X = validate_data(self, X, dtype=self._dtypes(X, estimator))
        if self.trim_fraction and not isinstance(estimator, _BaseAutoencoder):
            raise ValueError(
                f"trim_fraction={self.trim_fraction} trims the training "
                "batches of a skae autoencoder, and the estimator is a "
                f"{type(estimator).__name__}. Use a skae autoencoder, or "
                "trim_fraction=0."
            )
        estimator._trim_fraction = float(self.trim_fraction)
        estimator.fit(X)
        scores = estimator.score_samples(X)
        self.estimator_ = estimator
        self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        self.decision_scores_ = -scores
        self.threshold_ = -self.offset_
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    def score_samples(self, X):
        """Negative reconstruction error of each row (higher is more normal).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``estimator_.score_samples(X)``.
        """
        check_is_fitted(self)
        X = _from_tensor(X)
        with _numeric_input(self):
            X = validate_data(
                self, X, dtype=self._dtypes(X, self.estimator_), reset=False
            )
        return self.estimator_.score_samples(X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Shifted scores; negative for outliers, positive for inliers.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Label each row: -1 for an outlier, +1 for an inlier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            -1 where ``decision_function`` is negative, +1 elsewhere.
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    @staticmethod
    def _dtypes(X, estimator):
        """The dtypes X is validated into: a skae autoencoder's own (integers
        become float32, as it would make them, so that it sees the data a
        bare fit would, with no float64 copy), float64 first for another."""
        if isinstance(estimator, _BaseAutoencoder):
            return _float_dtypes(X)
        return [np.float64, np.float32]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
