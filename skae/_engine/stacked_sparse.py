"""The batched training step of one-layer TopK autoencoders, written out.

The stacked form of ``_nn.sparse_backprop``: nets of one shape, stacked on
a leading model axis, each with its own k. Only the pre-activations are
computed densely (one ``baddbmm``); each net keeps its rows' k largest
(``top_k_mask``), and every product that reads the codes runs on the
kept entries of all nets at once, with the nets' decoder columns and
encoder rows laid end to end (``n_nets * n_units`` of them): the decoder
is one ``embedding_bag``, the weight gradients ``embedding_bag``s over the
entries grouped by unit, the codes' gradient a dot product per kept
entry. No autograd graph is made.

A penalty joins through its ``stacked_gradient`` (``Penalty``): given the
stacked module, the batch, the kept entries and a :class:`StackedPass`,
it returns each net's penalty and its gradients by parameter. The step's
gradients agree with autograd's through ``_StackedModule.forward``
(``tests/test_sparse_backprop.py``).
"""

from functools import partial

import torch
import torch.nn.functional as F

from .._nn.sparse_backprop import SparseCodes, flat_entries
from .._nn.sparse_codes import top_k_mask, update_since_fired_entries
from .stacked import group_batch

__all__ = [
    "StackedPass",
    "StackedTopK",
    "sparse_losses",
    "sparse_step",
    "supports_sparse_step",
]


class StackedTopK:
    """``TopK`` over a leading model axis, each model with its own k.

    Each model keeps the ReLU of its own k largest pre-activations of each
    row (``top_k_mask``): the units ``TopK(k)`` keeps.
    """

    def __init__(self, ks):
        self.ks = ks  # LongTensor (M,)
        # Set by the trainer for the penalty that reads them (AuxK, as on
        # TopK): each model's rows since each unit was last active.
        self.samples_since_fired = None

    def select(self, index):
        return StackedTopK(self.ks.index_select(0, index))

    def __call__(self, a):
        ks = self.ks.clamp(max=a.shape[-1]).view(-1, 1, 1)
        mask = top_k_mask(a, ks)
        if torch.is_grad_enabled():
            self.pre_activation = a
        return torch.where(mask, a, 0.0).relu()


class StackedPass:
    """What a penalty's stacked gradient reads of the step.

    Attributes
    ----------
    inputs : Tensor of shape (n_nets, n_rows, n_features)
        The code layer's input (centred and scaled).
    pre_activation : Tensor of shape (n_nets, n_rows, n_units)
    output : Tensor of shape (n_nets, n_rows, n_features)
        The decoders' output.
    target : Tensor of shape (n_nets, n_rows, n_features)
        The decoders' target (in their units for the squared error).
    since_fired : Tensor of shape (n_nets, n_units)
        Each net's rows since each unit was last active, this batch counted.
    workspace : Workspace or None
        The step's buffers (a penalty may ask for its own, by name).
    """

    def __init__(self, inputs, pre_activation, output, target, since_fired, workspace):
        self.inputs = inputs
        self.pre_activation = pre_activation
        self.output = output
        self.target = target
        self.since_fired = since_fired
        self.workspace = workspace


def supports_sparse_step(encoder, decoder, code, corrupt, penalty):
    """Whether :func:`sparse_step` trains these nets: one encoder and one
    untied decoder layer, a TopK code layer, no corruption, and no penalty
    or one with a stacked written-out gradient."""
    return (
        code is not None
        and len(encoder) == 1
        and len(decoder) == 1
        and not decoder[0][2]
        and corrupt is None
        and (penalty is None or penalty.gradient is not None)
    )


def sparse_losses(trainer, module, index, groups, training=True):
    """The batched trainer's (``batched._Trainer``) step by
    :func:`sparse_step`: per-net losses and (training) one gradient per
    parameter in the layout's order, zero for the nets without a batch."""
    X, device, alive = trainer.X, trainer.device, trainer.alive
    total = torch.zeros(len(alive), device=device)
    names = dict(zip(trainer.layout.names, range(len(trainer.layout.names))))
    grads = [None] * len(names)
    for members, starts, size in groups:
        rows, part = group_batch(module, index, (members, starts, size))
        buffer = trainer.workspace.tensor
        shape = (*rows.shape, X.shape[1])
        flat = (rows.numel(), X.shape[1])  # index_select's own shape
        x = torch.index_select(
            X, 0, rows.reshape(-1), out=buffer("x", flat, X.dtype, device)
        ).view(shape)
        target = x
        if trainer.criterion.loss == "squared_error":
            target = part.target(x, out=buffer("target", shape, X.dtype, device))
        counts = trainer.since_fired
        if members is not None:
            counts = counts.index_select(0, members)
        penalty = None
        if trainer.penalty is not None:
            penalty = partial(trainer.penalty.written_out, index=members)
        loss, by_tensor = sparse_step(
            part,
            x,
            target,
            trainer.criterion.loss,
            counts,
            penalty,
            trainer.workspace,
            training,
        )
        total = total + loss if members is None else total.index_add(0, members, loss)
        if not training:
            continue
        if members is not None:
            trainer.since_fired.index_copy_(0, members, counts)
        (w_enc, b_enc), (w_dec, b_dec, _) = part.encoder[0], part.decoder[0]
        (w_name, b_name, _), (dw_name, db_name, _) = (
            trainer.encoder[0],
            trainer.decoder[0],
        )
        for name, tensor in (
            (w_name, w_enc),
            (b_name, b_enc),
            (dw_name, w_dec),
            (db_name, b_dec),
        ):
            g, i = by_tensor[tensor], names[name]
            if members is None:
                grads[i] = g if grads[i] is None else grads[i] + g
            else:
                if grads[i] is None:
                    grads[i] = g.new_zeros((len(alive), *g.shape[1:]))
                grads[i] = grads[i].index_add(0, members, g)
    return total, grads


