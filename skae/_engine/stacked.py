"""Many nets of one architecture as one stacked model (a leading model axis).

The model side of batched training (see ``batched``): the stacked weights
and their layout, the batched forward pass, the stacked penalty and the
memory one net takes. This layer knows torch only.
"""

from types import SimpleNamespace

import numpy as np
import torch

from .._nn.activations import ACTIVATIONS
from .._nn.modules import TiedLinear

__all__ = ["StackedPenalty", "contractive_projection_stacked", "member_bytes"]


def member_bytes(n_features, layer_sizes, batch_size, load_best=False):
    """Rough memory one net takes in a batched step: state and activations.

    ``layer_sizes`` are the encoder's output sizes, the code last (the
    decoder mirrors them). Counts the parameters, their gradients, two
    optimizer buffers, a copy of the best parameters (with ``load_best``)
    and the net's own module, plus the activations of one batch kept for
    the backward pass.
    """
    sizes = [n_features, *layer_sizes]
    n_params = 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n_params += sum(sizes[1:]) + sum(sizes[:-1])
    buffers = 5 + int(load_best)
    activations = batch_size * (6 * n_features + 4 * 2 * sum(layer_sizes))
    return 4 * (buffers * n_params + activations)


def contractive_projection_stacked(
    module, x, codes, generators, *, weight, n_projections
):
    """``weight * contractive_projection(module.encode, x, ...)`` per model.

    The random-projection estimate of the contractive penalty over a
    leading model axis; each model's projections come from its own
    generator, drawn as its own fit draws them (one code-shaped normal
    sample per projection).
    """
    x = x.detach().requires_grad_(True)
    codes = module.encode(x)
    total = codes.new_zeros(codes.shape[0])
    for _ in range(n_projections):
        u = torch.stack(
            [
                torch.randn(
                    codes.shape[1:],
                    generator=generator,
                    dtype=codes.dtype,
                    device=codes.device,
                )
                for generator in generators
            ]
        )
        (vjp,) = torch.autograd.grad(codes, x, grad_outputs=u, create_graph=True)
        total = total + vjp.square().sum(dim=-1).mean(dim=-1)
    return weight * (total / n_projections)


class StackedPenalty:
    """A penalty hook of several nets, its varying keywords stacked.

    Each net's penalty is ``functools.partial(func, **keywords)`` of one
    ``func``. A keyword whose value is the same for every net is passed as
    it is; one that differs becomes a float32 tensor with one entry per
    net, of ``ndims[name]`` dimensions (1 for a factor of the per-net
    penalty, 2 for a value that broadcasts against per-unit statistics).

    Parameters
    ----------
    penalties : list of functools.partial
    ndims : dict of str to int
    device : torch.device
    batched : callable, default=None
        Replaces ``func`` when it cannot run over a model axis as it is:
        ``batched(module, x, codes, generators, **keywords)`` with one
        generator per net (the nets' own noise generators).

    Attributes
    ----------
    random : bool
        Whether the penalty draws from the nets' generators (and needs
        gradients, also when it is evaluated on validation data).
    gradient : callable or None
        The penalty's ``stacked_gradient`` (see ``written_out``).
    """

    def __init__(self, penalties, ndims, device, batched=None):
        self.func = batched or penalties[0].func
        self.gradient = getattr(penalties[0], "stacked_gradient", None)
        self.random = batched is not None
        self.fixed, self.stacked = {}, {}
        for name, value in penalties[0].keywords.items():
            values = [p.keywords[name] for p in penalties]
            if all(v == value for v in values):
                self.fixed[name] = value
            else:
                shape = (len(values),) + (1,) * (ndims[name] - 1)
                self.stacked[name] = torch.tensor(
                    values, dtype=torch.float32, device=device
                ).reshape(shape)

    def select(self, index):
        """The penalty of the nets at ``index`` (a tensor of positions)."""
        new = StackedPenalty.__new__(StackedPenalty)
        new.func, new.fixed, new.random = self.func, self.fixed, self.random
        new.gradient = self.gradient
        new.stacked = {k: v.index_select(0, index) for k, v in self.stacked.items()}
        return new

    def __call__(self, module, x, codes, generators, index=None):
        return self.func(module, x, codes, generators, **self._keywords(index))

    def written_out(self, module, x, step, index=None):
        """The nets' values and gradients from ``gradient`` (the penalty's
        ``stacked_gradient``), for ``stacked_sparse.sparse_step``."""
        return self.gradient(module, x, step, **self._keywords(index))

    def _keywords(self, index):
        stacked = self.stacked
        if index is not None:
            stacked = {k: v.index_select(0, index) for k, v in stacked.items()}
        return {**self.fixed, **stacked}


