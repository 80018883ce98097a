"""Training many autoencoder nets at once, as one batched model.

``fit_nets`` takes initialised ``AutoencoderNet`` instances of one
architecture (same layer sizes, activation, criterion, batch size and
optimizer class) and trains them together: their parameters are stacked
along a leading "model" axis M (weights of shape (M, out, in), applied with
``torch.baddbmm``), and one forward and backward pass per step serves every
net. Each net ends as its own ``partial_fit`` under ``PlateauStopping``
would leave it, to float32 rounding: the same initial weights (its own
module), the same permutation of its rows in every epoch and the same noise
(drawn from its own seeded generators, as ``AutoencoderNet`` draws them),
the same activations and penalties (``skae._nn``: the penalties' stacked
forms), the same optimizer (its torch optimizer's update function, on the
rows of the stacked parameters) and stopping rule (its ``PlateauStopping``; both in
``members.py``), and the same epoch loss (batch losses averaged with
batch-size weights, as skorch's ``PassthroughScoring`` does). A net that stops or
whose loss is no longer finite leaves the stack at the end of that epoch;
the others go on.

Nets may train on row sets of different sizes (cross-validation folds
differ by a row): at each step the nets are grouped by the size of their
batch, each group is one batched pass, and a net without a batch at that
step (it has fewer batches per epoch) is left untouched by the update.

This layer knows torch only.
"""

import numpy as np
import torch

from .._nn.sparse_codes import Workspace, update_since_fired
from .data import _NOISE_STREAM, _SHUFFLE_STREAM, _stream_generator
from .members import _Optimizer, _Scores, _Stopping
from .stacked import _layers, _Layout, _plan, _Stack, group_batch
from .stacked_sparse import StackedTopK, sparse_losses, supports_sparse_step

__all__ = ["fit_nets"]


def _padded(rows, device):
    """Row index tensors of different lengths as one (n_nets, max_len) tensor."""
    width = max(len(r) for r in rows)
    out = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def fit_nets(
    nets,
    X,
    train_rows,
    valid_rows=None,
    *,
    penalty=None,
    epochs,
    patience,
    threshold,
    max_reductions,
    load_best,
):
    """Train initialised ``AutoencoderNet`` instances of one architecture at once.

    Each net is left as ``net.partial_fit(X[rows], epochs=epochs)`` with
    ``PlateauStopping(patience, threshold, threshold_mode="abs",
    max_reductions, load_best)`` monitoring ``valid_loss`` (when
    ``valid_rows`` is given) or ``train_loss`` would leave it: weights,
    optimizer state, learning rate and history.

    Parameters
    ----------
    nets : list of AutoencoderNet
        Initialised, untrained nets sharing an architecture, criterion,
        batch size, optimizer class and ``shuffle``; their modules are on
        X's device.
    X : Tensor of shape (n_samples, n_features)
        float32 rows every net draws its training and validation rows from.
    train_rows : list of LongTensor
        Rows of X each net trains on, in the order its own data would hold
        them.
    valid_rows : list of LongTensor or None
        Rows of X each net is validated on.
    penalty : StackedPenalty or None
        The nets' penalty hooks stacked; None when they have none.
    epochs, patience, threshold, max_reductions, load_best
        The stopping rule, as ``PlateauStopping`` takes it.

    Returns
    -------
    results : list of dict
        Per net: ``"stopped"`` (the stopping rule ended training) and
        ``"error"`` (None, or why training failed: a non-finite loss).
    """
    return _Trainer(nets, X, train_rows, valid_rows, penalty).run(
        epochs,
        _Stopping(
            nets,
            "train_loss" if valid_rows is None else "valid_loss",
            patience,
            threshold,
            max_reductions,
        ),
        load_best,
    )


