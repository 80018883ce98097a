"""The shared estimator base: parameters, validation, training and inference."""

import math
import warnings
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
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
)
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._engine.inference import NonFiniteLayer as _NonFiniteLayer
from ._engine.inference import OutOfMemoryError as _OutOfMemoryError
from ._engine.inference import map_rows
from ._engine.net import (
    AutoencoderNet,
    PlateauStopping,
    ProgressBar,
    ReconstructionLoss,
    resolve_device,
)
from ._engine.train import train
from ._nn.modules import AutoencoderModule
from ._units import _moments, _units
from ._validation import (
    _check_callbacks,
    _check_float32_range,
    _float_dtypes,
    _from_tensor,
    _numeric_input,
)

# How far outside [0, 1] a value may lie and still count as inside for
# cross-entropy: a few float32 ulps at 1, far above float64 rounding errors.
_UNIT_TOLERANCE = 1e-6

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


def _constant_loss(net):
    """The training loss of the best constant reconstruction: tol's unit."""
    if net.initialized_:
        return float(net.module_.constant_loss)
    return float(net.module__constant_loss)


def _budget_note(max_iter):
    """What the epoch limit of ``max_iter="auto"`` was, for the warning."""
    if max_iter != "auto":
        return ""
    return (
        f" (max_iter='auto': {_AUTO_MAX_STEPS} optimizer steps, at least "
        f"{_AUTO_MIN_EPOCHS} epochs; set max_iter to train longer)"
    )


