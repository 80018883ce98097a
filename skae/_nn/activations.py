"""The activations, each defined once: every form training and inference use.

An :class:`Activation` holds, for one name of the estimators' ``activation``
parameter, the torch module (for ``nn.Sequential``), the function, its
in-place forms in torch and in NumPy (for inference, where no gradient
flows), the written-out
backward step, and its first and second derivatives written in terms of the
activation's output ``f(a)`` (what the contractive penalties and the
written-out backward pass need). Adding an activation is one entry in
``ACTIVATIONS``.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "Activation"]


@dataclass(frozen=True)
class Activation:
    """One activation in every form it is used in.

    Attributes
    ----------
    module : type of nn.Module
        The layer class (``nn.Identity`` for the identity).
    function : callable
        ``f(a)``, out of place.
    in_place : callable or None
        ``f`` applied in place to a tensor; None for the identity (nothing
        to do).
    numpy_in_place : callable or None
        ``f`` applied in place to a float32 NumPy array; None for the
        identity.
    backward : callable or None
        ``backward(grad, out)``: ``grad * f'(a)`` from the output ``out``,
        fused; may overwrite ``grad``. None for the identity.
    derivative : callable
        ``f'(a)`` from ``out = f(a)``.
    second_derivative : callable or None
        ``f''(a)`` from ``out``; None where it is zero (almost everywhere),
        as autograd takes it.
    """

    module: type
    function: Callable
    in_place: Callable | None
    numpy_in_place: Callable | None
    backward: Callable | None
    derivative: Callable
    second_derivative: Callable | None


def _tanh_backward(grad, out):
    # grad * (1 - out^2), as grad - grad * out^2: two operations.
    return torch.addcmul(grad, grad, out.square(), value=-1)


def _sigmoid_backward(grad, out):
    # grad * out * (1 - out), as g - g * out with g = grad * out.
    g = grad * out
    return g.addcmul_(g, out, value=-1)


def _relu_backward(grad, out):
    # grad where out > 0, else 0: sign(out) is that 0/1 mask for out >= 0,
    # and a float product is several times faster than a boolean mask here.
    return grad.mul_(torch.sign(out))


def _numpy_tanh(h):
    np.tanh(h, out=h)


def _numpy_sigmoid(h):
    # 1 / (1 + exp(-h)), in place: several times faster than scipy's expit
    # on float32, and exact in its limits (exp overflows to inf, giving 0).
    np.negative(h, out=h)
    np.exp(h, out=h)
    h += 1
    np.reciprocal(h, out=h)


def _numpy_relu(h):
    np.maximum(h, 0, out=h)


def _identity(a):
    return a


def _sigmoid_second_derivative(out):
    return _sigmoid_derivative(out) * (1 - 2 * out)


def _tanh_second_derivative(out):
    return -2 * out * _tanh_derivative(out)


def _relu_derivative(out):
    return (out > 0).to(out.dtype)


def _sigmoid_derivative(out):
    return out * (1 - out)


def _tanh_derivative(out):
    return 1 - out.square()


ACTIVATIONS = {
    "identity": Activation(
        module=nn.Identity,
        function=_identity,
        in_place=None,
        numpy_in_place=None,
        backward=None,
        derivative=torch.ones_like,
        second_derivative=None,
    ),
    "logistic": Activation(
        module=nn.Sigmoid,
        function=torch.sigmoid,
        in_place=torch.sigmoid_,
        numpy_in_place=_numpy_sigmoid,
        backward=_sigmoid_backward,
        derivative=_sigmoid_derivative,
        second_derivative=_sigmoid_second_derivative,
    ),
    "tanh": Activation(
        module=nn.Tanh,
        function=torch.tanh,
        in_place=torch.tanh_,
        numpy_in_place=_numpy_tanh,
        backward=_tanh_backward,
        derivative=_tanh_derivative,
        second_derivative=_tanh_second_derivative,
    ),
    "relu": Activation(
        module=nn.ReLU,
        function=torch.relu,
        in_place=torch.relu_,
        numpy_in_place=_numpy_relu,
        backward=_relu_backward,
        derivative=_relu_derivative,
        second_derivative=None,
    ),
}