class _Trainer:
    """The training loop of ``fit_nets``."""

    def __init__(self, nets, X, train_rows, valid_rows, penalty):
        first = nets[0]
        self.nets = nets
        self.X = X
        self.device = X.device
        self.layout = _Layout(first.module_)
        self.encoder = _layers(first.module_, "encoder")
        self.decoder = _layers(first.module_, "decoder")
        self.activation = first.module_.activation
        # The code layer's own activation, TopK with each net's k (the
        # batched search batches no other).
        self.code = None
        if first.module_.code_sparsity is not None:
            if any(net.module_.code_sparsity[0] != "topk" for net in nets):
                raise ValueError("batched training runs TopK code layers only")
            ks = [net.module_.code_sparsity[1] for net in nets]
            self.code = StackedTopK(torch.as_tensor(ks, device=X.device))
        # Each net's rows since each code unit was last active (TopK's
        # samples_since_fired), or None.
        self.since_fired = None
        if self.code is not None:
            self.since_fired = torch.stack(
                [net.module_.sparse_code.samples_since_fired for net in nets]
            ).to(X.device)
        self.criterion = first.criterion_
        # Whether training steps are written out (stacked_sparse), and
        # the buffers they reuse.
        self.sparse_step = supports_sparse_step(
            self.encoder, self.decoder, self.code, nets[0].corrupt, penalty
        )
        self.workspace = Workspace()
        self.batch_sizes = np.array([net.batch_size for net in nets])
        self.stack = _Stack(nets, self.layout, train_rows, valid_rows, self.device)
        self.optimizer = _Optimizer(nets, self.layout, self.stack)
        self.penalty = penalty
        # Positions in `nets` of the stack's rows.
        self.alive = list(range(len(nets)))
        self.start = [len(net.history) for net in nets]
        self.shuffle_generators = [
            _stream_generator(net.seed, _SHUFFLE_STREAM, e, self.device)
            if net.shuffle
            else None
            for net, e in zip(nets, self.start)
        ]
        self.noise_generators = [
            _stream_generator(net.seed, _NOISE_STREAM, e, net.device)
            for net, e in zip(nets, self.start)
        ]
        self.corrupts = [net.corrupt for net in nets]
        # Each net's optimizer steps (its module's steps_trained).
        self.steps_trained = np.array(
            [getattr(net.module_, "steps_trained", 0) for net in nets]
        )
        self.histories = [[] for _ in nets]
        self._plan()

    def _plan(self):
        """Step plans of the nets still training, and their fixed row indices."""
        stack = self.stack
        self.train_sizes = np.array([len(r) for r in stack.train_rows])
        sizes = self.batch_sizes[self.alive]
        batch_sizes = np.minimum(sizes, self.train_sizes)
        self.train_batches = -(-self.train_sizes // batch_sizes)
        self.train_plan = _plan(self.train_sizes, batch_sizes, self.device)
        self.valid_plan = None
        if stack.valid_rows is not None:
            self.valid_sizes = np.array([len(r) for r in stack.valid_rows])
            batch_sizes = np.minimum(sizes, self.valid_sizes)
            self.valid_batches = -(-self.valid_sizes // batch_sizes)
            self.valid_plan = _plan(self.valid_sizes, batch_sizes, self.device)
            self.valid_index = _padded(stack.valid_rows, self.device)

    def _losses(self, module, index, groups, training):
        """Per-net losses of one step (0 where a net has no batch)."""
        X, device, alive = self.X, self.device, self.alive
        total = torch.zeros(len(alive), device=device)
        for members, starts, size in groups:
            rows, part = group_batch(module, index, (members, starts, size))
            x = X.index_select(0, rows.reshape(-1)).view(*rows.shape, -1)
            # The nets of this group, by position in `nets`.
            positions = alive
            if members is not None:
                positions = [alive[p] for p in members.tolist()]
            x_in = x
            if training and self.corrupts[0] is not None:
                x_in = torch.stack(
                    [
                        self.corrupts[p](x[k], self.noise_generators[p])
                        for k, p in enumerate(positions)
                    ]
                )
            codes, output = part.forward(x_in)
            part.training = training
            if self.since_fired is not None:
                part.code.samples_since_fired = self._count_activity(
                    codes, members, training
                )
            target = x
            if self.criterion.loss == "squared_error":
                # The decoders predict the target in their own units.
                target = part.target(x)
            loss = self.criterion(output, target).mean(dim=-1)
            if self.penalty is not None:
                part.steps_trained = torch.as_tensor(
                    self.steps_trained[positions], dtype=torch.float32, device=device
                )
                generators = None
                if self.penalty.random:
                    generators = [self.noise_generators[p] for p in positions]
                loss = loss + self.penalty(part, x_in, codes, generators, members)
            total = (
                total + loss if members is None else total.index_add(0, members, loss)
            )
        return total

    def _count_activity(self, codes, members, training):
        """Count a training batch into the nets' ``since_fired`` (as TopK
        counts its own); the rows of ``members`` (all when None)."""
        counts = self.since_fired
        if members is not None:
            counts = counts.index_select(0, members)
        if training:
            with torch.no_grad():
                update_since_fired(counts, codes)
                if members is not None:
                    self.since_fired.index_copy_(0, members, counts)
        return counts

    def _epoch(self, module, leaves):
        """Train one epoch; returns the per-net mean training loss."""
        stack, device = self.stack, self.device
        perms = []
        for p, rows in zip(self.alive, stack.train_rows):
            generator = self.shuffle_generators[p]
            if generator is None:
                perms.append(rows)
            else:
                perm = torch.randperm(len(rows), generator=generator, device=device)
                perms.append(rows[perm])
        index = _padded(perms, device)
        steps, weights = self.train_plan
        step_losses = []
        for groups, idle in steps:
            if self.sparse_step:
                loss, grads = sparse_losses(self, module, index, groups)
            else:
                loss = self._losses(module, index, groups, training=True)
                grads = torch.autograd.grad(loss.sum(), leaves)
            with torch.no_grad():
                n = len(self.alive)
                torch.cat([g.reshape(n, -1) for g in grads], 1, out=stack.grad)
                self.optimizer.step(stack, idle)
            stepped = np.setdiff1d(np.arange(len(self.alive)), idle)
            self.steps_trained[np.asarray(self.alive)[stepped]] += 1
            step_losses.append(loss.detach())
        return _epoch_mean(step_losses, weights, self.train_sizes)

    def _validate(self, module):
        steps, weights = self.valid_plan
        # A penalty that differentiates the encoder needs gradients here too.
        needs_grad = self.penalty is not None and self.penalty.random
        step_losses = []
        with torch.set_grad_enabled(needs_grad):
            for groups, _ in steps:
                if self.sparse_step:
                    loss, _ = sparse_losses(
                        self, module, self.valid_index, groups, training=False
                    )
                else:
                    loss = self._losses(module, self.valid_index, groups, False)
                step_losses.append(loss.detach())
        return _epoch_mean(step_losses, weights, self.valid_sizes)

    def run(self, epochs, stopping, load_best):
        nets, stack = self.nets, self.stack
        train_scores, valid_scores = _Scores(len(nets)), _Scores(len(nets))
        if load_best:
            stack.best = stack.params.clone()
        results = [None] * len(nets)
        for epoch in range(1, epochs + 1):
            module, leaves = stack.module(
                self.activation, self.encoder, self.decoder, self.code
            )
            train_loss = self._epoch(module, leaves)
            valid_loss = None if self.valid_plan is None else self._validate(module)
            # skorch's callbacks at the end of the epoch, in their order:
            # the loss records, the finiteness check, the stopping rule.
            self._record(epoch, train_loss, train_scores, valid_loss, valid_scores)
            finite = np.isfinite(train_loss)
            rows = [self.histories[p][-1] for p in self.alive]
            improved, stopped = stopping.update(rows, epoch, self.optimizer.lr)
            improved &= finite
            if load_best and improved.any():
                better = torch.as_tensor(np.flatnonzero(improved), device=self.device)
                stack.best.index_copy_(0, better, stack.params.index_select(0, better))
            stopped &= finite
            done = ~finite | stopped | (epoch == epochs)
            best_epoch = stopping.best_epoch
            for i in np.flatnonzero(done):
                error = None
                if not finite[i]:
                    error = (
                        f"the training loss became {float(train_loss[i])} at "
                        f"epoch {self.start[self.alive[i]] + epoch}"
                    )
                use_best = load_best and 0 < best_epoch[i] != epoch
                results[self.alive[i]] = self._retire(
                    i, bool(stopped[i]), error, use_best
                )
                if best_epoch[i] > 0:  # its stopping rule's, as in its history
                    start = self.start[self.alive[i]]
                    results[self.alive[i]]["best_epoch"] = int(start + best_epoch[i])
            if done.all():
                break
            if done.any():
                keep = np.flatnonzero(~done)
                for part in (
                    stack,
                    stopping,
                    train_scores,
                    valid_scores,
                ):
                    part.select(keep)
                self.optimizer.select(keep, stack)
                index = torch.as_tensor(keep, device=self.device)
                if self.penalty is not None:
                    self.penalty = self.penalty.select(index)
                if self.code is not None:
                    self.code = self.code.select(index)
                    self.since_fired = self.since_fired.index_select(0, index)
                self.alive = [self.alive[i] for i in keep]
                self._plan()
        return results

    def _record(self, epoch, train_loss, train_scores, valid_loss, valid_scores):
        """Append each net's history row (skorch's keys)."""
        train_best = train_scores.update(train_loss)
        if valid_loss is not None:
            valid_best = valid_scores.update(valid_loss)
        for i, p in enumerate(self.alive):
            row = {
                "epoch": self.start[p] + epoch,
                "train_batch_count": int(self.train_batches[i]),
                "train_loss": float(train_loss[i]),
                "train_loss_best": bool(train_best[i]),
            }
            if self.since_fired is not None:
                inactive = self.since_fired[i] >= int(self.train_sizes[i])
                row["dead_fraction"] = float(inactive.float().mean())
            if valid_loss is not None:
                row["valid_batch_count"] = int(self.valid_batches[i])
                row["valid_loss"] = float(valid_loss[i])
                row["valid_loss_best"] = bool(valid_best[i])
            self.histories[p].append(row)

    def _retire(self, i, stopped, error, use_best):
        """Write the net at stack row i back into its net; its result."""
        net = self.nets[self.alive[i]]
        if error is None:
            row = self.stack.best[i] if use_best else self.stack.params[i]
            self.layout.load_row(net.module_, row)
            self.optimizer.state_of(net, self.layout, i)
            net.module_.steps_trained = int(self.steps_trained[self.alive[i]])
            if self.since_fired is not None:
                counts = net.module_.sparse_code.samples_since_fired
                counts.copy_(self.since_fired[i])
            for values in self.histories[self.alive[i]]:
                net.history.new_epoch()
                for key, value in values.items():
                    net.history.record(key, value)
        net.interrupted_ = False
        net.stopped_by_callback_ = stopped
        return {"stopped": stopped, "error": error, "best_epoch": None}


def _epoch_mean(step_losses, weights, sizes):
    """Batch losses averaged with batch-size weights, in float64 as skorch does."""
    losses = torch.stack(step_losses).cpu().numpy().astype(np.float64)
    return (losses * weights).sum(axis=0) / sizes
