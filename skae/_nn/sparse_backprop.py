"""The written-out training pass when the code layer is TopK or BatchTopK.

With k of the code layer's units active in a row, the products that read
the codes need only the active entries. Here they are computed from those
alone, as Gao et al. 2024's kernels do: the decoder's first layer is an
``embedding_bag`` over its columns weighted by the active codes (the
sparse decoder), its weight gradient and the code layer's
``embedding_bag``s over the entries grouped by unit, and the codes'
gradient one dot product per active entry. Of
the code-sized tensors (``n_rows x n_units``) only the pre-activations are
made (and, to find each row's k largest, their sort); on the CPU, where a
freshly written tensor of that size costs more than the arithmetic on the
k active entries, this is most of a step.

The arithmetic is autograd's on the same codes (``SparseCodes`` holds the
entries TopK or BatchTopK keeps, with their ReLU), so the gradients agree
with those of the module's own forward pass to float rounding
(``tests/test_sparse_backprop.py``). The training engine runs
:func:`sparse_backprop` instead of ``backprop.backprop`` when the plan's
code layer is one of these (``Plan.sparse``).
"""

import numpy as np
import torch
import torch.nn.functional as F

from .backprop import EncoderPass, _output_gradient, _penalty_gradients
from .sparse_codes import BatchTopK, top_k_mask, update_since_fired_entries

__all__ = ["SparseCodes", "flat_entries", "select_codes", "sparse_backprop"]


class SparseCodes:
    """The active entries of a batch's codes, row by row.

    Attributes
    ----------
    rows, cols : LongTensor of shape (n_active,)
        Row and unit of each entry, sorted by row.
    values : Tensor of shape (n_active,)
        The codes there (ReLU of the pre-activations: some may be 0).
    offsets : LongTensor of shape (n_rows,)
        Where each row's entries start (``embedding_bag``'s offsets).
    shape : tuple
        ``(n_rows, n_units)``.
    """

    def __init__(self, rows, cols, values, offsets, shape):
        self.rows, self.cols, self.values = rows, cols, values
        self.offsets, self.shape = offsets, shape

    def dense(self):
        """The codes as a dense tensor."""
        codes = self.values.new_zeros(self.shape)
        return codes.index_put_((self.rows, self.cols), self.values)

    def times(self, weight, bias=None):
        """``codes @ weight`` for ``weight`` of shape ``(n_units, n)``."""
        product = F.embedding_bag(
            self.cols,
            weight,
            self.offsets,
            mode="sum",
            per_sample_weights=self.values,
        )
        return product if bias is None else product.add_(bias)

    def transpose_times(self, rows_weight, factors):
        """``A.T @ rows_weight`` of shape ``(n_units, n)``, where ``A`` has
        the entries' pattern with ``factors`` (one per entry) as values:
        an ``embedding_bag`` over the entries grouped by unit."""
        order, rows, offsets = self._by_unit()
        return F.embedding_bag(
            rows,
            rows_weight,
            offsets,
            mode="sum",
            per_sample_weights=factors.index_select(0, order),
        )

    def entry_dots(self, unit_weight, rows_weight, workspace=None):
        """For each entry, the dot product of ``unit_weight[col]`` and
        ``rows_weight[row]`` (``(A @ B.T)`` at the entries); the two
        gathers in ``workspace`` buffers when given."""
        if workspace is None:
            products = unit_weight.index_select(0, self.cols)
            other = rows_weight.index_select(0, self.rows)
        else:
            shape = (len(self.cols), unit_weight.shape[1])
            args = (unit_weight.dtype, unit_weight.device)
            products = torch.index_select(
                unit_weight, 0, self.cols, out=workspace.tensor("dots", shape, *args)
            )
            other = torch.index_select(
                rows_weight, 0, self.rows, out=workspace.tensor("rows", shape, *args)
            )
        return products.mul_(other).sum(dim=1)

    def _by_unit(self):
        """The entries grouped by unit: their order, their rows in that
        order, and where each unit's entries start."""
        if getattr(self, "_unit_groups", None) is None:
            order = _stable_order(self.cols, self.shape[1])
            counts = torch.bincount(self.cols, minlength=self.shape[1])
            offsets = counts.cumsum(0).sub_(counts)
            self._unit_groups = (order, self.rows.index_select(0, order), offsets)
        return self._unit_groups


def _stable_order(keys, n_keys):
    """The stable sort order of the LongTensor ``keys`` (values in
    ``[0, n_keys)``). On the CPU, for keys that fit in 16 bits, NumPy's
    radix sort of the keys narrowed to int16: several times faster than
    ``torch.sort`` of the int64 keys at a batch's few thousand entries."""
    if keys.device.type == "cpu" and n_keys <= np.iinfo(np.int16).max:
        narrow = keys.numpy().astype(np.int16)
        return torch.from_numpy(np.argsort(narrow, kind="stable"))
    return torch.sort(keys, stable=True).indices


