"""The torch modules: a fully connected encoder and its mirrored decoder."""

import math

import numpy as np
import torch
from torch import nn

from .activations import ACTIVATIONS
from .sparse_codes import code_layer

__all__ = [
    "AutoencoderModule",
    "TiedLinear",
    "normalize_columns_",
    "remove_parallel_gradient_",
]


def normalize_columns_(weight):
    """Scale each column of ``weight`` (``(..., n_out, n_units)``) to unit
    norm, in place (a zero column stays zero)."""
    norms = weight.norm(dim=-2, keepdim=True)
    return weight.div_(torch.where(norms > 0, norms, 1.0))


def remove_parallel_gradient_(weight, grad):
    """Remove from ``grad`` (in place) its component along each unit-norm
    column of ``weight``: the step then turns the column without changing
    its norm to first order."""
    along = (grad * weight).sum(dim=-2, keepdim=True)
    return grad.sub_(weight * along)


def _linear(n_in, n_out, generator):
    """nn.Linear with torch's default initialisation drawn from ``generator``.

    The layer is allocated without being initialised, so the global random
    state is neither read nor advanced; with ``generator`` seeded as the
    global generator would be, the weights are the same as nn.Linear's.
    """
    layer = nn.Linear(n_in, n_out, device="meta").to_empty(device="cpu")
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(n_in) if n_in > 0 else 0
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class TiedLinear(nn.Module):
    """A linear layer whose weight is another one's, transposed.

    Holds its own bias; the weight is read from ``source`` (an encoder
    layer, not registered here: the encoder owns it, so it is one parameter
    and appears once in ``state_dict``).
    """

    def __init__(self, source, generator):
        super().__init__()
        self.__dict__["source"] = source  # not a submodule
        n_out = source.in_features
        bound = 1 / math.sqrt(source.out_features) if source.out_features else 0
        self.bias = nn.Parameter(torch.empty(n_out))
        nn.init.uniform_(self.bias, -bound, bound, generator=generator)

    @property
    def weight(self):
        return self.source.weight.t()

    def forward(self, h):
        return torch.nn.functional.linear(h, self.weight, self.bias)


def _tied_stack(encoder, activation, generator):
    """The decoder mirroring ``encoder`` with its weights, transposed."""
    linears = [m for m in encoder if isinstance(m, nn.Linear)][::-1]
    layers = []
    for i, source in enumerate(linears):
        layers.append(TiedLinear(source, generator))
        if i < len(linears) - 1:
            layers.append(ACTIVATIONS[activation].module())
    return nn.Sequential(*layers)


def _logistic_gain(bias=0.0):
    """One over the slope of logistic units started at ``bias`` (4 at 0):
    the gain of a layer they feed, whose pre-activations then vary as if fed
    by units of slope 1 (LeCun et al. 1998). Stacked logistic layers start
    nearly constant without it (KL codes at logit(rho) more so), and the KL
    penalty holds them there."""
    p = 1.0 / (1.0 + math.exp(-bias))
    return 1.0 / (p * (1.0 - p))


def _stack(sizes, activation, last_activation, generator, last=None, gain=1.0):
    """Linear layers of ``sizes``, ``activation`` between them (and after
    the last with ``last_activation``: ``last``, or ``activation``); the
    first one's weights times ``gain``, the others' their inputs' gain."""
    layers = []
    inner = _logistic_gain() if activation == "logistic" else 1.0
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(_linear(n_in, n_out, generator))
        with torch.no_grad():
            layers[-1].weight.mul_(gain if i == 0 else inner)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation].module())
        elif last_activation:
            layers.append(
                last if last is not None else ACTIVATIONS[activation].module()
            )
    return nn.Sequential(*layers)


def _per_feature(values, default, sizes):
    """A float32 tensor of shape (n_features,): ``values``, or ``default``."""
    values = default if values is None else values
    values = torch.as_tensor(values, dtype=torch.float32)
    return values.expand(sizes[0]).clone() if values.ndim == 0 else values.clone()


