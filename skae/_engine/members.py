"""The per-net state of a batched model: optimizer, stopping rule, scores.

The nets of a batched model keep their own training state, in the single
net's own code: ``_Optimizer`` steps the parameter rows with the update
function of the nets' torch optimizer (``torch.optim.adam.adam``,
``torch.optim.sgd.sgd``), ``_Stopping`` is one ``PlateauStopping`` (the
callback ``fit`` trains with) per net, reading the net's epoch rows, and
``_Scores`` the best epoch loss so far, as skorch's ``PassthroughScoring``
keeps it.
"""

from types import SimpleNamespace

import numpy as np
import torch
from torch.optim.adam import adam as adam_update
from torch.optim.sgd import sgd as sgd_update

from .callbacks import PlateauStopping


class _Optimizer:
    """The nets' own optimizer update, over one parameter row per net.

    Each step calls the function that the nets' optimizer steps with
    (``torch.optim.adam.adam`` for ``torch.optim.Adam``,
    ``torch.optim.sgd.sgd`` for ``SGD``; with its settings: betas, eps,
    momentum, Nesterov, fused or not) on the rows of the stacked
    parameters, once per learning rate and step count among the nets (the
    update is elementwise: rows of several nets are one tensor to it):
    every net keeps its own moments and step count and is stepped with its
    own learning rate. The state lives in (nets, params) buffers, one row
    per net. Only the weight decay is added here, to the weights'
    gradients, as ``AutoencoderNet`` adds it before its optimizer's step.
    """

    def __init__(self, nets, layout, stack):
        optimizer = nets[0].optimizer_
        group = optimizer.param_groups[0]
        self.adam = isinstance(optimizer, torch.optim.Adam)
        if not (self.adam or isinstance(optimizer, torch.optim.SGD)) or any(
            group.get(key) for key in ("amsgrad", "maximize", "dampening")
        ):
            raise ValueError(
                "Batched training steps Adam without amsgrad or SGD without "
                "dampening, never maximizing."
            )
        self.group = dict(group)
        self.device = stack.device
        self.lr = np.array([float(net.lr) for net in nets])
        # The weights' columns and each net's decay, as a (nets, 1) column on
        # the device (made once, not per step); empty without any decay.
        self.decay = {}
        values = [net.weight_decay for net in nets]
        if any(values):
            lo, hi = layout.weight_range
            self.decay["weights"] = (lo, hi, self._column(values))
        names = ("exp_avg", "exp_avg_sq") if self.adam else ("momentum_buffer",)
        self.buffers = {name: torch.zeros_like(stack.params) for name in names}
        # Adam's step counts, and where its kernels keep them (on the device
        # when fused or capturable, on the CPU otherwise).
        self.counts = np.zeros(len(nets), dtype=np.int64)
        on_device = group.get("fused") or group.get("capturable")
        self.step_device = self.device if on_device else torch.device("cpu")

    def select(self, keep, stack):
        self.lr = self.lr[keep]
        index = torch.as_tensor(keep, device=self.device)
        self.buffers = {k: v.index_select(0, index) for k, v in self.buffers.items()}
        self.counts = self.counts[keep]
        self.decay = {
            g: (lo, hi, v.index_select(0, index))
            for g, (lo, hi, v) in self.decay.items()
        }

    def _column(self, values):
        return torch.as_tensor(
            np.asarray(values, dtype=np.float32), device=self.device
        ).unsqueeze(1)

    def step(self, stack, idle):
        """Update every net but those at positions ``idle`` (their state,
        step count included, stays as it is)."""
        p, g = stack.params, stack.grad
        for lo, hi, decay in self.decay.values():
            g[:, lo:hi].addcmul_(p[:, lo:hi], decay)
        active = np.ones(len(self.lr), dtype=bool)
        active[np.asarray(idle, dtype=np.int64)] = False
        # Nets with the same learning rate and step count are one tensor of
        # rows for the update (elementwise, so the same arithmetic).
        groups = {}
        for i in np.flatnonzero(active):
            key = (self.lr[i], self.counts[i] if self.adam else 0)
            groups.setdefault(key, []).append(i)
        with torch.no_grad():
            for (lr, count), members in groups.items():
                self._update(p, g, np.asarray(members), float(lr), int(count))
                self.counts[members] += 1

    def _update(self, p, g, members, lr, count):
        first, last = members[0], members[-1] + 1
        if last - first == len(members):  # contiguous rows: views
            rows = slice(first, last)
            params, grads = p[rows], g[rows]
            buffers = {k: v[rows] for k, v in self.buffers.items()}
            index = None
        else:
            index = torch.as_tensor(members, device=self.device)
            params, grads = p.index_select(0, index), g.index_select(0, index)
            buffers = {k: v.index_select(0, index) for k, v in self.buffers.items()}
        group = self.group
        kernel = dict(foreach=group.get("foreach"), fused=group.get("fused"))
        if self.adam:
            beta1, beta2 = group["betas"]
            step = torch.tensor(
                float(count), dtype=torch.float32, device=self.step_device
            )
            adam_update(
                [params],
                [grads],
                [buffers["exp_avg"]],
                [buffers["exp_avg_sq"]],
                [],
                [step],
                capturable=bool(group.get("capturable")),
                **kernel,
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=lr,
                weight_decay=0.0,
                eps=group["eps"],
                maximize=False,
            )
        else:
            # Buffers start at zero: with no dampening, the first step
            # gives the gradient, as torch's first buffer is.
            sgd_update(
                [params],
                [grads],
                [buffers["momentum_buffer"]],
                **kernel,
                weight_decay=0.0,
                momentum=group["momentum"],
                lr=lr,
                dampening=0.0,
                nesterov=group["nesterov"],
                maximize=False,
            )
        if index is not None:
            p.index_copy_(0, index, params)
            for k, v in self.buffers.items():
                v.index_copy_(0, index, buffers[k])

    def state_of(self, net, layout, i):
        """Set net's optimizer state (and learning rate) from row i."""
        optimizer = net.optimizer_
        for group in optimizer.param_groups:
            group["lr"] = float(self.lr[i])
        params = dict(net.module_.named_parameters())
        for name, sl in zip(layout.names, layout.slices):
            p = params[name]
            state = {k: v[i, sl].view_as(p).clone() for k, v in self.buffers.items()}
            if self.adam:
                state["step"] = torch.tensor(
                    float(self.counts[i]), dtype=torch.float32, device=self.step_device
                )
            optimizer.state[p] = state


class _LastRow:
    """The part of skorch's ``History`` that ``PlateauStopping`` reads:
    ``history[-1, key]``, the last epoch's values."""

    def __init__(self):
        self.row = None

    def __getitem__(self, key):
        epoch, name = key
        if epoch != -1:
            raise IndexError("only the last epoch is kept")
        return self.row[name]


class _StandIn:
    """What ``PlateauStopping`` reads of a net: its history, its learning
    rate and its optimizer's learning rate (a parameter group)."""

    verbose = 0

    def __init__(self, lr):
        self.lr = lr
        self.history = _LastRow()
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
            stand_in.history.row = row
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
