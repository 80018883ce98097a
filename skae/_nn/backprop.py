"""Training gradients of the fully connected autoencoder, written out.

The reconstruction term's gradients are computed layer by layer with
explicit matrix products, as scikit-learn's MLP computes its own, rather
than through an autograd graph. On small models every operation costs more
to dispatch than to compute, and the graph's bookkeeping is most of a
training step; written out, a digits-sized step takes about half the time.
The arithmetic is the one autograd performs (the same products and the same
activation derivatives, written in terms of the activations' outputs), so
the gradients agree with autograd's to float32 rounding
(``tests/test_backprop.py``).

A penalty that carries a written-out gradient (``Penalty.gradient``, see
``_penalty.py``: the KL and L1 sparsity penalties and the projection
estimate of the contractive penalty) uses it. Any other penalty
goes through autograd, on a graph of its own that starts at the codes
(``codes.detach().requires_grad_()``) and at whatever parameters it reads
(a code layer's weights, an encoder Jacobian recomputed from the input).
Either way, the penalty's gradient with respect to the codes joins the
written-out backward pass at the code layer, its gradients with respect to
pre-activations join it at their layers, and its gradients with respect to
parameters are added to the written-out ones. Any penalty written as a
torch function of ``(module, x, codes, generator)`` therefore works
unchanged.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .activations import ACTIVATIONS

__all__ = ["EncoderPass", "Plan", "backprop"]


class EncoderPass:
    """The training forward pass through the encoder, for penalty gradients.

    Built for every penalised step; the derivatives are computed on first
    use only (the sparsity penalties never ask for them).

    Attributes
    ----------
    scale : Tensor of shape ()
        The input scale (the first layer sees ``scale * (x - offset)``).
    weights : list of Tensor
        Each encoder layer's weight, first to code layer.
    derivatives : list of Tensor or None
        Each layer's activation derivative ``f'(a)`` at the batch (None for
        the identity).
    second_derivatives : list of Tensor or None
        ``f''(a)`` (None where it is zero: identity and ReLU).
    """

    def __init__(self, plan, outputs):
        n = plan.code_index + 1
        self.scale = plan.scale
        self.weights = [weight for weight, _, _ in plan.layers[:n]]
        self._activation = plan.activation
        self._outputs = outputs[:n]

    @functools.cached_property
    def derivatives(self):
        if self._activation == "identity":
            return [None] * len(self._outputs)
        derivative = ACTIVATIONS[self._activation].derivative
        return [derivative(z) for z in self._outputs]

    @functools.cached_property
    def second_derivatives(self):
        second = ACTIVATIONS[self._activation].second_derivative
        return [None if second is None else second(z) for z in self._outputs]


def _penalty_gradients(penalty, module, x_in, codes, generator, encoder):
    """A penalty term's value and gradients.

    Returns ``(value, code_grad, param_grads, pre_activation_grads)``: the
    gradient with respect to the codes (or None), a dict of gradients with
    respect to parameters, and a dict from encoder layer index to the
    gradient with respect to that layer's pre-activation (for penalties
    that depend on the activations' derivatives).
    """
    gradient = getattr(penalty, "gradient", None)
    if gradient is not None:
        return gradient(module, x_in, codes, generator, encoder, **penalty.keywords)
    params = [p for p in module.parameters() if p.requires_grad]
    with torch.enable_grad():
        codes_leaf = codes.detach().requires_grad_(True)
        term = penalty(module, x_in, codes_leaf, generator)
        grads = torch.autograd.grad(term, [codes_leaf, *params], allow_unused=True)
    extra = {p: g for p, g in zip(params, grads[1:]) if g is not None}
    return term.detach(), grads[0], extra, {}


def _output_gradient(plan, output, target, loss, n):
    """The batch's mean reconstruction error and its gradient with respect
    to the decoder's output (its logits for cross-entropy)."""
    if loss == "squared_error":
        # The decoder predicts the target in its own units.
        grad = output - (target - plan.target_offset) * plan.target_scale
        flat = grad.view(-1)
        value = torch.dot(flat, flat).div_(n)
        grad.mul_(2.0 / n)
    else:
        value = F.binary_cross_entropy_with_logits(
            output, target, reduction="sum"
        ).div_(n)
        grad = torch.sigmoid(output).sub_(target).div_(n)
    return value, grad