class AutoencoderModule(nn.Module):
    """Encoder ``x -> h`` and decoder ``h -> x_hat``, fully connected.

    The encoder applies ``activation`` after every layer, the code layer
    included. The decoder mirrors the encoder's hidden layers, with the same
    activation, and ends in a linear layer (the reconstruction, or its logits
    when the loss is binary cross-entropy).

    Parameters
    ----------
    n_features : int
    n_components : int
    hidden_layer_sizes : tuple of int
        Encoder layers between the input and the code.
    activation : {"identity", "logistic", "tanh", "relu"}
    input_offset : array-like of shape (n_features,), default=None
        Subtracted from the input before encoding (the training data's mean
        centres the encoder's input). Zero when None.
    input_scale : float or array-like of shape (n_features,), default=1.0
        Multiplies the centred input before encoding, per feature (e.g. the
        inverse of each feature's standard deviation, so that the encoder
        sees standardized features).
    target_offset : array-like of shape (n_features,), default=None
        The decoder predicts ``(x - target_offset) * target_scale``: the
        training data's mean and one scale for all features put the
        reconstruction in units where the data has unit average variance,
        whatever X's units. Zero when None.
    target_scale : float, default=1.0
        See ``target_offset``.
    constant_loss : float, default=0.0
        The training loss of the best constant reconstruction, kept as the
        unit the stopping rule's tolerance is measured in.
    output_bias : array-like of shape (n_features,), default=None
        Initial bias of the decoder's output layer, e.g. the mean of the
        target (or its logit for binary cross-entropy). When given, that
        layer's weights start at zero, so that training starts exactly from
        the best constant reconstruction rather than from the noise of a
        random decoder. torch's default initialisation of the layer when
        None.
    code_bias : float, default=None
        Initial bias of every code unit, e.g. the logit of a sparsity target
        so that logistic codes start near their target rate. torch's default
        when None.
    seed : int, default=None
        Seeds the initial weights through a generator of their own (the
        global random state is never touched). Drawn from the global random
        state when None.
    code_sparsity : tuple or None, default=None
        ``("topk", k)`` or ``("batch_topk", k)``: the code layer keeps only
        its largest activations (``sparse_codes``) instead of applying
        ``activation``. None for ``activation``.
    tied_weights : bool, default=False
        Whether the decoder's layers use the encoder's weights, transposed
        (``TiedLinear``), with biases of their own.
    code_dropout : float, default=0.0
        In training, when ``forward`` is given a generator, the fraction of
        code units zeroed before decoding (inverted dropout).
    unit_norm_decoder : bool, default=False
        Whether the (one-layer) decoder starts with random unit-norm columns
        and the code layer with their transpose and zero biases (the
        training engine keeps the columns at unit norm).
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes,
        activation,
        input_offset=None,
        input_scale=1.0,
        target_offset=None,
        target_scale=1.0,
        constant_loss=0.0,
        output_bias=None,
        code_bias=None,
        seed=None,
        code_sparsity=None,
        tied_weights=False,
        code_dropout=0.0,
        unit_norm_decoder=False,
    ):
        super().__init__()
        sizes = [n_features, *hidden_layer_sizes, n_components]
        self.activation = activation
        generator = None
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self.code_sparsity = None if code_sparsity is None else tuple(code_sparsity)
        last = None
        if code_sparsity is not None:
            last = code_layer(code_sparsity, n_components)
        self.encoder = _stack(sizes, activation, True, generator, last)
        # Optimizer steps taken, counted by the engine (the warm-up reads it).
        self.steps_trained = 0
        self.tied_weights = bool(tied_weights)
        self.code_dropout = float(code_dropout)
        if self.tied_weights:
            self.decoder = _tied_stack(self.encoder, activation, generator)
        else:  # its first layer fed by the codes, logistic ones or not
            logistic = activation == "logistic" and code_sparsity is None
            gain = _logistic_gain(code_bias or 0.0) if logistic else 1.0
            self.decoder = _stack(sizes[::-1], activation, False, generator, gain=gain)
        self.register_buffer("input_offset", _per_feature(input_offset, 0.0, sizes))
        self.register_buffer("input_scale", _per_feature(input_scale, 1.0, sizes))
        self.register_buffer("target_offset", _per_feature(target_offset, 0.0, sizes))
        self.register_buffer(
            "target_scale", torch.tensor(float(target_scale), dtype=torch.float32)
        )
        self.register_buffer(
            "constant_loss", torch.tensor(float(constant_loss), dtype=torch.float64)
        )
        if output_bias is not None:
            with torch.no_grad():
                self.decoder[-1].bias.copy_(torch.as_tensor(output_bias))
                if not self.tied_weights:  # a tied weight is the encoder's
                    self.decoder[-1].weight.zero_()
        if unit_norm_decoder:
            weight = self.decoder_input_layer.weight  # (n_features, n_units)
            with torch.no_grad():
                weight.copy_(torch.randn(weight.shape, generator=generator))
                normalize_columns_(weight)
                self.code_layer.weight.copy_(weight.t())
                self.code_layer.bias.zero_()
        if code_bias is not None:  # after: the target rate, unit-norm or not
            with torch.no_grad():
                self.code_layer.bias.fill_(float(code_bias))

    @property
    def input_weight(self):
        """The first encoder layer's weights as applied to the raw input."""
        return self.encoder[0].weight * self.input_scale

    @property
    def code_layer(self):
        """The encoder's last linear layer, the one producing the codes."""
        return self.encoder[-2]

    @property
    def sparse_code(self):
        """The code layer's TopK or BatchTopK module, or None."""
        return self.encoder[-1] if self.code_sparsity is not None else None

    def dead_fraction(self, n_rows):
        """Fraction of code units idle for ``n_rows`` rows (None: no TopK)."""
        layer = self.sparse_code
        if layer is None:
            return None
        return float((layer.samples_since_fired >= n_rows).float().mean())

    @property
    def decoder_input_layer(self):
        """The decoder's first linear layer, the one reading the codes."""
        return self.decoder[0]

    def encode(self, x):
        if not torch.is_grad_enabled():
            return self.inference_encoder()(x)
        # Training: centre and scale the batch (constants: no gradient).
        h = self.encoder[0]((x - self.input_offset) * self.input_scale)
        for i in range(1, len(self.encoder)):
            h = self.encoder[i](h)
        return h

    def inference_layers(self):
        """The encoder's ``(weight, bias)`` pairs as applied to the raw input.

        The centring and scaling are folded into the first layer,
        W s (x - offset) + b = (W s) x + (b - W s offset), so that inference
        makes no pass over its input beyond the layers' own.
        """
        first = self.encoder[0]
        weight = self.input_weight
        bias = torch.addmv(first.bias, weight, self.input_offset, alpha=-1)
        return [(weight, bias)] + [
            (layer.weight, layer.bias) for layer in self.encoder[2::2]
        ]

    def _numpy_layers(self, dtype=np.float32):
        """:meth:`inference_layers` as NumPy ``(weight.T, bias)`` pairs of
        ``dtype``, folded in NumPy (in that precision) from views of the
        weights: no torch operation, which on the CPU would wake torch's
        thread pool beside the BLAS's."""

        def view(t):
            return t.detach().cpu().numpy().astype(dtype, copy=False)

        first = self.encoder[0]
        weight = view(first.weight) * view(self.input_scale)
        bias = view(first.bias) - weight @ view(self.input_offset)
        layers = [(weight, bias)] + [
            (view(layer.weight), view(layer.bias)) for layer in self.encoder[2::2]
        ]
        # W.T laid out row-major: the BLAS's faster layout here.
        return [(np.ascontiguousarray(w.T), b) for w, b in layers]

    def inference_encoder(self, check_first_layer=None, numpy=False):
        """The encoder as a function of the raw input, for inference.

        The layers are :meth:`inference_layers`, folded once: the returned
        function makes no weight-sized operation per call. It is
        ``encode(x, out=None)``: given ``out`` (an array of the codes'
        shape), the codes are written there and ``out`` is returned.

        With ``numpy=True`` it maps float32 or float64 NumPy arrays to NumPy
        arrays of the same dtype, computed in that precision, through
        NumPy's matrix product (the BLAS scikit-learn's own transformers
        use) and no torch operation; tensors otherwise.

        ``check_first_layer``, when given, is called with the first layer's
        output before its activation (every input value has reached it: a
        NaN or infinite input makes its whole row non-finite).
        """
        activation = ACTIVATIONS[self.activation]
        if numpy:
            layers = self._numpy_layers()
            activate = activation.numpy_in_place
        else:
            layers = self.inference_layers()
            activate = activation.in_place
        last = len(layers) - 1
        # The code layer's own activation (TopK, BatchTopK), or None.
        sparse = self.encoder[-1] if self.code_sparsity is not None else None

        def encode_tensor(x, out=None):
            h = x
            for i, (w, b) in enumerate(layers):
                if i == last and out is not None:
                    h = torch.addmm(b, h, w.t(), out=out)
                else:
                    h = torch.addmm(b, h, w.t())
                if i == 0 and check_first_layer is not None:
                    check_first_layer(h)
                if i == last and sparse is not None:
                    h = sparse(h) if out is None else out.copy_(sparse(h))
                elif activate is not None:
                    activate(h)
            return h

        cast = {np.dtype(np.float32): layers}

        def encode_array(x, out=None):
            # Products in x's precision (float64 input stays float64).
            if x.dtype not in cast:
                cast[x.dtype] = self._numpy_layers(x.dtype)
            h = x
            for i, (w_t, b) in enumerate(cast[x.dtype]):
                dest = out if i == last and out is not None else None
                h = np.matmul(h, w_t, out=dest)
                h += b
                if i == 0 and check_first_layer is not None:
                    check_first_layer(h)
                if i == last and sparse is not None:
                    sparse.numpy_forward(h)
                elif activate is not None:
                    activate(h)
            return h

        return encode_array if numpy else encode_tensor

    def decode(self, codes):
        return self.decoder(codes)

    def target(self, x):
        """The decoder's training target for inputs ``x``, in its units."""
        return (x - self.target_offset) * self.target_scale

    def reconstruction(self, output):
        """The decoder's output (not logits) back in X's units."""
        return output / self.target_scale + self.target_offset

    def forward(self, x, dropout_generator=None):
        codes = self.encode(x)
        decoded = codes
        if self.training and self.code_dropout and dropout_generator is not None:
            p = self.code_dropout
            keep = torch.rand(
                codes.shape, generator=dropout_generator, device=codes.device
            )
            decoded = codes * (keep >= p).to(codes.dtype) / (1 - p)
        return codes, self.decoder(decoded)
