"""Building the net an estimator trains, and continuing one.

``_build_net`` turns the estimator's parameters and the training rows into
an unfitted ``AutoencoderNet``: the module's units (``skae._units``), its
initial output and code biases, the optimizer, the penalty and the
corruption. ``skae.io`` rebuilds saved nets with it, and reads the fitted
attributes off them with ``_describe_net``. ``_check_same_model``
and ``_update_training_settings`` serve ``warm_start`` and ``partial_fit``.
"""

from numbers import Integral

import numpy as np
import torch

from ._engine.data import resolve_device
from ._engine.inference import INFERENCE_BLOCK, as_tensor
from ._engine.net import AutoencoderNet, ReconstructionLoss
from ._engine.parallel import limit_threads
from ._nn.modules import AutoencoderModule
from ._nn.objectives import reconstruction_error
from ._units import _moments, _units, _warn_if_imprecise


def _constant_loss(net):
    """The training loss of the best constant reconstruction: tol's unit."""
    if net.initialized_:
        return float(net.module_.constant_loss)
    return float(net.module__constant_loss)


def _reconstruction_loss(net, X, rows=None, observed=None):
    """The mean reconstruction loss (the training loss less its penalty and
    noise) of the net's module as it is, on the rows ``rows`` of X (all
    when None), ``observed`` their observed entries (None: all), in the
    loss's units, less the worst ``net.trim_fraction`` of the rows (an
    outlier detector's trimmed loss); computed in blocks of rows."""
    module, loss = net.module_, net.criterion_.loss
    n = X.shape[0] if rows is None else len(rows)
    training, errors = module.training, []
    module.train(False)  # no code dropout
    try:
        with limit_threads(), torch.inference_mode():
            for start in range(0, n, INFERENCE_BLOCK):
                block = slice(start, start + INFERENCE_BLOCK)
                index = block if rows is None else rows[block]
                x = as_tensor(X[index], net.device)  # any strides
                mask = None
                if observed is not None:
                    mask = torch.as_tensor(observed[block], device=net.device)
                _, output = module(x)
                target = module.target(x) if loss == "squared_error" else x
                errors.append(reconstruction_error(output, target, loss, mask))
    finally:
        module.train(training)
    errors = torch.cat(errors).double() if errors else torch.zeros(1)
    if net.trim_fraction:  # as the trimmed loss: the worst rows left out
        kept = max(1, round((1 - net.trim_fraction) * len(errors)))
        errors = torch.sort(errors).values[:kept]
    return float(errors.mean())


# What _update_training_settings sets on a continued net, besides the step
# size of its optimizer's groups and its module's code dropout.
_NET_SETTINGS = (
    "lr",
    "weight_decay",
    "batch_size",
    "shuffle",
    "unit_norm_decoder",
    "trim_fraction",
    "penalty",
    "corrupt",
)


def _settings_of(net):
    """A net's training settings, to put back when a call fails."""
    settings = {name: getattr(net, name) for name in _NET_SETTINGS}
    if net.initialized_:
        settings["group_lrs"] = [g["lr"] for g in net.optimizer_.param_groups]
        settings["code_dropout"] = net.module_.code_dropout
    return settings


def _put_back_settings(net, settings):
    """Undo ``_update_training_settings`` on a net (see ``_settings_of``)."""
    for name in _NET_SETTINGS:
        setattr(net, name, settings[name])
    if "group_lrs" in settings:
        for group, lr in zip(net.optimizer_.param_groups, settings["group_lrs"]):
            group["lr"] = lr
        _set_code_dropout(net, settings["code_dropout"])


def _set_code_dropout(net, fraction):
    """Change an initialized net's code dropout: a training setting of the
    module (no weight depends on it); the written-out pass serves only nets
    without it, so the backward plan is made again."""
    if net.module_.code_dropout != fraction:
        net.module__code_dropout = net.module_.code_dropout = fraction
        net.plan_backprop()