def select_codes(layer, pre):
    """The training forward of a TopK or BatchTopK ``layer`` on the
    pre-activations ``pre``, as :class:`SparseCodes`, with the layer's
    training record kept (its dead-unit count, BatchTopK's threshold)."""
    n, m = pre.shape
    with torch.no_grad():
        if isinstance(layer, BatchTopK):
            flat = _batch_top_entries(pre, min(layer.k * n, n * m))
        else:
            flat = flat_entries(top_k_mask(pre, min(layer.k, m)))
        rows = torch.div(flat, m, rounding_mode="floor")
        cols = flat - rows * m
        values = pre.reshape(-1).index_select(0, flat).relu_()
        if isinstance(layer, BatchTopK):
            counts = torch.bincount(rows, minlength=n)
            offsets = counts.cumsum(0).sub_(counts)
            layer.update_threshold(values)
        else:
            offsets = torch.arange(0, len(flat), len(flat) // n, device=pre.device)
        update_since_fired_entries(layer.samples_since_fired, n, cols, values)
    return SparseCodes(rows, cols, values, offsets, (n, m))


def flat_entries(mask):
    """The row-major flat indices of a boolean mask, as a LongTensor."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.reshape(-1).nonzero().squeeze(1)


def _batch_top_entries(pre, n_keep):
    """Flat indices of the ``n_keep`` largest entries of the whole batch
    (exactly that many, whatever the ties), row by row."""
    flat = pre.reshape(-1)
    if n_keep >= flat.numel():
        return torch.arange(flat.numel(), device=pre.device)
    if pre.device.type == "cpu":
        a = flat.numpy()
        kth = np.partition(a, a.size - n_keep)[a.size - n_keep]
        index = np.flatnonzero(a >= kth)
        if index.size == n_keep:
            return torch.from_numpy(index)
    return flat.topk(n_keep).indices.sort().values


def sparse_backprop(plan, module, x_in, target, loss, penalty, generator, weight_decay):
    """:func:`backprop.backprop` for a plan whose code layer is TopK or
    BatchTopK (``plan.sparse``); same arguments and return value, but for
    the codes, returned as :class:`SparseCodes` (``.dense()`` for the
    tensor). A penalty's written-out gradient is called with them too, and
    its ``encoder`` argument has four more attributes: ``inputs`` and
    ``pre_activation``, the code layer's, ``output``, the decoder's, and
    ``output_gradient``, the reconstruction error's gradient there."""
    layers, code_index = plan.layers, plan.code_index
    in_place, backward = plan.in_place, plan.backward
    with torch.no_grad():
        z = (x_in - plan.offset) * plan.scale
        inputs, outputs, codes, atoms = [], [], None, None
        for i, (weight, bias, activated) in enumerate(layers):
            inputs.append(z)
            if i == code_index + 1:
                atoms = weight.t().contiguous()  # (n_units, n_out)
                z = codes.times(atoms, bias)
            else:
                z = F.linear(z, weight, bias)
            if i == code_index:
                outputs.append(z)  # the pre-activations
                codes = select_codes(plan.sparse, z)
                continue
            if activated and in_place is not None:
                in_place(z)
            outputs.append(z)
        output = z
        value, grad = _output_gradient(plan, output, target, loss, x_in.shape[0])

        code_grad, extra = None, {}
        if penalty is not None:
            encoder = EncoderPass(plan, outputs)
            encoder.inputs = inputs[code_index]
            encoder.pre_activation = outputs[code_index]
            encoder.output = output
            encoder.output_gradient = grad
            # A written-out gradient gets the SparseCodes; autograd the
            # dense codes.
            given = codes if getattr(penalty, "gradient", None) else codes.dense()
            term, code_grad, extra, pre_grads = _penalty_gradients(
                penalty, module, x_in, given, generator, encoder
            )
            if pre_grads:
                raise ValueError("no sparse pass for pre-activation gradients")
            value += term

        for i in range(len(layers) - 1, -1, -1):
            weight, bias, activated = layers[i]
            if activated and backward is not None and i != code_index:
                grad = backward(grad, outputs[i])
            if i == code_index + 1:
                # The decoder's first layer read the codes: its gradients,
                # and the codes', at the active entries only.
                weight_grad = codes.transpose_times(grad, codes.values).t()
                weight_grad = weight_grad.contiguous()
                if weight_decay:
                    weight_grad.add_(weight, alpha=weight_decay)
                entry_grad = codes.entry_dots(atoms, grad)
                if code_grad is not None:
                    entry_grad += code_grad[codes.rows, codes.cols]
                # Through the ReLU of the kept entries.
                entry_grad.mul_(codes.values > 0)
                _set(weight, bias, weight_grad, grad.sum(dim=0), extra)
                continue
            if i == code_index:
                weight_grad = codes.transpose_times(inputs[i], entry_grad)
                if weight_decay:
                    weight_grad.add_(weight, alpha=weight_decay)
                bias_grad = entry_grad.new_zeros(bias.shape)
                bias_grad.index_add_(0, codes.cols, entry_grad)
                _set(weight, bias, weight_grad, bias_grad, extra)
                if i > 0:
                    grad = SparseCodes(
                        codes.rows, codes.cols, entry_grad, codes.offsets, codes.shape
                    ).times(weight)
                continue
            weight_grad = torch.addmm(weight, grad.t(), inputs[i], beta=weight_decay)
            bias_grad = grad.sum(dim=0)
            if i > 0:
                grad = grad.mm(weight)
            _set(weight, bias, weight_grad, bias_grad, extra)
    return value, (codes, output)


def _set(weight, bias, weight_grad, bias_grad, extra):
    for param, g in ((weight, weight_grad), (bias, bias_grad)):
        if param in extra:
            g = g + extra[param]
        param.grad = g
