"""Imputation by an autoencoder trained around the gaps: AutoencoderImputer."""

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.impute import MissingIndicator
from sklearn.utils._missing import is_pandas_na, is_scalar_nan
from sklearn.utils._param_validation import HasMethods, Interval, MissingValues
from sklearn.utils.validation import (
    FLOAT_DTYPES,
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ._base import _BaseAutoencoder
from ._denoising import DenoisingAutoencoder
from ._validation import _from_tensor, _numeric_input, _unchanged_on_failure

__all__ = ["AutoencoderImputer"]

# Rows per block of the column statistics and the standardization: their
# float64 temporaries stay this size, not X's.
_BLOCK = 65536


def _column_sums(X, observed, term, reduce=np.add):
    """``reduce`` over the observed rows of each column of ``term(x)``, in
    float64, ``x`` a float64 block of X's rows (0 where not observed)."""
    total = np.zeros(X.shape[1])
    for start in range(0, X.shape[0], _BLOCK):
        rows = slice(start, start + _BLOCK)
        block = np.where(observed[rows], term(X[rows].astype(np.float64)), 0.0)
        total = reduce(total, reduce.reduce(block, axis=0))
    return total


class AutoencoderImputer(TransformerMixin, BaseEstimator):
    """Imputer filling missing entries with an autoencoder's reconstruction.

    Standardizes each column on its observed entries, fills the gaps with
    the column mean (0 once standardized) and fits a clone of ``estimator``
    on the result with the missing entries left out of its loss: the
    network learns to rebuild each row from what was observed, and is never
    taught to reproduce the fill. With ``indicate_missing`` (the default)
    the network also reads which entries of each row are missing (one 0/1
    column per feature), so that a gap and an observed value at the mean
    are told apart. The default estimator, a :class:`DenoisingAutoencoder`
    with masking noise, also hides a random fraction of the observed
    entries at every step (set to the column mean and marked missing, as
    the gaps are) and is scored on them: it learns to fill what it does not
    see, which is the task. ``transform`` fills each gap with the
    reconstruction of its row; with ``n_passes`` above 1 it reconstructs
    again from the filled rows. Observed entries are returned unchanged.

    This is inpainting in scikit-learn's vocabulary, and a drop-in
    replacement for :class:`~sklearn.impute.SimpleImputer`,
    :class:`~sklearn.impute.KNNImputer` or
    :class:`~sklearn.impute.IterativeImputer` in a pipeline.

    Parameters
    ----------
    estimator : skae autoencoder or None, default=None
        The autoencoder to fit (one of skae's four, unfitted; cloned) on
        the standardized data. None is ``DenoisingAutoencoder(
        noise="masking", noise_level=0.15, loss="squared_error",
        n_iter_no_change=30, random_state=random_state)`` (a stopping rule
        more patient than the estimator's default: the loss of a masked
        fit is noisy, and it goes on improving the fills after the first
        pause). The missing entries are left out of its loss whichever it
        is; the extra masking is its own corruption. Another estimator
        (PCA, a Pipeline) is an error: it cannot leave them out.

    missing_values : int, float, np.nan or pandas.NA, default=np.nan
        The placeholder of a missing entry (pandas.NA marks the same entries
        as np.nan: validation turns it into NaN). NaN in X when it is
        something else is an error.

    indicate_missing : bool, default=True
        Whether the autoencoder reads, beside each standardized row, which
        of its entries are missing: it is fitted on ``n_features`` more
        columns (1 where missing, else 0), which are left out of its loss.

    n_passes : int, default=1
        Reconstructions in ``transform``: the first from the mean-filled
        rows, each next one from the rows the previous one filled (their
        fills then read as observed values).

    add_indicator : bool, default=False
        Whether to append :class:`~sklearn.impute.MissingIndicator`'s
        columns (one per feature with missing entries in ``fit``) to the
        output, as ``SimpleImputer(add_indicator=True)`` does.

    random_state : int, RandomState instance or None, default=None
        Seeds the default estimator (a given ``estimator`` keeps its own).

    Attributes
    ----------
    estimator_ : skae autoencoder
        The fitted autoencoder, on standardized data (and the missing
        indicators after them, with ``indicate_missing``).

    statistics_ : ndarray of shape (n_features,)
        Each column's mean over its observed entries (the first fill).

    scale_ : ndarray of shape (n_features,)
        Each column's standard deviation over its observed entries; 0 for a
        column whose observed entries are all one value, whose gaps are
        filled with that value.

    indicator_ : MissingIndicator or None
        The indicator of ``add_indicator``.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit. Defined only when X has feature
        names that are all strings.

    See Also
    --------
    sklearn.impute.IterativeImputer : Model-based imputation, one feature at
        a time.
    sklearn.impute.KNNImputer : Imputation from the nearest rows.
    DenoisingAutoencoder : The default estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import AutoencoderImputer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 6))
    >>> X[rng.uniform(size=X.shape) < 0.1] = np.nan
    >>> imputer = AutoencoderImputer(random_state=0).fit(X)
    >>> X_filled = imputer.transform(X)
    >>> bool(np.isnan(X_filled).any())
    False
    >>> bool(np.allclose(X_filled[~np.isnan(X)], X[~np.isnan(X)]))
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "transform", "inverse_transform"]), None],
        "missing_values": [MissingValues(numeric_only=True)],
        "indicate_missing": ["boolean"],
        "n_passes": [Interval(Integral, 1, None, closed="left")],
        "add_indicator": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        missing_values=np.nan,
        indicate_missing=True,
        n_passes=1,
        add_indicator=False,
        random_state=None,
    ):
        self.estimator = estimator
        self.missing_values = missing_values
        self.indicate_missing = indicate_missing
        self.n_passes = n_passes
        self.add_indicator = add_indicator
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the autoencoder on X's observed entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries (``missing_values``).

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        with _unchanged_on_failure(self):
            return self._fit(X)

    def _fit(self, X):
        X, missing = self._validate(X, reset=True)
        empty = np.flatnonzero(missing.all(axis=0))
        if empty.size:
            raise ValueError(
                f"Column(s) {empty.tolist()} of X have no observed value "
                "(every entry is missing): nothing to learn them from. Drop "
                "them before imputing (their values cannot be recovered)."
            )
        observed = ~missing
        counts = observed.sum(axis=0)
        # In float64 whatever X's dtype (float16 sums overflow, float32's
        # round the mean of a constant column off its value), a block of
        # rows at a time (no float64 copy of X).
        mean = _column_sums(X, observed, lambda x: x) / counts
        # The spread in units of each column's largest deviation (no
        # overflow or underflow at any scale); a column is constant when
        # its spread is rounding next to its mean (relative, not absolute:
        # a column in units of 1e-13 is not constant). A constant column
        # gets scale 0: its gaps take its value, not a reconstruction.
        peak = _column_sums(X, observed, lambda x: np.abs(x - mean), np.maximum)
        peak[~(peak > 0)] = 1.0
        squares = _column_sums(X, observed, lambda x: ((x - mean) / peak) ** 2)
        scale = peak * np.sqrt(squares / counts)
        scale[~(scale > 1e-12 * np.abs(mean))] = 0.0
        self.statistics_, self.scale_ = mean, scale
        estimator = self.estimator
        if estimator is None:
            estimator = DenoisingAutoencoder(
                noise="masking",
                noise_level=0.15,
                loss="squared_error",
                n_iter_no_change=30,
                random_state=self.random_state,
            )
        estimator = clone(estimator)
        if not isinstance(estimator, _BaseAutoencoder):
            raise ValueError(
                "AutoencoderImputer trains a skae autoencoder with the missing "
                "entries left out of its loss, which only skae's autoencoders "
                f"do; the estimator is a {type(estimator).__name__}. Use "
                "Autoencoder, SparseAutoencoder, ContractiveAutoencoder or "
                "DenoisingAutoencoder (or None)."
            )
        if getattr(estimator, "loss", None) == "binary_cross_entropy":
            raise ValueError(
                "AutoencoderImputer trains its estimator on standardized "
                "columns (mean 0, spread 1), which cross-entropy cannot fit: "
                "use loss='squared_error' (or 'auto') for the estimator."
            )
        # The indicators are inputs, not targets; the noise leaves them but
        # for marking what it hides (DenoisingAutoencoder's n_values).
        Z = self._standardized(X, missing, self.indicate_missing)
        if self.indicate_missing:
            estimator._n_values = X.shape[1]
        # The engine leaves the entries marked False out of the loss, and
        # the columns after the mask's (the indicators) too.
        estimator._observed = observed
        try:
            estimator.fit(Z)
        finally:
            del estimator._observed
            estimator.__dict__.pop("_n_values", None)
        self.estimator_ = estimator
        self.indicator_ = None
        if self.add_indicator:
            self.indicator_ = MissingIndicator(
                missing_values=np.nan
                if self._nan_marks_missing()
                else self.missing_values,
                error_on_new=False,
            ).fit(X)
        return self

    def transform(self, X):
        """Fill X's missing entries; observed entries are kept as they are.

        A row whose every entry is missing gets the training means.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries (``missing_values``).

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features) or \
                (n_samples, n_features + n_indicators)
            X with its gaps filled, and the indicator columns appended with
            ``add_indicator``.
        """
        check_is_fitted(self)
        X, missing = self._validate(X, reset=False)
        n_features = X.shape[1]
        Z = self._standardized(X, missing, self.indicate_missing)
        values = Z[:, :n_features]  # a view: the fills go into Z
        for _ in range(self.n_passes):
            rebuilt = self.estimator_.inverse_transform(self.estimator_.transform(Z))
            values[missing] = rebuilt[:, :n_features][missing]
            Z[:, n_features:] = 0.0  # the fills read as observed now
        # A row with nothing observed has nothing to reconstruct from: the
        # training means (0 here), as SimpleImputer fills it.
        values[missing.all(axis=1)] = 0.0
        X_filled = np.array(X, dtype=X.dtype, copy=True)
        rows, cols = np.nonzero(missing)
        fills = values[rows, cols] * self.scale_[cols] + self.statistics_[cols]
        X_filled[rows, cols] = fills
        if self.indicator_ is not None:
            X_filled = np.hstack(
                # An array whatever sklearn's global transform_output (the
                # indicator would follow it; our own output is set after).
                [X_filled, np.asarray(self.indicator_.transform(X), X_filled.dtype)]
            )
        return X_filled

    def get_feature_names_out(self, input_features=None):
        """Output feature names: the input's, then the indicator's.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names (``feature_names_in_`` when None).

        Returns
        -------
        feature_names_out : ndarray of str objects
            The input feature names, then ``missingindicator_<name>`` for
            each indicator column.
        """
        check_is_fitted(self, "n_features_in_")
        names = _check_feature_names_in(self, input_features)
        if self.indicator_ is None:
            return names
        return np.concatenate([names, self.indicator_.get_feature_names_out(names)])

    def _validate(self, X, reset):
        """X as floats, and its missing entries; NaN outside
        ``missing_values`` and infinity are errors."""
        X = _from_tensor(X)
        hint = (
            " If strings mark missing entries, replace them with np.nan "
            "(pandas.read_csv(na_values=...) does it on reading)."
        )
        with _numeric_input(self, hint):
            X = validate_data(
                self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan", reset=reset
            )
        if self._nan_marks_missing():
            return X, np.isnan(X)
        if np.isnan(X).any():
            raise ValueError(
                f"X holds NaN, but missing_values={self.missing_values!r}. "
                "Pass missing_values=np.nan if NaN marks the missing entries, "
                "or replace the NaN."
            )
        return X, X == self.missing_values

    def _nan_marks_missing(self):
        """NaN or pandas.NA (which validation turns into NaN)."""
        return is_scalar_nan(self.missing_values) or is_pandas_na(self.missing_values)

    def _standardized(self, X, missing, indicators):
        """The estimator's input: X standardized, 0 at its gaps (and in its
        constant columns, whatever new rows hold), then with
        ``indicators`` the missing mask; float32 unless X is float64,
        computed a block of rows at a time."""
        constant = ~(self.scale_ > 0)
        scale = np.where(constant, 1.0, self.scale_)
        n, d = X.shape
        dtype = np.float64 if X.dtype == np.float64 else np.float32
        Z = np.empty((n, 2 * d if indicators else d), dtype=dtype)
        for start in range(0, n, _BLOCK):
            rows = slice(start, start + _BLOCK)
            Z[rows, :d] = (X[rows] - self.statistics_) / scale
            if indicators:
                Z[rows, d:] = missing[rows]
        values = Z[:, :d]
        values[missing] = 0.0
        values[:, constant] = 0.0
        return Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._nan_marks_missing()
        return tags