class _NetMixin:
    """The net of ``_BaseAutoencoder`` (see the module docstring)."""

    def _centre_only(self, loss):
        """Whether the encoder's input is only centred (not scaled)."""
        return False

    def _build_net(self, X, seed, loss, observed=None, incremental=False):
        device = resolve_device(self.device)
        mean, variance = _moments(X)
        _warn_if_imprecise(mean, variance, type(self).__name__, X.dtype)
        input_scale, target_scale = _units(variance, mean)
        if self._centre_only(loss):
            input_scale = np.ones_like(input_scale)
        # The decoder starts at the best constant reconstruction: the mean
        # (zero in its units), or its logit for cross-entropy.
        target_offset, output_bias = mean, np.zeros_like(mean)
        constant_loss = target_scale**2 * float(variance.sum())
        if observed is not None:
            # Entries missing (AutoencoderImputer): the mean's loss as the
            # masked loss measures it.
            errors = reconstruction_error(
                torch.as_tensor(mean),
                torch.as_tensor(X, dtype=torch.float64),
                "squared_error",
                torch.as_tensor(observed),
            )
            constant_loss = target_scale**2 * float(errors.mean())
        if loss == "binary_cross_entropy":
            target_offset, target_scale = None, 1.0
            # The mean's logit, but finite for columns that are all 0 or 1.
            p = np.clip(mean, 1e-6, 1 - 1e-6)
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
            module__code_sparsity=self._code_sparsity(),
            module__tied_weights=self.tied_weights,
            module__code_dropout=self.code_dropout,
            module__unit_norm_decoder=self._unit_norm_decoder(),
            criterion=ReconstructionLoss,
            criterion__loss=loss,
            optimizer=optimizer,
            # A Python float: the optimizer's state is saved with it, and
            # torch.load(weights_only=True) refuses NumPy scalars.
            lr=float(self.learning_rate_init),
            weight_decay=self.alpha,
            **solver_kwargs,
            batch_size=self._effective_batch_size(X.shape[0]),
            train_split=None,
            verbose=0,
            device=str(device),
            corrupt=self._corruption(X),
            penalty=self._penalty(None if incremental else X.shape[0], loss),
            seed=seed,
            shuffle=self.shuffle,
            unit_norm_decoder=self._unit_norm_decoder(),
            # Set by AutoencoderOutlierDetector on the autoencoder it fits.
            trim_fraction=getattr(self, "_trim_fraction", 0.0),
        )

    # Parameters that define the network: warm_start and partial_fit
    # continue the same one, so a change of these is an error.
    _MODEL_PARAMS = (
        "n_components",
        "hidden_layer_sizes",
        "activation",
        "solver",
        "tied_weights",
    )

    def _check_same_model(self, net, doing="continue training"):
        """Refuse to continue (or save) a network whose defining parameters
        changed since it was built."""
        built = {
            "n_components": net.module__n_components,
            "hidden_layer_sizes": tuple(net.module__hidden_layer_sizes),
            "activation": net.module__activation,
            "solver": "adam" if net.optimizer is torch.optim.Adam else "sgd",
            "tied_weights": bool(getattr(net, "module__tied_weights", False)),
        }
        now = {
            "n_components": self.n_components,
            "hidden_layer_sizes": tuple(self._hidden_layer_sizes()),
            "activation": self._resolve_activation(),
            "solver": self.solver,
            "tied_weights": self.tied_weights,
        }
        changed = [name for name in self._MODEL_PARAMS if built[name] != now[name]]
        code_sparsity = getattr(net, "module__code_sparsity", None)
        if code_sparsity != self._code_sparsity():
            changed.append("code layer")
            built["code layer"] = code_sparsity
            now["code layer"] = self._code_sparsity()
        if self.loss != "auto" and self.loss != self.loss_:
            changed.append("loss")
            built["loss"], now["loss"] = self.loss_, self.loss
        if not changed:
            return
        what = ", ".join(f"{n} from {built[n]!r} to {now[n]!r}" for n in changed)
        if doing == "save":
            raise ValueError(
                f"{type(self).__name__} cannot be saved: {what} changed since "
                "it was fitted, so its parameters no longer describe its "
                "network (a file would load as another model). Set the "
                "parameters back, or fit again, then save."
            )
        raise ValueError(
            f"{type(self).__name__} cannot continue training its network: "
            f"{what} changed since it was built, and warm_start and "
            "partial_fit continue the same network. Call fit with "
            "warm_start=False to train a new one, or set the parameters "
            "back."
        )

    def _update_training_settings(self, net, X, incremental=False):
        """Apply the current training parameters to a network that continues.

        The step size, weight decay, batch size, shuffling, penalty, code
        dropout and corruption are read from the parameters on every call, so that
        ``set_params`` between calls takes effect as it does for ``fit``.
        """
        lr = float(self.learning_rate_init)
        if net.lr != lr and net.initialized_:
            # A new step size replaces the current one (partial_fit does not
            # reset it otherwise; fit's stopping rule starts from net.lr).
            for group in net.optimizer_.param_groups:
                group["lr"] = lr
        net.lr = lr
        net.weight_decay = self.alpha
        net.batch_size = self._effective_batch_size(X.shape[0])
        net.shuffle = self.shuffle
        net.unit_norm_decoder = self._unit_norm_decoder()
        net.trim_fraction = getattr(self, "_trim_fraction", 0.0)
        if net.initialized_:
            _set_code_dropout(net, self.code_dropout)
        net.penalty = self._penalty(None if incremental else X.shape[0], self.loss_)
        corrupt = self._corruption(X)
        old = net.corrupt
        same_noise = (
            corrupt is not None
            and old is not None
            and corrupt.func is old.func
            and corrupt.keywords.get("level") == old.keywords.get("level")
            and corrupt.keywords.get("n_values") == old.keywords.get("n_values")
        )
        # The same noise keeps the range it was built with (salt and pepper's
        # training minimum and maximum), not the range of this call's X.
        net.corrupt = old if same_noise else corrupt

    def _hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(s, Integral) or s < 1 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must contain positive integers only, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return tuple(int(s) for s in sizes)

    def _describe_net(self, net):
        """Set the fitted attributes read off the net's module."""
        self.activation_ = net.module_.activation
        weight = net.module_.input_weight.detach().cpu().numpy().copy()
        self.input_weights_ = weight
        if not self._hidden_layer_sizes():
            self.components_ = weight.copy()
            module = net.module_
            atoms = module.decoder[-1].weight / module.target_scale
            self.dictionary_ = atoms.detach().cpu().numpy().T.copy()
        else:
            self.__dict__.pop("components_", None)
            self.__dict__.pop("dictionary_", None)