class Plan:
    """The tensors of ``module`` that :func:`backprop` reads, in order.

    Holds the first layer's input centring and scaling, every linear
    layer's weight and bias, and whether an activation follows it (all but
    the output layer), so that a step looks nothing up in the module.
    Raises ValueError when ``module`` is not a plain stack of Linear layers
    each followed by the module's activation (the output layer aside), or
    by a TopK or BatchTopK layer at the code layer: then ``sparse`` is that
    layer, and the pass to run is ``sparse_backprop.sparse_backprop``
    (None otherwise).

    The tensors are read from the module at each use, not kept: moving
    the module to another device (``module.to``, as skorch does after
    building it) replaces its buffers, and a plan holding the old ones would
    mix devices. An owner that is copied or pickled must copy or pickle the
    plan together with the module, in one memo (``AutoencoderNet`` lists
    ``backprop_`` among its device-dependent attributes for this).
    """

    def __init__(self, module):
        if getattr(module, "code_dropout", 0.0):
            raise ValueError("no written-out backward pass with code dropout")
        self.activation = module.activation
        activation = ACTIVATIONS[module.activation]
        activation_type = activation.module
        self.in_place = activation.in_place
        self.backward = activation.backward
        self._module = module
        self._linears = []
        self.code_index = None
        self.sparse = getattr(module, "sparse_code", None)
        for part in (module.encoder, module.decoder):
            children = list(part)
            for i in range(0, len(children), 2):
                layer = children[i]
                follower = children[i + 1] if i + 1 < len(children) else None
                ok_follower = follower is None or type(follower) is activation_type
                if follower is not None and follower is self.sparse:
                    ok_follower = True
                if not isinstance(layer, nn.Linear) or not ok_follower:
                    raise ValueError(f"no written-out backward pass for {part!r}")
                self._linears.append((layer, follower is not None))
            if part is module.encoder:
                self.code_index = len(self._linears) - 1

    @property
    def layers(self):
        """Each linear layer's ``(weight, bias, followed by an activation)``."""
        return [(layer.weight, layer.bias, act) for layer, act in self._linears]

    # The module's centring and scaling buffers, as they are now.
    offset = property(lambda self: self._module.input_offset)
    scale = property(lambda self: self._module.input_scale)
    target_offset = property(lambda self: self._module.target_offset)
    target_scale = property(lambda self: self._module.target_scale)


def backprop(
    plan, module, x_in, target, loss, penalty=None, generator=None, weight_decay=0.0
):
    """Set the gradients of one training batch's loss; return the loss.

    The loss is the reconstruction error of ``target`` from ``x_in`` (summed
    over features, averaged over the batch, in the decoder's units: the
    squared error is against ``module.target(target)``), plus ``penalty(module, x_in,
    codes, generator)`` when given, as ``AutoencoderNet.get_loss`` computes
    it. Every parameter's ``.grad`` is overwritten (no zeroing needed); the
    weights' gradients include ``weight_decay * W``, the gradient of the L2
    penalty ``weight_decay / 2 * ||W||^2`` (not part of the returned loss).

    Parameters
    ----------
    plan : Plan
        ``Plan(module)``.
    module : AutoencoderModule
        Passed to the penalty.
    x_in : Tensor of shape (n_samples, n_features)
        The encoder's input (the corrupted batch for a denoising model).
    target : Tensor of shape (n_samples, n_features)
        The clean batch.
    loss : {"squared_error", "binary_cross_entropy"}
    penalty : callable or None
    generator : torch.Generator or None
        Passed to the penalty.
    weight_decay : float, default=0.0

    Returns
    -------
    loss : Tensor of shape ()
        Detached.
    y_pred : tuple of Tensor
        ``(codes, output)``, detached.
    """
    layers, code_index = plan.layers, plan.code_index
    in_place, backward = plan.in_place, plan.backward
    with torch.no_grad():
        z = (x_in - plan.offset) * plan.scale
        inputs, outputs = [], []
        for weight, bias, activated in layers:
            inputs.append(z)
            z = F.linear(z, weight, bias)
            if activated and in_place is not None:
                in_place(z)
            outputs.append(z)
        codes, output = outputs[code_index], z
        value, grad = _output_gradient(plan, output, target, loss, x_in.shape[0])

        code_grad, extra, pre_grads = None, {}, {}
        if penalty is not None:
            encoder = EncoderPass(plan, outputs)
            term, code_grad, extra, pre_grads = _penalty_gradients(
                penalty, module, x_in, codes, generator, encoder
            )
            value += term

        for i in range(len(layers) - 1, -1, -1):
            weight, bias, activated = layers[i]
            if i == code_index and code_grad is not None:
                grad = grad.add_(code_grad)  # a fresh product: safe in place
            if activated and backward is not None:
                grad = backward(grad, outputs[i])
            if i in pre_grads:
                grad = grad + pre_grads[i]
            # W * weight_decay + grad^T z in one product.
            weight_grad = torch.addmm(weight, grad.t(), inputs[i], beta=weight_decay)
            bias_grad = grad.sum(dim=0)
            if i > 0:
                grad = grad.mm(weight)
            if extra:
                for param, g in ((weight, weight_grad), (bias, bias_grad)):
                    if param in extra:
                        g.add_(extra[param])
            weight.grad = weight_grad
            bias.grad = bias_grad
    return value, (codes, output)