class _BaseAutoencoder(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator, metaclass=ABCMeta
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

    def _penalty(self):
        """``penalty(module, x, codes, generator)`` or None; must pickle."""
        return None

    def _code_bias(self):
        """Initial bias of the code units, or None for torch's default."""
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

        The first call initialises the model; later calls continue training
        it. Early stopping and the ``tol`` stopping rule do not apply.

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

    def _hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(s, Integral) or s < 1 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must contain positive integers only, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return tuple(int(s) for s in sizes)

    def _resolve_loss(self, X, continuing):
        """The loss to train with; checks that X suits it."""
        loss = self.loss_ if continuing else self.loss
        if loss == "squared_error":
            return loss
        low, high = X.min(), X.max()
        # Values a rounding error outside [0, 1] (MinMaxScaler's 1 + 2e-16)
        # count as inside: they are 0 and 1 in float32, where training runs.
        in_unit_interval = low >= -_UNIT_TOLERANCE and high <= 1 + _UNIT_TOLERANCE
        if loss == "auto":
            return "binary_cross_entropy" if in_unit_interval else "squared_error"
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

    def _validate_params(self):
        super()._validate_params()
        # The constraints check that callbacks is a list; skorch would fail
        # on a wrong item only once training starts.
        _check_callbacks(self)

    def _validate_X(self, X, *, reset, finite_in_blocks=False):
        """validate_data, plus what computing in float32 needs.

        With ``finite_in_blocks``, a float32 X is not searched for NaN and
        infinity here: the caller checks each block as the network reads
        it (``transform``), saving a pass over X. Other dtypes are checked
        here, before their float32 range.
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
        return _check_float32_range(X, self)

    def _assert_finite(self, X):
        """scikit-learn's check and message for NaN and infinity in X."""
        assert_all_finite(
            X, allow_nan=False, estimator_name=type(self).__name__, input_name="X"
        )

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

    def _centre_only(self, loss):
        """Whether the encoder's input is only centred (not scaled)."""
        return False

    def _build_net(self, X, seed, loss):
        device = resolve_device(self.device)
        mean, variance = _moments(X)
        input_scale, target_scale = _units(variance)
        if self._centre_only(loss):
            input_scale = np.ones_like(input_scale)
        # The decoder starts at the best constant reconstruction: the mean
        # (zero in its units), or its logit for cross-entropy.
        target_offset, output_bias = mean, np.zeros_like(mean)
        constant_loss = target_scale**2 * float(variance.sum())
        if loss == "binary_cross_entropy":
            target_offset, target_scale = None, 1.0
            p = np.clip(mean, 1e-3, 1 - 1e-3)
            output_bias = np.log(p / (1 - p))
            # Cross-entropy is linear in the target: the mean's is exact.
            constant_loss = -float((mean * np.log(p) + (1 - mean) * np.log1p(-p)).sum())
        if self.solver == "adam":
            optimizer = torch.optim.Adam
            solver_kwargs = {"optimizer__fused": device.type in ("cpu", "cuda")}
        else:
            optimizer = torch.optim.SGD
            solver_kwargs = {"optimizer__momentum": 0.9, "optimizer__nesterov": True}
        return AutoencoderNet(
            AutoencoderModule,
            module__n_features=X.shape[1],
            module__n_components=self.n_components,
            module__hidden_layer_sizes=self._hidden_layer_sizes(),
            module__activation=self._resolve_activation(),
            module__input_offset=mean,
            module__input_scale=input_scale,
            module__target_offset=target_offset,
            module__target_scale=target_scale,
            module__constant_loss=constant_loss,
            module__output_bias=output_bias,
            module__code_bias=self._code_bias(),
            module__seed=seed,
            criterion=ReconstructionLoss,
            criterion__loss=loss,
            optimizer=optimizer,
            lr=self.learning_rate_init,
            weight_decay=self.alpha,
            **solver_kwargs,
            batch_size=self._effective_batch_size(X.shape[0]),
            train_split=None,
            verbose=0,
            device=str(device),
            corrupt=self._corruption(X),
            penalty=self._penalty(),
            seed=seed,
            shuffle=self.shuffle,
        )

    # Parameters that define the network: warm_start and partial_fit
    # continue the same one, so a change of these is an error.
    _MODEL_PARAMS = ("n_components", "hidden_layer_sizes", "activation", "solver")

    def _check_same_model(self, net):
        """Refuse to continue a network whose defining parameters changed."""
        built = {
            "n_components": net.module__n_components,
            "hidden_layer_sizes": tuple(net.module__hidden_layer_sizes),
            "activation": net.module__activation,
            "solver": "adam" if net.optimizer is torch.optim.Adam else "sgd",
        }
        now = {
            "n_components": self.n_components,
            "hidden_layer_sizes": tuple(self._hidden_layer_sizes()),
            "activation": self._resolve_activation(),
            "solver": self.solver,
        }
        changed = [name for name in self._MODEL_PARAMS if built[name] != now[name]]
        if self.loss != "auto" and self.loss != self.loss_:
            changed.append("loss")
            built["loss"], now["loss"] = self.loss_, self.loss
        if changed:
            what = ", ".join(f"{n} from {built[n]!r} to {now[n]!r}" for n in changed)
            raise ValueError(
                f"{type(self).__name__} cannot continue training its network: "
                f"{what} changed since it was built, and warm_start and "
                "partial_fit continue the same network. Call fit with "
                "warm_start=False to train a new one, or set the parameters "
                "back."
            )

    def _update_training_settings(self, net, X):
        """Apply the current training parameters to a network that continues.

        The step size, weight decay, batch size, shuffling, penalty and
        corruption are read from the parameters on every call, so that
        ``set_params`` between calls takes effect as it does for ``fit``.
        """
        if net.lr != self.learning_rate_init and net.initialized_:
            # A new step size replaces the current one (partial_fit does not
            # reset it otherwise; fit's stopping rule starts from net.lr).
            for group in net.optimizer_.param_groups:
                group["lr"] = self.learning_rate_init
        net.lr = self.learning_rate_init
        net.weight_decay = self.alpha
        net.batch_size = self._effective_batch_size(X.shape[0])
        net.shuffle = self.shuffle
        net.penalty = self._penalty()
        corrupt = self._corruption(X)
        old = net.corrupt
        same_noise = (
            corrupt is not None
            and old is not None
            and corrupt.func is old.func
            and corrupt.keywords.get("level") == old.keywords.get("level")
        )
        # The same noise keeps the range it was built with (salt and pepper's
        # training minimum and maximum), not the range of this call's X.
        net.corrupt = old if same_noise else corrupt

    def _split_validation(self, X, seed):
        n_valid = int(round(self.validation_fraction * X.shape[0]))
        if n_valid < 1 or n_valid >= X.shape[0]:
            raise ValueError(
                f"early_stopping=True with validation_fraction="
                f"{self.validation_fraction} leaves {n_valid} of {X.shape[0]} "
                "samples for validation; both the training and the validation "
                "part need at least one sample. Use more samples, change "
                "validation_fraction or set early_stopping=False."
            )
        perm = np.random.default_rng(seed).permutation(X.shape[0])
        return X[np.sort(perm[n_valid:])], X[np.sort(perm[:n_valid])]

    def _fit(self, X, incremental):
        # A failed call leaves the estimator as it was (see _restore).
        before = dict(self.__dict__)
        continuing = hasattr(self, "net_") and (incremental or self.warm_start)
        X = self._validate_X(X, reset=not continuing)
        loss = self._resolve_loss(X, continuing)
        self._hidden_layer_sizes()
        self._resolve_activation()
        if continuing:
            net = self.net_
            self._check_same_model(net)
        else:
            net = None
            seed = self._draw_seed()
        n_before = len(net.history) if continuing and net.initialized_ else 0
        X_valid = None
        if not incremental and self.early_stopping:
            # Split before the net is built: its units (mean, scale, output
            # bias) and the corruption's range come from the training part.
            X, X_valid = self._split_validation(
                X, (net.seed if continuing else seed) + n_before
            )
        if continuing:
            self._update_training_settings(net, X)
        else:
            net = self._build_net(X, seed, loss)

        # The user's callbacks are used as given (as skorch uses them): a
        # callback may hold what cannot be copied (an open file).
        callbacks = list(self.callbacks or [])
        own = {}
        stopper = None
        if not incremental:
            stopper = PlateauStopping(
                monitor="valid_loss" if self.early_stopping else "train_loss",
                patience=self.n_iter_no_change,
                threshold=self.tol * _constant_loss(net),
                threshold_mode="abs",
                load_best=self.early_stopping,
                max_reductions=2 if self.learning_rate == "adaptive" else 0,
            )
            own["stopping"] = stopper
        epochs = 1 if incremental else self._max_epochs(X.shape[0])
        if self.verbose:
            own["progress"] = ProgressBar(epochs, type(self).__name__)

        device = torch.device(net.device)
        try:
            train(net, X, X_valid, epochs=epochs, callbacks=callbacks, own=own)
            if net.interrupted_ and len(net.history) == n_before and not continuing:
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

        self.net_ = net
        self.loss_ = loss
        self._record(net)
        if net.interrupted_:
            warnings.warn(
                f"Training interrupted by the user. {type(self).__name__} keeps "
                f"the weights of the last completed epoch ({self.n_iter_}).",
                UserWarning,
                stacklevel=3,
            )
        stopped = stopper is not None and stopper.stopped_
        if (
            not net.interrupted_
            and not incremental
            and not stopped
            and len(net.history) - n_before == epochs
        ):
            warnings.warn(
                f"Maximum iterations ({epochs}) reached and the "
                "optimization hasn't converged yet." + _budget_note(self.max_iter),
                ConvergenceWarning,
                stacklevel=3,
            )
        if not incremental and not net.interrupted_:
            self._warn_if_constant(net, self.loss_curve_[n_before:])
        return self

    def _warn_if_constant(self, net, losses):
        """Warn when training ended no better than the constant reconstruction.

        The decoder starts there (the mean, or its logit), so a fit that
        stays within 1% of that loss learned nothing from X.
        """
        constant = _constant_loss(net)
        if not losses or constant <= 0 or min(losses) < _CONSTANT_FRACTION * constant:
            return
        warnings.warn(
            f"{type(self).__name__} learned almost nothing: its best training "
            f"loss ({min(losses):.4g}) is within "
            f"{100 * (1 - _CONSTANT_FRACTION):.0f}% of the loss of "
            f"reconstructing every sample by the training mean ({constant:.4g}), "
            "so its codes carry almost no information about X. Train longer "
            "(max_iter), raise learning_rate_init, or lower the penalty weight.",
            ConvergenceWarning,
            stacklevel=4,
        )

    def _restore(self, before):
        """Undo a failed call: the attributes as they were (``train`` puts a
        continued net back at its state before the call)."""
        self.__dict__.clear()
        self.__dict__.update(before)

    def _state_after_failure(self):
        if hasattr(self, "net_"):
            return f"{type(self).__name__} keeps its state from before this call."
        return f"{type(self).__name__} is left unfitted."

    def _record(self, net):
        """Set the fitted attributes that describe training."""
        history = net.history
        self.loss_curve_ = [float(row["train_loss"]) for row in history]
        self.n_iter_ = len(history)
        self.best_loss_ = min(self.loss_curve_)
        valid = [-float(row["valid_loss"]) for row in history if "valid_loss" in row]
        if valid:
            self.validation_scores_ = valid
            self.best_validation_score_ = max(valid)
        else:  # none from an earlier fit may remain
            self.__dict__.pop("validation_scores_", None)
            self.__dict__.pop("best_validation_score_", None)
        if not self._hidden_layer_sizes():
            weight = net.module_.input_weight
            self.components_ = weight.detach().cpu().numpy().copy()
        else:
            self.__dict__.pop("components_", None)

    # ------------------------------------------------------------- inference

    @property
    def _n_features_out(self):
        """Number of transformed output features."""
        return self.n_components

    def _map_rows(self, A, prepare, n_out, what, check_output=True):
        """``map_rows`` over the fitted module (see ``_engine.inference``)."""
        return map_rows(
            self.net_.module_,
            torch.device(self.net_.device),
            A,
            prepare,
            n_out,
            what,
            check_input=self._assert_finite,
            owner=type(self).__name__,
            check_output=check_output,
        )

    def transform(self, X):
        """Encode X: the codes of the trained encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            Codes, of X's floating dtype.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, finite_in_blocks=True)

        def check_first_layer(pre_activation):
            # Every input value reaches the first layer's output: a NaN or
            # an infinity in X makes its row there non-finite, and a sum
            # over it (the layer's width, not X's) shows it. The exact test
            # runs only when the sum is not finite, as it may overflow.
            if not math.isfinite(float(pre_activation.sum())) and not bool(
                torch.isfinite(pre_activation).all()
            ):
                raise _NonFiniteLayer

        # With one layer, finite first-layer outputs give finite codes (every
        # activation maps finite values to finite values): no check after.
        one_layer = len(self.net_.module_.encoder) == 2
        return self._map_rows(
            X,
            lambda module: module.inference_encoder(check_first_layer),
            self.n_components,
            "codes",
            check_output=not one_layer,
        )

    def inverse_transform(self, X):
        """Decode codes back to input space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Codes, as returned by :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Reconstructions, of the codes' floating dtype.
        """
        check_is_fitted(self)
        X = _from_tensor(X)
        with _numeric_input(self):
            X = check_array(X, dtype=_float_dtypes(X), estimator=self)
        _check_float32_range(X, self)
        if X.shape[1] != self.n_components:
            raise ValueError(
                f"X has {X.shape[1]} columns but {type(self).__name__} decodes "
                f"codes of n_components={self.n_components} columns. Pass the "
                "output of transform."
            )

        def decoder(module):
            if self.loss_ == "binary_cross_entropy":
                return lambda z, out: torch.sigmoid(module.decode(z))
            return lambda z, out: module.reconstruction(module.decode(z))

        return self._map_rows(X, decoder, self.n_features_in_, "reconstructions")

    def score_samples(self, X):
        """Negative reconstruction error of each sample.

        A sample's error is its reconstruction loss averaged over features.
        Lower means more abnormal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Negative reconstruction error of each sample.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        criterion = self.net_.criterion_
        n_features = X.shape[1]

        def scorer(module):
            encode = module.inference_encoder()
            if criterion.loss == "squared_error":
                # In X's units: the decoder's are X's times target_scale.
                factor = 1.0 / (n_features * float(module.target_scale) ** 2)

                def score(x, out):
                    output = module.decode(encode(x))
                    error = criterion(output, module.target(x))
                    return error.mul_(-factor).unsqueeze(-1)

                return score

            def score(x, out):
                # Cross-entropy against the target clipped to [0, 1], plus
                # the squared distance of the target beyond that range (held
                # out rows may lie outside the training range).
                output = module.decode(encode(x))
                clipped = x.clamp(0.0, 1.0)
                error = criterion(output, clipped) + (x - clipped).square().sum(-1)
                return error.mul_(-1.0 / n_features).unsqueeze(-1)

            return score

        return self._map_rows(X, scorer, 1, "reconstruction errors")[:, 0]

    def score(self, X, y=None):
        """Mean negative reconstruction error (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
