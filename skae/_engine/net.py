"""The training engine: skorch's NeuralNet fed by tensor slices.

Devices, seeds and the batch iterator are in ``data.py``; the callbacks it
trains with (the stopping rule, the progress bar) in ``callbacks.py``.

This layer knows torch and skorch only. A variant reaches it through two
optional hooks, ``corrupt(x, generator)`` and
``penalty(module, x, codes, generator)``; the engine never asks which variant
it trains.
"""

import contextlib
import copy

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.utils import TeeGenerator
from torch import nn

from .._nn.backprop import Plan, backprop
from .._nn.modules import normalize_columns_, remove_parallel_gradient_
from .._nn.objectives import reconstruction_error
from .._nn.sparse_backprop import sparse_backprop
from . import data
from .callbacks import _CheckFinite
from .data import _NOISE_STREAM, _SHUFFLE_STREAM, SliceIterator, _stream_generator

__all__ = ["AutoencoderNet", "ReconstructionLoss"]

_BATCH_EVENTS = ("on_batch_begin", "on_batch_end", "on_grad_computed")
# Module state outside its state dict (warm-up steps, KL's average), initial.
_STATS = (("steps_trained", 0), ("rho_hat_average", None))


class ReconstructionLoss(nn.Module):
    """Per-sample reconstruction error (summed over features), as a criterion."""

    def __init__(self, loss="squared_error"):
        super().__init__()
        self.loss = loss

    def forward(self, output, target, observed=None):
        return reconstruction_error(output, target, self.loss, observed)


