"""What an estimator decides before training, and what it keeps after.

This is the one interface between the estimators and the engine. An
estimator's ``fit`` is three steps:

1. ``plan = self._plan(X, incremental)``: validate X and decide, in NumPy
   and scikit-learn terms, everything training needs: the loss, the seed,
   the training and validation rows, the net (built on the training rows:
   its units, initial weights, penalty and corruption), the epoch budget
   and the stopping rule. A :class:`Plan` holds the result.
2. The engine trains ``plan.net``: ``skae._engine.train.train`` for one
   net, ``skae._engine.batched.fit_nets`` for many at once
   (``BatchedGridSearchCV``). Neither knows about estimators.
3. ``self._adopt(plan, net, outcome)``: keep the trained net and set the
   fitted attributes and warnings, the same whichever engine trained it.

``skae.model_selection`` uses only these two methods (and the estimator's
public parameters); ``skae.io`` rebuilds a saved net with ``_build_net``,
reads the fitted attributes off it with ``_describe_net``, and refuses to
save a net its parameters no longer describe with ``_check_same_model``.
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ._build import _constant_loss, _NetMixin, _reconstruction_loss

__all__ = ["Outcome", "Plan"]

# How far outside [0, 1] a value may lie and still count as inside for
# cross-entropy, in units of the data's float epsilon: a rounding error
# (MinMaxScaler's 1 + 2e-16 in float64, a few ulps in float32), not a value.
_UNIT_TOLERANCE_EPS = 4


def _unit_tolerance(dtype):
    """How far outside [0, 1] a rounding error of ``dtype`` data may lie."""
    if not np.issubdtype(dtype, np.floating):
        return 0.0
    return _UNIT_TOLERANCE_EPS * float(np.finfo(dtype).eps)


# batch_size="auto" splits small data sets into at least this many batches
# (of at least _MIN_AUTO_BATCH rows): with one or two batches an epoch is
# one or two optimizer steps, and no number of epochs trains the model.
_MIN_BATCHES_PER_EPOCH = 20
_MIN_AUTO_BATCH = 16

# max_iter="auto": at least this many epochs, and as many more as make
# _AUTO_MAX_STEPS optimizer steps on small data (measured: the default
# SparseAutoencoder on 1348 rows of digits stops by its rule after ~30 000
# steps, ContractiveAutoencoder on 331 rows of diabetes after ~19 000).
_AUTO_MIN_EPOCHS = 200
_AUTO_MAX_STEPS = 50_000

# A fit whose best training loss is above this fraction of the best constant
# reconstruction's learned nothing (see _warn_if_constant).
_CONSTANT_FRACTION = 0.99


def _budget_note(max_iter):
    """What the epoch limit of ``max_iter="auto"`` was, for the warning."""
    if max_iter != "auto":
        return ""
    return (
        f" (max_iter='auto': {_AUTO_MAX_STEPS} optimizer steps, at least "
        f"{_AUTO_MIN_EPOCHS} epochs; set max_iter to train longer)"
    )


@dataclass
class Plan:
    """One fit, decided: what the engine trains and how.

    Attributes
    ----------
    net : AutoencoderNet
        The net to train, built on the training rows (or the estimator's
        net, when training continues).
    loss : str
        The loss, resolved.
    X : ndarray
        The validated training data of the call.
    train_rows, valid_rows : ndarray of int or None
        Positions in X of the rows the net trains on and of the validation
        rows (early stopping); None for all rows and no validation.
    epochs : int
        The most epochs to train.
    stopping : dict or None
        The stopping rule's settings (``monitor``, ``patience``,
        ``threshold`` in absolute loss units, ``max_reductions``,
        ``load_best``); None for ``partial_fit``, which trains one epoch.
    continuing : bool
        Whether the net was trained before (warm start, partial_fit).
    n_before : int
        Epochs the net had trained before this call.
    """

    net: object
    loss: str
    X: np.ndarray
    train_rows: np.ndarray | None
    valid_rows: np.ndarray | None
    epochs: int
    stopping: dict | None
    continuing: bool
    n_before: int

    @property
    def X_train(self):
        return self.X if self.train_rows is None else self.X[self.train_rows]

    @property
    def X_valid(self):
        return None if self.valid_rows is None else self.X[self.valid_rows]


@dataclass
class Outcome:
    """How training ended: by the stopping rule, by the user, or neither."""

    stopped: bool = False
    interrupted: bool = False
    best_epoch: int | None = None  # the stopping rule's (None: not known)


class _PlanningMixin(_NetMixin):
    """The decisions of ``_BaseAutoencoder`` (see the module docstring)."""

    def _plan(self, X, incremental, validated=False):
        """Validate X (unless ``validated``) and decide the fit: a
        :class:`Plan`."""
        continuing = hasattr(self, "net_") and (incremental or self.warm_start)
        if not validated:
            X = self._validate_X(X, reset=not continuing)
        loss = self._resolve_loss(X, continuing)
        self._hidden_layer_sizes()
        self._resolve_activation()
        if continuing:
            net = self.net_
            self._check_same_model(net)
            seed = net.seed
        else:
            seed = self._draw_seed()
        n_before = len(net.history) if continuing and net.initialized_ else 0
        train_rows = valid_rows = None
        if not incremental and self.early_stopping:
            # Split before the net is built: its units (mean, scale, output
            # bias) and the corruption's range come from the training part.
            # The same split on every warm_start call, as MLPRegressor's:
            # no call validates on rows an earlier one trained on.
            train_rows, valid_rows = self._split_validation(X.shape[0], seed)
        X_train = X if train_rows is None else X[train_rows]
        if continuing:
            self._update_training_settings(net, X_train, incremental)
        else:
            if X_train.shape[0] < 2:
                do = "Start partial_fit with a representative chunk of rows."
                if not incremental:
                    do = "Fit on more rows."
                    if train_rows is not None and X.shape[0] > 2:
                        do = "Fit on more rows, or lower validation_fraction."
                who = type(self).__name__
                who += ".partial_fit's first call" if incremental else ""
                warnings.warn(
                    f"{who} sets the network's units (each "
                    "feature's mean and spread) from its training rows, here "
                    "one, which has no spread: the units stay X's own, and the "
                    f"model can learn no more than that row. {do}",
                    UserWarning,
                    stacklevel=5,
                )
            observed = getattr(self, "_observed", None)
            if observed is not None and train_rows is not None:
                observed = observed[train_rows]
            net = self._build_net(X_train, seed, loss, observed, incremental)
        stopping = None
        if not incremental:
            stopping = dict(
                monitor="valid_loss" if self.early_stopping else "train_loss",
                patience=self.n_iter_no_change,
                threshold=self.tol * _constant_loss(net),
                max_reductions=2 if self.learning_rate == "adaptive" else 0,
                load_best=self.early_stopping,
            )
        return Plan(
            net=net,
            loss=loss,
            X=X,
            train_rows=train_rows,
            valid_rows=valid_rows,
            epochs=1 if incremental else self._max_epochs(X_train.shape[0]),
            stopping=stopping,
            continuing=continuing,
            n_before=n_before,
        )

    def _adopt(self, plan, net, outcome, stacklevel=2):
        """Keep a trained net: the fitted attributes, and the warnings.

        ``stacklevel`` is the warnings' as seen from the caller.
        """
        self.net_ = net
        self.loss_ = plan.loss
        kept = self._kept_row(plan, net, outcome.best_epoch)
        self._record(net, kept)
        stacklevel += 1
        if outcome.interrupted:
            # Early stopping loads its best epoch at the end, as it does on
            # any other end of training.
            last = kept is None or kept is net.history[-1]
            kept_what = (
                f"the weights of the last completed epoch ({self.n_iter_})"
                if last
                else f"{self.n_iter_} completed epochs and, as early stopping "
                "does, the weights of the best of them on the validation rows "
                f"(epoch {kept['epoch']})"
            )
            warnings.warn(
                f"Training interrupted by the user. {type(self).__name__} keeps "
                f"{kept_what}.",
                UserWarning,
                stacklevel=stacklevel,
            )
            return
        if plan.stopping is None:
            return
        if not outcome.stopped and len(net.history) - plan.n_before == plan.epochs:
            warnings.warn(
                f"Maximum iterations ({plan.epochs}) reached and the "
                "optimization hasn't converged yet." + _budget_note(self.max_iter),
                ConvergenceWarning,
                stacklevel=stacklevel,
            )
        observed = self._observed_entries(plan)
        loss = kept and _reconstruction_loss(
            net, plan.X, plan.train_rows, observed and observed[0]
        )
        self._warn_if_constant(net, loss, stacklevel)

    def _kept_row(self, plan, net, best_epoch=None):
        """The history row of the epoch whose weights the call keeps: the
        last, or with early stopping the one its stopping rule restored,
        ``best_epoch`` (a callback that stops training ends an epoch the
        rule never read)."""
        rows = list(net.history)[plan.n_before :]
        if not rows:
            return None
        if plan.stopping is None or not plan.stopping["load_best"]:
            return rows[-1]
        return next((r for r in rows if r["epoch"] == best_epoch), rows[-1])

    def _resolve_loss(self, X, continuing):
        """The loss to train with; checks that X suits it."""
        loss = self.loss_ if continuing else self.loss
        if loss == "squared_error":
            return loss
        low, high = X.min(), X.max()
        # Values a rounding error outside [0, 1] (MinMaxScaler's 1 + 2e-16)
        # count as inside: they are 0 and 1 in float32, where training runs.
        # The error is relative to the data's magnitude: -1e-7 in data of
        # 1e-6 is a value, not a rounding of 0.
        magnitude = min(1.0, max(abs(float(low)), abs(float(high))))
        tolerance = _unit_tolerance(X.dtype) * magnitude
        in_unit_interval = low >= -tolerance and high <= 1 + tolerance
        if loss == "auto":
            # Intensities and probabilities reach the upper half of [0, 1];
            # data of small values (1e-5, say) train far better with squared
            # error, whose units follow the data's spread.
            unit_data = in_unit_interval and high > 0.5
            return "binary_cross_entropy" if unit_data else "squared_error"
        if not in_unit_interval:
            raise ValueError(
                "loss='binary_cross_entropy' needs every input value in [0, 1], "
                f"got values in [{low:.4g}, {high:.4g}]. Scale the data "
                "(e.g. with sklearn.preprocessing.MinMaxScaler) or use "
                "loss='squared_error'."
            )
        return loss

    def _draw_seed(self):
        if self.random_state is None:
            # Fresh entropy without touching NumPy's global random state.
            return int(np.random.SeedSequence().generate_state(1)[0])
        rng = check_random_state(self.random_state)
        return int(rng.randint(np.iinfo(np.int32).max))

    # batch_size="auto": at most this many rows, and at least
    # _MIN_BATCHES_PER_EPOCH batches of _MIN_AUTO_BATCH rows or more.
    _auto_batch_size = 128

    def _effective_batch_size(self, n_samples):
        """The batch size training uses for ``n_samples`` rows."""
        if self.batch_size != "auto":
            return self.batch_size
        per_batch = -(-n_samples // _MIN_BATCHES_PER_EPOCH)
        return int(min(self._auto_batch_size, max(_MIN_AUTO_BATCH, per_batch)))

    def _max_epochs(self, n_samples):
        """The number of epochs ``max_iter`` allows on ``n_samples`` rows.

        "auto" is the larger of 200 epochs and the epochs that make 50 000
        optimizer steps: a step budget, so that small data sets (a few
        batches per epoch) train as long as large ones need.
        """
        if self.max_iter != "auto":
            return self.max_iter
        batch_size = min(self._effective_batch_size(n_samples), max(1, n_samples))
        batches = -(-n_samples // batch_size)
        return max(_AUTO_MIN_EPOCHS, -(-_AUTO_MAX_STEPS // max(1, batches)))

    def _split_validation(self, n_samples, seed):
        """Positions of the training and the validation rows, each sorted.

        The validation part has ``ceil(validation_fraction * n_samples)``
        rows, as ``MLPRegressor``'s (``train_test_split``'s rounding).
        """
        n_valid = math.ceil(self.validation_fraction * n_samples)
        if n_valid < 1 or n_valid >= n_samples:
            raise ValueError(
                f"early_stopping=True with validation_fraction="
                f"{self.validation_fraction} leaves {n_valid} of {n_samples} "
                "samples for validation; both the training and the validation "
                "part need at least one sample. Use more samples, change "
                "validation_fraction or set early_stopping=False."
            )
        perm = np.random.default_rng(seed).permutation(n_samples)
        return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])

    def _warn_if_constant(self, net, loss, stacklevel):
        """Warn when the kept model is no better than the constant reconstruction.

        The decoder starts there (the mean, or its logit), so a model whose
        reconstruction loss on its training rows is less than 1% below that
        loss, or above it, learned nothing from X, or lost it (ReLU units
        that died late; a step size so large that an epoch's mean loss
        hides that its last weights are worse than the mean)."""
        constant = _constant_loss(net)
        if loss is None or constant <= 0 or loss < _CONSTANT_FRACTION * constant:
            return
        warnings.warn(
            f"{type(self).__name__} learned almost nothing: the reconstruction "
            f"loss of the epoch it keeps, on its training rows ({loss:.4g}), is not "
            f"{100 * (1 - _CONSTANT_FRACTION):.0f}% below the loss of "
            f"reconstructing every sample by the training mean ({constant:.4g}), "
            "so its codes carry almost no information about X. Train longer "
            "(max_iter), raise learning_rate_init, or lower the penalty weight.",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )

    def _record(self, net, kept):
        """Set the fitted attributes that describe training; ``kept`` is
        the history row of the epoch whose weights the call keeps."""
        history = net.history
        self.loss_curve_ = [float(row["train_loss"]) for row in history]
        self.n_iter_ = len(history)
        self.best_loss_ = min(self.loss_curve_)
        valid = [-float(row["valid_loss"]) for row in history if "valid_loss" in row]
        if valid:
            self.validation_scores_ = valid
            # The kept weights' score: a warm start with early stopping
            # keeps the best epoch of its own run, not of earlier calls'.
            if kept is not None and "valid_loss" in kept:
                self.best_validation_score_ = -float(kept["valid_loss"])
            elif not hasattr(self, "best_validation_score_"):
                self.best_validation_score_ = max(valid)
        else:  # none from an earlier fit may remain
            self.__dict__.pop("validation_scores_", None)
            self.__dict__.pop("best_validation_score_", None)
        self._describe_net(net)

    def __getattr__(self, name):
        # Called only for a missing attribute: a fitted network with hidden
        # layers has no components_ or dictionary_, and says so (as SVC
        # says why it has no coef_).
        if name in ("components_", "dictionary_") and "net_" in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__} has {name} only with "
                "hidden_layer_sizes=() (one linear layer each way); this one "
                "was fitted with hidden layers. input_weights_ holds its first "
                "layer's weights; transform and inverse_transform map through "
                "the whole network.",
                name=name,
                obj=self,
            )
        raise AttributeError(
            f"'{type(self).__name__}' object has no attribute '{name}'",
            name=name,
            obj=self,
        )