class _Layout:
    """Where each parameter of a module sits in a row of the flat buffers.

    Weights come first, then biases, so that the weights (the parameters
    under the L2 penalty ``weight_decay``) cover one contiguous range of
    columns, ``weight_range``.
    """

    def __init__(self, module):
        named = sorted(
            module.named_parameters(), key=lambda item: item[0].endswith("bias")
        )
        self.names, self.shapes, self.slices = [], [], []
        start = 0
        for name, p in named:
            self.names.append(name)
            self.shapes.append(tuple(p.shape))
            self.slices.append(slice(start, start + p.numel()))
            start += p.numel()
        self.size = start
        n_weights = sum(1 for name in self.names if not name.endswith("bias"))
        self.weight_range = (0, self.slices[n_weights - 1].stop if n_weights else 0)

    def row(self, module):
        params = dict(module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def load_row(self, module, row):
        params = dict(module.named_parameters())
        with torch.no_grad():
            for name, sl in zip(self.names, self.slices):
                params[name].copy_(row[sl].view_as(params[name]))

    def tensors(self, module, row):
        """The pieces of ``row`` shaped as ``module``'s parameters, by object."""
        params = dict(module.named_parameters())
        return {
            params[name]: row[sl].view_as(params[name]).clone()
            for name, sl in zip(self.names, self.slices)
        }


class _StackedModule:
    """``AutoencoderModule``'s training arithmetic over a leading model axis.

    Exposes what the penalty hooks read of a module: ``input_weight``,
    ``code_layer``, ``decoder_input_layer``, ``sparse_code``,
    ``activation``, ``training``, ``encode``, ``decode`` and ``target``.
    ``code``, when given, is the code layer's activation (``StackedTopK``);
    ``target_units`` the decoders' target offsets (M, n_features) and
    scales (M,).
    """

    def __init__(
        self, encoder, decoder, offset, scale, activation, code=None, target_units=None
    ):
        self.encoder = encoder  # [(weight (M, out, in), bias (M, out)), ...]
        # [(weight, bias, tied), ...]: a tied layer holds its encoder
        # layer's weight, transposed at each use (a view made once would
        # lose its gradient when the optimizer writes the parameter rows).
        self.decoder = decoder
        self.input_offset = offset  # (M, n_features)
        self.input_scale = scale  # (M, n_features)
        self.activation = activation
        self.code = code
        self.target_units = target_units
        self.training = True
        self._act = ACTIVATIONS[activation].function

    def select(self, index):
        def pick(layers):
            return [
                (w.index_select(0, index), b.index_select(0, index)) for w, b in layers
            ]

        return _StackedModule(
            pick(self.encoder),
            [
                (w.index_select(0, index), b.index_select(0, index), tied)
                for w, b, tied in self.decoder
            ],
            self.input_offset.index_select(0, index),
            self.input_scale.index_select(0, index),
            self.activation,
            None if self.code is None else self.code.select(index),
            None
            if self.target_units is None
            else tuple(t.index_select(0, index) for t in self.target_units),
        )

    @property
    def input_weight(self):
        return self.encoder[0][0] * self.input_scale[:, None, :]

    @property
    def code_layer(self):
        weight, bias = self.encoder[-1]
        return SimpleNamespace(weight=weight, bias=bias)

    @property
    def decoder_input_layer(self):
        weight, bias = _decoder_layer(self.decoder[0])
        return SimpleNamespace(weight=weight, bias=bias)

    @property
    def sparse_code(self):
        return self.code

    def target(self, x, out=None):
        offset, scale = self.target_units
        return torch.sub(x, offset.unsqueeze(1), out=out).mul_(scale[:, None, None])

    @staticmethod
    def _linear(h, weight, bias):
        return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))

    def encode(self, x):
        h = (x - self.input_offset.unsqueeze(1)) * self.input_scale.unsqueeze(1)
        last = len(self.encoder) - 1
        for i, (weight, bias) in enumerate(self.encoder):
            h = self._linear(h, weight, bias)
            h = self.code(h) if i == last and self.code is not None else self._act(h)
        return h

    def decode(self, codes):
        h = codes
        last = len(self.decoder) - 1
        for i, layer in enumerate(self.decoder):
            weight, bias = _decoder_layer(layer)
            h = self._linear(h, weight, bias)
            if i < last:
                h = self._act(h)
        return h

    def forward(self, x):
        codes = self.encode(x)
        return codes, self.decode(codes)