def sparse_step(
    part, x_in, target, loss, since_fired, penalty=None, workspace=None, training=True
):
    """One batch of the nets of ``part`` (a ``_StackedModule``): each net's
    loss and the gradients of its sum.

    Parameters
    ----------
    part : _StackedModule
        One encoder layer, one untied decoder layer and a ``StackedTopK``.
    x_in : Tensor of shape (n_nets, n_rows, n_features)
    target : Tensor of shape (n_nets, n_rows, n_features)
        In the decoders' units (``part.target(x)``) for the squared error,
        the batch itself for cross-entropy.
    loss : {"squared_error", "binary_cross_entropy"}
    since_fired : Tensor of shape (n_nets, n_units)
        Updated in place (the batch counted, the kept units reset).
    penalty : callable or None
        ``penalty(part, x_in, step_pass) -> (values, grads)``: per-net
        values of shape (n_nets,) and a dict from ``part``'s parameter
        tensors to gradients added to theirs.
    workspace : Workspace or None
        Buffers for the step's largest temporaries, kept by the caller
        from one step to the next (a fresh tensor of a batch's size costs
        its page faults: most of the step on a virtual machine's CPU).
    training : bool, default=True
        False for the losses alone (validation): no gradient, no penalty,
        ``since_fired`` untouched.

    Returns
    -------
    losses : Tensor of shape (n_nets,)
    grads : dict or None
        From ``part``'s parameter tensors (encoder weight and bias, decoder
        weight and bias) to their gradients; None when not ``training``.
    """
    (w_enc, b_enc), (w_dec, b_dec, _) = part.encoder[0], part.decoder[0]
    n_nets, n, n_features = x_in.shape
    m = w_enc.shape[1]
    buffer = _buffers(workspace, x_in)
    with torch.no_grad():
        xc = torch.sub(x_in, part.input_offset.unsqueeze(1), out=buffer("xc"))
        xc.mul_(part.input_scale.unsqueeze(1))
        pre = torch.baddbmm(
            b_enc.detach().unsqueeze(1),
            xc,
            w_enc.detach().mT,
            out=buffer("pre", (n_nets, n, m)),
        )
        ks = part.code.ks.clamp(max=m).view(-1, 1, 1)
        flat = flat_entries(top_k_mask(pre, ks, workspace))
        # The nets' codes as one block-diagonal matrix: each entry's row
        # among all nets' rows (net * n + row), its unit among all nets'
        # units (net * m + unit).
        row = torch.div(flat, m, rounding_mode="floor")
        col = torch.div(row, n, rounding_mode="floor") * m + (flat - row * m)
        values = pre.reshape(-1).index_select(0, flat).relu_()
        counts = torch.bincount(row, minlength=n_nets * n)
        codes = SparseCodes(
            row, col, values, counts.cumsum(0).sub_(counts), (n_nets * n, n_nets * m)
        )
        atoms = w_dec.detach().mT.reshape(n_nets * m, n_features)  # a copy
        output = codes.times(atoms).view(n_nets, n, n_features)
        output += b_dec.detach().unsqueeze(1)

        if loss == "squared_error":
            grad = torch.sub(output, target, out=buffer("grad"))
            losses = _squared_norms(grad).div_(n)
            grad.mul_(2.0 / n)
        else:
            losses = (
                F.binary_cross_entropy_with_logits(output, target, reduction="none")
                .sum(dim=(1, 2))
                .div_(n)
            )
            grad = torch.sigmoid(output).sub_(target).div_(n)
        if not training:
            return losses, None
        update_since_fired_entries(since_fired.view(-1), n, col, values)
        flat_grad = grad.view(n_nets * n, n_features)
        atom_grads = codes.transpose_times(flat_grad, values)
        entry_grad = codes.entry_dots(atoms, flat_grad, workspace).mul_(values > 0)
        w_enc_grad = codes.transpose_times(xc.view(n_nets * n, n_features), entry_grad)
        b_enc_grad = values.new_zeros(n_nets * m).index_add_(0, col, entry_grad)
        grads = {
            w_enc: w_enc_grad.view(n_nets, m, n_features),
            b_enc: b_enc_grad.view(n_nets, m),
            w_dec: atom_grads.view(n_nets, m, n_features).mT,
            b_dec: grad.sum(dim=1),
        }
        if penalty is not None:
            step_pass = StackedPass(xc, pre, output, target, since_fired, workspace)
            values_, extra = penalty(part, x_in, step_pass)
            losses += values_
            for param, g in extra.items():
                grads[param] = grads[param] + g
    return losses, grads


def _squared_norms(t):
    """Each net's sum of squares of ``t`` (n_nets, ...), with no temporary
    of ``t``'s size."""
    flat = t.reshape(len(t), 1, -1)
    return torch.bmm(flat, flat.mT).view(len(t))


def _buffers(workspace, like):
    """``buffer(name, shape=like.shape)``: a workspace buffer, or None
    (a fresh tensor) without a workspace."""

    def buffer(name, shape=None):
        if workspace is None:
            return None
        shape = like.shape if shape is None else shape
        return workspace.tensor(name, shape, like.dtype, like.device)

    return buffer