class AutoencoderNet(NeuralNet):
    """skorch's NeuralNet, trained X -> X on tensor slices.

    Parameters beyond NeuralNet's
    -----------------------------
    corrupt : callable or None
        ``corrupt(x, generator) -> x_tilde``, applied to training batches
        only.
    penalty : callable or None
        ``penalty(module, x, codes, generator) -> scalar`` added to the mean
        reconstruction error of every batch, training and validation.
    seed : int
        Seeds the shuffling and the noise (pass it to the module too, as
        ``module__seed``, to seed its initialisation); the global random
        state is never touched.
    shuffle : bool, default=True
        Whether to shuffle training batches every epoch.
    written_out_gradients : bool, default=True
        Whether training computes the reconstruction term's gradients with
        the written-out backward pass of ``_backprop`` (used only where the
        module is a plain stack of Linear layers and activations). False
        trains through autograd alone.
    unit_norm_decoder : bool, default=False
        Whether each step keeps the columns of the module's
        ``decoder_input_layer.weight`` at unit norm: the gradient's
        component along each column is removed before the optimizer step
        (after any callback has read the gradients) and the columns are
        rescaled after it.
    trim_fraction : float, default=0.0
        Fraction of each training batch left out of the step: the rows the
        module reconstructs worst (scored in evaluation mode before the
        step), so that a few outliers in the training data are not learned
        (a trimmed loss; ``data.rows_to_trim`` rows). 0 trains on every row.
    weight_decay : float, default=0.0
        L2 penalty on the weights (not the biases): ``weight_decay * W`` is
        added to each weight's gradient before the optimizer step (one
        parameter group, a cheaper step). Leave the optimizer's at 0.

    Attributes beyond NeuralNet's
    -----------------------------
    interrupted_ : bool
        Whether the last call to ``fit_loop`` was interrupted mid-epoch
        (KeyboardInterrupt), in which case the module and optimizer are back
        at the end of the last completed epoch.
    backprop_ : Plan or None
        The module's tensors as the written-out backward pass reads them,
        or None when training goes through autograd.
    """

    def __init__(
        self,
        module,
        *args,
        corrupt=None,
        penalty=None,
        seed=0,
        shuffle=True,
        written_out_gradients=True,
        weight_decay=0.0,
        unit_norm_decoder=False,
        trim_fraction=0.0,
        **kwargs,
    ):
        super().__init__(module, *args, **kwargs)
        self.corrupt = corrupt
        self.penalty = penalty
        self.seed = seed
        self.shuffle = shuffle
        self.written_out_gradients = written_out_gradients
        self.weight_decay = weight_decay
        self.unit_norm_decoder = unit_norm_decoder
        self.trim_fraction = trim_fraction

    # Attributes holding the module's own tensors, pickled together with the
    # module (skorch saves these in one torch.save, mapping devices).
    cuda_dependent_attributes_ = [*NeuralNet.cuda_dependent_attributes_, "backprop_"]

    @property
    def _default_callbacks(self):
        # skorch's minus the timer and table (run_single_epoch records losses).
        return [("check_finite", _CheckFinite())]

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's epoch, without a host sync or a history write per batch.

        Each batch's loss stays on the device, summed weighted by batch size
        (in float64 where the device has it); the epoch's mean is recorded
        once as ``{prefix}_loss``, as skorch's PassthroughScoring computes
        it from per-batch records. Callbacks still see every batch, and
        when some callback listens to batch events the history keeps
        skorch's per-batch records too (``{prefix}_loss`` and
        ``{prefix}_batch_size``), which such callbacks (skorch's
        ``LRScheduler(step_every="batch")``, for one) write to and read.
        """
        if iterator is None:
            return
        dtype = torch.float32 if self.device == "mps" else torch.float64
        total = torch.zeros((), dtype=dtype, device=self.device)
        n_rows = n_batches = 0
        listened = self.batch_records_
        for batch in iterator:
            if listened:
                self.history.new_batch()
            self._notify_batch("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            size = len(batch[0])
            if listened:
                self.history.record_batch(prefix + "_loss", step["loss"].item())
                self.history.record_batch(prefix + "_batch_size", size)
            total.add_(step["loss"].detach(), alpha=size)
            n_rows += size
            n_batches += 1
            self._notify_batch("on_batch_end", batch=batch, training=training, **step)
        self.history.record(prefix + "_batch_count", n_batches)
        self.history.record(prefix + "_loss", total.item() / n_rows)
        dead_fraction = getattr(self.module_, "dead_fraction", None)
        if training and dead_fraction is not None:
            # Units inactive over the whole epoch (a code layer that counts
            # its units' activity: TopK, BatchTopK).
            fraction = dead_fraction(n_rows)
            if fraction is not None:
                self.history.record("dead_fraction", fraction)

    # --------------------------------------------- completed-epoch checkpoints

    def checkpoint(self):
        """Copies of the module's state and _STATS, the optimizer's, the epoch."""
        m = self.module_
        return {
            "module": {k: v.detach().clone() for k, v in m.state_dict().items()},
            "statistics": copy.deepcopy({k: getattr(m, k, v) for k, v in _STATS}),
            "optimizer": copy.deepcopy(self.optimizer_.state_dict()),
            "epochs": len(self.history),
        }

    def restore(self, checkpoint):
        """Return to a checkpoint: weights, statistics, optimizer and history."""
        self.module_.load_state_dict(checkpoint["module"])
        vars(self.module_).update(checkpoint["statistics"])
        self.optimizer_.load_state_dict(checkpoint["optimizer"])
        del self.history[checkpoint["epochs"] :]

    def notify(self, method_name, **cb_kwargs):
        if method_name == "on_epoch_begin":
            # The state after the last completed epoch (finite: _CheckFinite
            # has seen its loss), restored if training is interrupted.
            self.last_epoch_ = self.checkpoint()
        try:
            super().notify(method_name, **cb_kwargs)
        except KeyboardInterrupt:
            # skorch's way for a callback to stop training at the end of an
            # epoch (EarlyStopping does it): the epoch is complete.
            self.stopped_by_callback_ = method_name == "on_epoch_end"
            raise

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop; an interruption mid-epoch rewinds to the last epoch.

        skorch ends training quietly on KeyboardInterrupt. From the user
        (Ctrl-C), not a callback at an epoch's end, the unfinished epoch is
        undone and ``interrupted_`` is set.
        """
        self.interrupted_ = False
        self.stopped_by_callback_ = False
        self.last_epoch_ = None
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            if not self.stopped_by_callback_:
                self.interrupted_ = True
                if self.last_epoch_ is not None:
                    self.restore(self.last_epoch_)
            raise
        finally:
            self.last_epoch_ = None

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.noise_generator = _stream_generator(
            self.seed, _NOISE_STREAM, len(self.history), self.device
        )

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.noise_generator = None

    def __setstate__(self, state):
        super().__setstate__(state)
        self.device = str(self.device)  # skorch may have set a torch.device

    def get_iterator(self, dataset, training=False):
        X = dataset.tensors[0]
        # The observed entries, when some are missing (AutoencoderImputer).
        observed = dataset.tensors[1] if len(dataset.tensors) > 1 else None
        generator = None
        if training and self.shuffle:
            generator = _stream_generator(
                self.seed, _SHUFFLE_STREAM, len(self.history), X.device
            )
        return SliceIterator(X, min(self.batch_size, len(X)), generator, observed)

    def _set_training(self, training=True):
        # skorch calls this on every batch; module.train() walks every
        # submodule, about 7% of a digits-sized step on a 2-core CPU.
        if self.module_.training is training and self.criterion_.training is training:
            return
        super()._set_training(training)

    def initialize_module(self):
        super().initialize_module()
        self.plan_backprop()
        return self

    def plan_backprop(self):
        """Set ``backprop_`` for the module as it is now (None: autograd)."""
        self.backprop_ = None
        if self.written_out_gradients:
            with contextlib.suppress(AttributeError, ValueError):
                self.backprop_ = Plan(self.module_)

    def initialize_callbacks(self):
        super().initialize_callbacks()
        # Per-batch events go only to those that handle them (skorch's
        # Callback and NeuralNet methods do nothing by default), so that a
        # step usually calls nothing: the net first, as skorch's notify does.
        handlers = [(NeuralNet, self)] + [(Callback, cb) for _, cb in self.callbacks_]
        self.batch_listeners_ = {
            event: [
                getattr(obj, event)
                for base, obj in handlers
                if getattr(type(obj), event) is not getattr(base, event)
            ]
            for event in _BATCH_EVENTS
        }
        # Whether a callback listens to batch events (and the batch history).
        self.batch_records_ = any(
            getattr(type(cb), event) is not getattr(Callback, event)
            for _, cb in self.callbacks_
            for event in _BATCH_EVENTS
        )
        return self

    def _notify_batch(self, event, **cb_kwargs):
        for method in self.batch_listeners_[event]:
            method(self, **cb_kwargs)

    def train_step(self, batch, **fit_params):
        """One optimization step: skorch's, without its closure machinery.

        Adam and SGD need no closure, so the step computes the gradients,
        tells the callbacks that listen to ``on_grad_computed``, and steps
        the optimizer, as skorch's ``train_step`` does for them.
        """
        # (Batches with missing entries, batch[1], take the autograd path.)
        written_out = self.backprop_ is not None and not fit_params and batch[1] is None
        if not written_out:
            # (The written-out pass overwrites every gradient.)
            self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        listeners = self.batch_listeners_["on_grad_computed"]
        if listeners:
            self._notify_batch(
                "on_grad_computed",
                named_parameters=TeeGenerator(self.get_all_learnable_params()),
                batch=batch,
                training=True,
            )
        if self.weight_decay and not (written_out and not listeners):
            for name, p in self.module_.named_parameters():
                if p.grad is not None and not name.endswith("bias"):
                    p.grad.add_(p, alpha=self.weight_decay)
        atoms = None
        if self.unit_norm_decoder:
            atoms = self.module_.decoder_input_layer.weight
            with torch.no_grad():
                remove_parallel_gradient_(atoms, atoms.grad)
        self._step_optimizer(None)
        if atoms is not None:
            with torch.no_grad():
                normalize_columns_(atoms)
        self.module_.steps_trained = getattr(self.module_, "steps_trained", 0) + 1
        return step

    def train_step_single(self, batch, **fit_params):
        """Set the gradients of one batch's loss; return the loss.

        The L2 term joins the weights' gradients after the callbacks that
        read them (``on_grad_computed``), as torch's optimizers add theirs
        inside ``step()``; with no such callback, the written-out pass adds
        it in the same product and ``train_step`` adds nothing.
        """
        x, observed = batch
        if self.trim_fraction:
            x = self._trimmed(x)
        self._set_training(True)
        x_in = x if self.corrupt is None else self.corrupt(x, self.noise_generator)
        if self.backprop_ is not None and not fit_params and observed is None:
            listeners = self.batch_listeners_["on_grad_computed"]
            sparse = getattr(self.backprop_, "sparse", None)  # older pickles
            written_out = backprop if sparse is None else sparse_backprop
            loss, y_pred = written_out(
                self.backprop_,
                self.module_,
                x_in,
                x,
                self.criterion_.loss,
                self.penalty,
                self.noise_generator,
                0.0 if listeners else self.weight_decay,
            )
            if sparse is not None and self.batch_listeners_["on_batch_end"]:
                y_pred = (y_pred[0].dense(), y_pred[1])
            return {"loss": loss, "y_pred": y_pred}
        if self.module_.code_dropout and not fit_params:
            # Code dropout draws from the net's noise stream.
            y_pred = self.module_(x_in, dropout_generator=self.noise_generator)
        else:
            y_pred = self.infer(x_in, **fit_params)
        loss = self.get_loss(y_pred, x, X=x_in, training=True, observed=observed)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def _trimmed(self, x):
        """The rows of ``x`` but the ``trim_fraction`` worst reconstructed
        (``rows_to_trim``: drawn from the noise stream)."""
        trim = data.rows_to_trim(self.trim_fraction, len(x), self.noise_generator)
        n_keep = len(x) - trim
        if n_keep >= len(x):
            return x
        self._set_training(False)
        with torch.no_grad():
            _, output = self.module_(x)
            target = x
            if self.criterion_.loss == "squared_error":
                target = self.module_.target(x)
            errors = self.criterion_(output, target)
        keep = errors.topk(max(n_keep, 1), largest=False).indices.sort().values
        return x[keep]

    def validation_step(self, batch, **fit_params):
        # The penalty may need gradients (a Jacobian), so no torch.no_grad.
        self._set_training(False)
        x, observed = batch
        y_pred = self.infer(x, **fit_params)
        loss = self.get_loss(y_pred, x, X=x, training=False, observed=observed)
        loss = loss.detach()
        return {"loss": loss, "y_pred": y_pred}

    def get_loss(self, y_pred, y_true, X=None, training=False, observed=None):
        codes, output = y_pred
        if self.criterion_.loss == "squared_error":
            y_true = self.module_.target(y_true)
        loss = self.criterion_(output, y_true, observed).mean()
        if self.penalty is not None:
            loss = loss + self.penalty(self.module_, X, codes, self.noise_generator)
        return loss