def group_batch(module, index, group):
    """The rows of one step's group ``(members, starts, size)`` (see
    ``_plan``) in the padded row ``index`` (nets, rows), and the stacked
    module of its nets."""
    members, starts, size = group
    if members is None:
        return index[:, starts : starts + size], module
    cols = starts.unsqueeze(1) + torch.arange(size, device=index.device)
    return index.index_select(0, members).gather(1, cols), module.select(members)


def _decoder_layer(layer):
    weight, bias, tied = layer
    return (weight.transpose(1, 2) if tied else weight), bias


def _layers(module, part):
    """``(weight, bias, transposed)`` parameter names of each linear layer
    of ``module.<part>`` (the encoder or decoder), in order; a tied layer
    reads its encoder layer's weight, transposed."""
    names = {id(m): name for name, m in module.named_modules()}
    layers = []
    for i, layer in enumerate(getattr(module, part)):
        if isinstance(layer, torch.nn.Linear):
            layers.append((f"{part}.{i}.weight", f"{part}.{i}.bias", False))
        elif isinstance(layer, TiedLinear):
            source = names[id(layer.source)]
            layers.append((f"{source}.weight", f"{part}.{i}.bias", True))
    return layers


def _plan(n_rows, batch_sizes, device):
    """The batches of one epoch, step by step.

    Returns ``(steps, weights)``: for each step, the groups
    ``(index, starts, size)`` of the nets whose batch there has ``size``
    rows (``index`` None when it is every net and they all start at
    ``starts``, an int) and the positions of the nets without a batch; and
    the (steps, nets) array of batch sizes (0 where a net has no batch).
    """
    n_batches = -(-n_rows // batch_sizes)
    n_steps = int(n_batches.max())
    weights = np.zeros((n_steps, len(n_rows)))
    steps = []
    for t in range(n_steps):
        active = t < n_batches
        starts = t * batch_sizes
        sizes = np.where(active, np.minimum(batch_sizes, n_rows - starts), 0)
        weights[t] = sizes
        groups = []
        for size in np.unique(sizes[active]):
            members = np.flatnonzero(active & (sizes == size))
            if len(members) == len(n_rows) and np.all(starts == starts[0]):
                groups.append((None, int(starts[0]), int(size)))
            else:
                groups.append(
                    (
                        torch.as_tensor(members, device=device),
                        torch.as_tensor(starts[members], device=device),
                        int(size),
                    )
                )
        steps.append((groups, np.flatnonzero(~active)))
    return steps, weights


class _Stack:
    """The state of the nets still training, one row per net."""

    def __init__(self, nets, layout, train_rows, valid_rows, device):
        self.layout = layout
        self.device = device
        modules = [net.module_ for net in nets]
        self.params = torch.stack([layout.row(m) for m in modules]).to(device)
        self.grad = torch.zeros_like(self.params)
        self.offset = torch.stack([m.input_offset for m in modules]).to(device)
        self.scale = torch.stack([m.input_scale for m in modules]).to(device)
        self.target_offset = torch.stack([m.target_offset for m in modules]).to(device)
        self.target_scale = torch.stack([m.target_scale for m in modules]).to(device)
        self.train_rows = train_rows
        self.valid_rows = valid_rows
        # The parameters at each net's best epoch so far (with load_best).
        self.best = None

    def select(self, keep):
        index = torch.as_tensor(keep, device=self.device)
        for name in (
            "params",
            "grad",
            "offset",
            "scale",
            "target_offset",
            "target_scale",
            "best",
        ):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).index_select(0, index))
        self.train_rows = [self.train_rows[i] for i in keep]
        if self.valid_rows is not None:
            self.valid_rows = [self.valid_rows[i] for i in keep]

    def module(self, activation, encoder, decoder, code=None):
        """A _StackedModule over leaf views of the parameter rows."""
        leaves = []
        views = {}
        n = len(self.params)
        for name, shape, sl in zip(
            self.layout.names, self.layout.shapes, self.layout.slices
        ):
            view = self.params[:, sl].view(n, *shape).requires_grad_()
            views[name] = view
            leaves.append(view)

        def layers(names):
            return [(views[w], views[b], tied) for w, b, tied in names]

        module = _StackedModule(
            [(w, b) for w, b, _ in layers(encoder)],
            layers(decoder),
            self.offset,
            self.scale,
            activation,
            code,
            (self.target_offset, self.target_scale),
        )
        return module, leaves
