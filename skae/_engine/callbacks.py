"""The callbacks the engine trains with: finiteness, stopping, progress."""

import math
from copy import deepcopy

import numpy as np
from skorch.callbacks import Callback, EarlyStopping
from tqdm.auto import tqdm

__all__ = ["PlateauStopping", "ProgressBar"]


class _CheckFinite(Callback):
    """Stop training as soon as an epoch's loss is not finite."""

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1, "train_loss"]
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became {loss} at epoch {len(net.history)}"
            )


class PlateauStopping(EarlyStopping):
    """skorch's EarlyStopping, lowering the learning rate at a plateau first.

    Each time the monitored loss has not improved by ``threshold`` for
    ``patience`` epochs, the learning rate of every parameter group is
    multiplied by ``factor``, up to ``max_reductions`` times; the next
    plateau stops training. Every call to ``fit`` starts again from the
    net's ``lr``.

    Attributes
    ----------
    reductions_ : int
        Learning-rate reductions made in the current call.
    stopped_ : bool
        Whether this callback ended training (rather than ``max_epochs``).
    """

    def __init__(self, *args, max_reductions=0, factor=0.1, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_reductions = max_reductions
        self.factor = factor

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        self.reductions_ = 0
        self.stopped_ = False
        self.best_score_ = np.inf
        for group in net.optimizer_.param_groups:
            group["lr"] = net.lr

    def on_epoch_end(self, net, **kwargs):
        score, epoch = net.history[-1, self.monitor], net.history[-1, "epoch"]
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            if self.reductions_ < self.max_reductions:
                self.reductions_ += 1
                self.misses_ = 0
                for group in net.optimizer_.param_groups:
                    group["lr"] *= self.factor
                return
            self.stopped_ = True
            raise
        finally:
            self._keep_if_best(net, score, epoch)

    def _keep_if_best(self, net, score, epoch):
        """The best epoch is the lowest loss, however little lower, as in
        scikit-learn's MLP: skorch's is the last that beat the best by
        ``threshold``, which only the patience counts by."""
        if not score < self.best_score_:
            return
        self.best_score_ = score
        if self.best_epoch_ != epoch:  # skorch's rule did not keep it
            self.best_epoch_ = epoch
            if self.load_best:
                self.best_model_weights_ = deepcopy(net.module_.state_dict())


class ProgressBar(Callback):
    """A tqdm bar over epochs showing the current training loss."""

    def __init__(self, total=None, desc=None):
        self.total = total
        self.desc = desc

    def on_train_begin(self, net, **kwargs):
        self.bar_ = tqdm(total=self.total, desc=self.desc, unit="epoch")

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        postfix = {"loss": f"{row['train_loss']:.4g}"}
        if "valid_loss" in row:
            postfix["valid_loss"] = f"{row['valid_loss']:.4g}"
        self.bar_.set_postfix(postfix, refresh=False)
        self.bar_.update()

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
        self.bar_ = None
