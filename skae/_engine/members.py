"""The per-net state of a batched model: optimizer, stopping rule, scores.

The nets of a batched model keep their own training state, in the single
net's own code: ``_Optimizer`` is the nets' torch optimizer over one
parameter row per net, ``_Stopping`` one ``PlateauStopping`` (the callback
``fit`` trains with) per net, reading the net's epoch rows, and ``_Scores``
the best epoch loss so far, as skorch's ``PassthroughScoring`` keeps it.
"""

from types import SimpleNamespace

import numpy as np
import torch
from skorch.history import History

from .callbacks import PlateauStopping


class _Optimizer:
    """The nets' own optimizer, stepping one parameter row per net.

    An instance of the nets' optimizer class (``torch.optim.Adam`` or
    ``SGD``, with their settings: betas, eps, momentum, Nesterov, fused or
    not) whose parameters are the rows of the stacked parameters, one per
    net, grouped by learning rate: torch keeps each row's state and step
    count, and steps every net with its own learning rate. Only the weight
    decay is added here, to the weights' gradients, as ``AutoencoderNet``
    adds it before its optimizer's step.
    """

    def __init__(self, nets, layout, stack):
        optimizer = nets[0].optimizer_
        self.cls = type(optimizer)
        group = optimizer.param_groups[0]
        self.settings = {
            key: value
            for key, value in group.items()
            if key in optimizer.defaults and key not in ("params", "lr")
        }
        self.device = stack.device
        self.lr = np.array([float(net.lr) for net in nets])
        # The weights' columns and each net's decay, as a (nets, 1) column on
        # the device (made once, not per step); empty without any decay.
        self.decay = {}
        values = [net.weight_decay for net in nets]
        if any(values):
            lo, hi = layout.weight_range
            self.decay["weights"] = (lo, hi, self._column(values))
        self.rows = list(stack.params.unbind(0))
        self.state = {}
        self._grouped = None

    def _optimizer(self):
        """The torch optimizer over the rows, regrouped when the learning
        rates change (the state is the rows', whatever their group)."""
        lrs = tuple(self.lr.tolist())
        if self._grouped is None or self._grouped[0] != lrs:
            groups = {}
            for row, lr in zip(self.rows, lrs):
                groups.setdefault(lr, []).append(row)
            optimizer = self.cls(
                [{"params": rows, "lr": lr} for lr, rows in groups.items()],
                **self.settings,
            )
            optimizer.state.update(self.state)
            self.state = optimizer.state
            self._grouped = (lrs, optimizer)
        return self._grouped[1]

    def select(self, keep, stack):
        self.lr = self.lr[keep]
        rows = list(stack.params.unbind(0))
        self.state = {
            rows[k]: self.state[self.rows[i]]
            for k, i in enumerate(keep)
            if self.rows[i] in self.state
        }
        self.rows = rows
        self._grouped = None
        index = torch.as_tensor(keep, device=self.device)
        self.decay = {
            g: (lo, hi, v.index_select(0, index))
            for g, (lo, hi, v) in self.decay.items()
        }

    def _column(self, values):
        return torch.as_tensor(
            np.asarray(values, dtype=np.float32), device=self.device
        ).unsqueeze(1)

    def step(self, stack, idle):
        """Update every net but those at positions ``idle``."""
        p, g = stack.params, stack.grad
        for lo, hi, decay in self.decay.values():
            g[:, lo:hi].addcmul_(p[:, lo:hi], decay)
        grads = g.unbind(0)
        skip = set(np.asarray(idle).tolist())
        for i, row in enumerate(self.rows):
            # torch's optimizers leave a parameter without a gradient as it
            # is, its step count included.
            row.grad = None if i in skip else grads[i]
        self._optimizer().step()

    def state_of(self, net, layout, i):
        """Set net's optimizer state (and learning rate) from row i."""
        optimizer = net.optimizer_
        for group in optimizer.param_groups:
            group["lr"] = float(self.lr[i])
        state = self.state.get(self.rows[i], {})
        params = dict(net.module_.named_parameters())
        for name, sl in zip(layout.names, layout.slices):
            p = params[name]
            optimizer.state[p] = {
                key: value.clone() if key == "step" else value[sl].view_as(p).clone()
                for key, value in state.items()
            }


class _StandIn:
    """What ``PlateauStopping`` reads of a net: its history, its learning
    rate and its optimizer's learning rate (a parameter group)."""

    verbose = 0

    def __init__(self, lr):
        self.lr = lr
        self.history = History()
        self.optimizer_ = SimpleNamespace(param_groups=[{"lr": lr}])


class _Stopping:
    """The single net's stopping rule, ``PlateauStopping``, one per net.

    Each net's callback reads its epoch rows (skorch's history keys) from a
    stand-in net and lowers the stand-in's learning rate at a plateau, as
    it does for one net; ``update`` hands the new rates to the optimizer.
    """

    def __init__(self, nets, monitor, patience, threshold, max_reductions):
        threshold = np.broadcast_to(threshold, (len(nets),))
        self.start = np.array([len(net.history) for net in nets])
        self.members = []
        for net, t in zip(nets, threshold):
            callback = PlateauStopping(
                monitor=monitor,
                patience=patience,
                threshold=float(t),
                threshold_mode="abs",
                max_reductions=max_reductions,
                load_best=False,  # the stack keeps the best rows
                sink=lambda *args: None,
            )
            stand_in = _StandIn(net.lr)
            callback.on_train_begin(stand_in)
            self.members.append((callback, stand_in))

    def select(self, keep):
        self.members = [self.members[i] for i in keep]
        self.start = self.start[keep]

    @property
    def best_epoch(self):
        """Each net's best epoch of this call (0: none yet)."""
        best = np.array([callback.best_epoch_ for callback, _ in self.members])
        return np.where(best > 0, best - self.start, 0)

    def update(self, rows, epoch, lr):
        """Record one epoch's history rows; returns (improved, stopped).

        Sets ``lr`` (in place) to each net's learning rate after the epoch.
        """
        improved = np.zeros(len(rows), dtype=bool)
        stopped = np.zeros(len(rows), dtype=bool)
        for i, (row, (callback, stand_in)) in enumerate(zip(rows, self.members)):
            stand_in.history.new_epoch()
            for key, value in row.items():
                stand_in.history.record(key, value)
            try:
                callback.on_epoch_end(stand_in)
            except KeyboardInterrupt:
                stopped[i] = True
            improved[i] = callback.best_epoch_ == row["epoch"]
            lr[i] = stand_in.optimizer_.param_groups[0]["lr"]
        return improved, stopped


class _Scores:
    """skorch's ``PassthroughScoring``: the best epoch loss so far, per net."""

    def __init__(self, n):
        self.best = np.full(n, np.inf)

    def select(self, keep):
        self.best = self.best[keep]

    def update(self, losses):
        is_best = losses < self.best
        self.best = np.where(is_best, losses, self.best)
        return is_best
