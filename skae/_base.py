"""The shared estimator base: parameters, validation, fit and inference.

The decisions before training (the plan) and the fitted attributes after it
live in ``skae/_plan.py``; the training itself in ``skae/_engine``.
"""

from abc import ABCMeta
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import assert_all_finite
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
)
from sklearn.utils.validation import validate_data

from ._build import _put_back_settings, _settings_of
from ._engine.callbacks import PlateauStopping, ProgressBar
from ._engine.inference import OutOfMemoryError as _OutOfMemoryError
from ._engine.train import train
from ._inference import _InferenceMixin
from ._plan import Outcome, _PlanningMixin
from ._pretrained import active as pretrained_active
from ._pretrained import take
from ._units import _float64_shift
from ._validation import (
    _check_callbacks,
    _check_float32_range,
    _float_dtypes,
    _from_tensor,
    _numeric_input,
)

# The key of a continued net's training settings in a call's saved state.
_NET_BEFORE = "_net_settings_before_call"


class _BaseAutoencoder(
    _PlanningMixin,
    _InferenceMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
    metaclass=ABCMeta,
):
    """Base class for the autoencoder transformers.

    Subclasses plug in through three hooks: ``_resolve_activation``,
    ``_penalty`` and ``_corruption``.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "tied_weights": ["boolean"],
        "code_dropout": [Interval(Real, 0, 1, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "loss": [StrOptions({"auto", "squared_error", "binary_cross_entropy"})],
        "solver": [StrOptions({"adam", "sgd"})],
        "learning_rate": [StrOptions({"constant", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [str],
        "callbacks": [list, None],
    }

    def __init__(
        self,
        n_components,
        *,
        hidden_layer_sizes,
        tied_weights,
        code_dropout,
        activation,
        loss,
        solver,
        learning_rate,
        learning_rate_init,
        alpha,
        batch_size,
        max_iter,
        tol,
        n_iter_no_change,
        early_stopping,
        validation_fraction,
        shuffle,
        warm_start,
        random_state,
        verbose,
        device,
        callbacks,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.tied_weights = tied_weights
        self.code_dropout = code_dropout
        self.activation = activation
        self.loss = loss
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.callbacks = callbacks

    # ----------------------------------------------------------------- hooks

    def _resolve_activation(self):
        """The activation actually used (resolves "auto" where allowed)."""
        return self.activation

    def _penalty(self, n_samples, loss):
        """``penalty(module, x, codes, generator)`` or None; must pickle.

        ``n_samples`` is the number of rows of an epoch (None for
        ``partial_fit``, whose calls are chunks of a longer stream), ``loss``
        the reconstruction loss resolved."""
        return None

    def _unit_norm_decoder(self):
        """Whether the decoder's columns are kept at unit norm."""
        return False

    def _code_bias(self):
        """Initial bias of the code units, or None for torch's default."""
        return None

    def _code_sparsity(self):
        """``("topk", k)`` or ``("batch_topk", k)`` for a code layer that
        keeps its largest activations (``skae/_nn/sparse_codes.py``), or
        None for the ``activation``."""
        return None

    def _corruption(self, X):
        """``corrupt(x, generator)`` or None, given the training data; must pickle."""
        return None

    # ------------------------------------------------------------- training

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the autoencoder to X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: dense and numeric, with values within float32's
            range. Sparse matrices are refused: convert them with
            ``X.toarray()``.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train the autoencoder for one epoch over X.

        The first call initialises the model, and its X sets the network's
        units (each feature's mean and spread) for good: make the first
        chunk a representative sample (a few hundred rows, shuffled); later
        calls continue training. Early stopping and the ``tol`` stopping
        rule do not apply.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: dense and numeric, with values within float32's
            range. Sparse matrices are refused: convert them with
            ``X.toarray()``.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._fit(X, incremental=True)

    def _validate_params(self):
        super()._validate_params()
        # The constraints check that callbacks is a list; skorch would fail
        # on a wrong item only once training starts.
        _check_callbacks(self)

    def _validate_X(self, X, *, reset, finite_in_blocks=False, centre=True):
        """validate_data, plus what computing in float32 needs.

        With ``finite_in_blocks``, a float32 X is not searched for NaN and
        infinity here: the caller checks each block as the network reads
        it (``transform``), saving a pass over X. Other dtypes are checked
        here, before their float32 range. X is returned centred by the
        fit's float64 shift (see ``_centred``), which ``reset`` sets,
        unless ``centre=False``.
        """
        X = _from_tensor(X)
        with _numeric_input(self):
            X = validate_data(
                self,
                X,
                dtype=_float_dtypes(X),
                reset=reset,
                ensure_all_finite=not finite_in_blocks,
            )
        if finite_in_blocks and X.dtype != np.float32:
            self._assert_finite(X)
        _check_float32_range(X, self)
        if not centre:
            return X
        if reset:
            self._input_shift = _float64_shift(X)
            if (
                self._input_shift is not None
                and self._resolve_loss(X, continuing=False) == "binary_cross_entropy"
            ):
                # Cross-entropy reads values in [0, 1]: not shifted (warned).
                self._input_shift = None
        return self._centred(X)

    def _centred(self, X):
        """X less the fit's float64 shift (``_units._float64_shift``), in
        X's dtype: float64 X far from zero compared with its spread reaches
        the float32 network centred, and every method computes in those
        centred units (inverse_transform adds the shift back)."""
        shift = getattr(self, "_input_shift", None)
        if shift is None:
            return X
        return np.subtract(X, shift, dtype=np.float64).astype(X.dtype, copy=False)

    def _assert_finite(self, X):
        """scikit-learn's check and message for NaN and infinity in X."""
        assert_all_finite(
            X, allow_nan=False, estimator_name=type(self).__name__, input_name="X"
        )

    def _fit(self, X, incremental):
        # A failed call leaves the estimator as it was (see _restore).
        before = dict(self.__dict__)
        if hasattr(self, "net_"):
            before[_NET_BEFORE] = _settings_of(self.net_)
        try:
            validated = False
            continuing = hasattr(self, "net_") and (incremental or self.warm_start)
            if not continuing and pretrained_active():
                # A fit that BatchedGridSearchCV trained ahead of time
                # (skae/_pretrained.py), found by the validated data.
                X = self._validate_X(X, reset=True)
                validated = True
                adopted = take(self, X)
                if adopted is not None:
                    self._adopt(*adopted, stacklevel=3)
                    return self
            plan = self._plan(X, incremental, validated=validated)
        except BaseException:
            self._restore(before)
            raise
        net, outcome = self._train(plan, before)
        self._adopt(plan, net, outcome, stacklevel=3)
        return self

    def _observed_entries(self, plan):
        """Masks of the observed entries of the training and validation
        rows when some are missing (``_observed``, set by
        AutoencoderImputer for its fit); None otherwise."""
        observed = getattr(self, "_observed", None)
        if observed is None:
            return None
        train = observed if plan.train_rows is None else observed[plan.train_rows]
        valid = None if plan.valid_rows is None else observed[plan.valid_rows]
        if valid is not None and not valid.any():
            raise ValueError(
                f"The {len(valid)} validation row(s) that early_stopping set "
                "aside hold no observed entry: their loss is 0 at every epoch, "
                "so early stopping would keep the first epoch. Raise "
                "validation_fraction, "
                "or set early_stopping=False."
            )
        return train, valid

    def _train(self, plan, before):
        """Train ``plan.net`` (see ``skae._plan``); the net and its Outcome."""
        net = plan.net
        # The user's callbacks are used as given (as skorch uses them): a
        # callback may hold what cannot be copied (an open file).
        callbacks = list(self.callbacks or [])
        own = {}
        stopper = None
        if plan.stopping is not None:
            stopper = PlateauStopping(threshold_mode="abs", **plan.stopping)
            own["stopping"] = stopper
        if self.verbose:
            own["progress"] = ProgressBar(plan.epochs, type(self).__name__)
        X = plan.X_train
        device = torch.device(net.device)
        try:
            train(
                net,
                X,
                plan.X_valid,
                epochs=plan.epochs,
                callbacks=callbacks,
                own=own,
                observed=self._observed_entries(plan),
            )
            if (
                net.interrupted_
                and len(net.history) == plan.n_before
                and not plan.continuing
            ):
                # Ctrl-C before the first epoch ended: nothing to keep.
                raise KeyboardInterrupt
        except BaseException as exc:
            # train put a continued net back; the attributes go back here.
            self._restore(before)
            if isinstance(exc, FloatingPointError):
                raise ValueError(
                    f"Training diverged: {exc}. {self._state_after_failure()} "
                    f"Lower learning_rate_init (now {self.learning_rate_init}) "
                    "or scale the input data."
                ) from exc
            if isinstance(exc, _OutOfMemoryError):
                raise MemoryError(
                    f"The {device.type} device ran out of memory while fitting "
                    f"{type(self).__name__} with batch_size={net.batch_size}; "
                    "the training data is held on the device too "
                    f"({4 * X.size / 2**20:.0f} MiB in float32). "
                    f"{self._state_after_failure()} Lower batch_size "
                    f"(e.g. batch_size={max(1, net.batch_size // 2)}), use "
                    "smaller hidden_layer_sizes, or fit on another device."
                ) from exc
            raise
        stopped = stopper is not None and stopper.stopped_
        best = None if stopper is None else stopper.best_epoch_
        return net, Outcome(stopped, net.interrupted_, best)

    def _restore(self, before):
        """Undo a failed call: the attributes as they were, and a continued
        net's training settings (``train`` puts its weights back)."""
        self.__dict__.clear()
        self.__dict__.update(before)
        settings = self.__dict__.pop(_NET_BEFORE, None)
        if settings is not None:
            _put_back_settings(self.net_, settings)

    def _state_after_failure(self):
        if hasattr(self, "net_"):
            return f"{type(self).__name__} keeps its state from before this call."
        return f"{type(self).__name__} is left unfitted."

    def __sklearn_is_fitted__(self):
        # Not n_features_in_: the first fit sets it before it has a net.
        return "net_" in self.__dict__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
