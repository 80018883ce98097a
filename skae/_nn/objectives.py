"""Reconstruction losses and penalties, as pure torch functions.

Every function reduces over the batch axis (``-2``) and the unit or feature
axis (``-1``) only, so it works unchanged on tensors with leading axes, for
example a leading "model" axis when several hyperparameter settings are
trained at once as one batched model. Penalty weights are applied by the
caller, so a weight may be a tensor broadcasting over those leading axes.
"""

import math

import torch
import torch.nn.functional as F

from .activations import ACTIVATIONS

__all__ = [
    "auxk_loss",
    "contractive_closed_form",
    "contractive_exact",
    "contractive_projection",
    "kl_divergence_sparsity",
    "kl_divergence_sparsity_gradient",
    "l1_sparsity",
    "l1_sparsity_gradient",
    "reconstruction_error",
]

# Clamp for the mean activation rho_hat, so that log(rho / rho_hat) and
# log((1 - rho) / (1 - rho_hat)) stay finite when units saturate.
_KL_EPS = 1e-6


def reconstruction_error(output, target, loss, observed=None):
    """Per-sample reconstruction error, summed over features.

    Parameters
    ----------
    output : Tensor of shape (..., n_samples, n_features)
        Decoder output: the reconstruction for ``"squared_error"``, the logits
        of the reconstruction for ``"binary_cross_entropy"``.
    target : Tensor of shape (..., n_samples, n_features)
        Clean inputs.
    loss : {"squared_error", "binary_cross_entropy"}
    observed : BoolTensor of shape (..., n_samples, m) or None
        The entries that count among the first ``m <= n_features`` columns
        (the others are missing; the columns after the first ``m`` are
        never targets, such as an imputer's missing indicators): each row's
        sum runs over its observed entries and is scaled by ``m /
        n_observed`` (rows with none count 0), so that it estimates the
        error of the row's ``m`` columns.

    Returns
    -------
    error : Tensor of shape (..., n_samples)
        ``sum_i (x_i - x_hat_i)^2`` or
        ``-sum_i [x_i log x_hat_i + (1 - x_i) log(1 - x_hat_i)]``.
    """
    if loss == "squared_error":
        elementwise = (output - target).square()
    else:
        elementwise = F.binary_cross_entropy_with_logits(
            output, target, reduction="none"
        )
    if observed is None:
        return elementwise.sum(dim=-1)
    weight = observed.to(elementwise.dtype)
    n_observed = weight.sum(dim=-1)
    total = (elementwise[..., : weight.shape[-1]] * weight).sum(dim=-1)
    return total * (observed.shape[-1] / n_observed.clamp(min=1.0))


def kl_divergence_sparsity(codes, target, previous=None, momentum=0.0):
    """KL-divergence sparsity penalty of logistic codes.

    ``sum_j [rho log(rho / rho_hat_j) + (1 - rho) log((1 - rho) / (1 - rho_hat_j))]``
    where ``rho_hat_j`` is the mean activation of unit ``j`` over the batch,
    clamped away from 0 and 1.

    Parameters
    ----------
    codes : Tensor of shape (..., n_samples, n_components)
        Codes in (0, 1).
    target : float or Tensor broadcasting to (..., 1)
        The target mean activation rho, in (0, 1).
    previous : Tensor of shape (n_components,) or None, default=None
        The moving average of ``rho_hat`` before this batch: with it,
        ``rho_hat = momentum * previous + (1 - momentum) * batch mean``,
        and the gradient is the slope of the divergence at that average,
        passed to the batch's codes as if ``rho_hat`` were their mean.
    momentum : float, default=0.0
        See ``previous``.

    Returns
    -------
    penalty : Tensor of shape (...)
    """
    rho_hat = _rho_hat(codes, previous, momentum).clamp(_KL_EPS, 1.0 - _KL_EPS)
    rho = torch.as_tensor(target, dtype=codes.dtype, device=codes.device)
    # log1p: log((1 - rho) / (1 - rho_hat)) in float32 loses ~1e-7 to the
    # rounding of the ratio near 1, which a large weight (small targets)
    # turns into noise of either sign.
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * (
        torch.log1p(-rho) - torch.log1p(-rho_hat)
    )
    return kl.sum(dim=-1)


def _rho_hat(codes, previous, momentum):
    mean = codes.mean(dim=-2)
    if previous is None or not momentum:
        return mean
    # The value is the moving average; its gradient is the batch mean's,
    # unscaled: the average sets the slope, the batch receives it.
    return mean + (momentum * (previous.detach() - mean)).detach()


def kl_divergence_sparsity_gradient(
    codes, target, weight=1.0, previous=None, momentum=0.0
):
    """``weight * kl_divergence_sparsity`` and its gradient w.r.t. the codes.

    ``d/dh_bj = weight * [(1 - rho) / (1 - rho_hat_j) - rho / rho_hat_j]
    / n_samples``, zero where ``rho_hat_j`` is clamped, as autograd
    computes it; with a moving average (``previous``, see
    :func:`kl_divergence_sparsity`) the slope is taken at the average.

    Parameters
    ----------
    codes : Tensor of shape (n_samples, n_components)
    target : float
    weight : float, default=1.0

    Returns
    -------
    penalty : Tensor of shape ()
    grad : Tensor of shape (n_samples, n_components)
    """
    mean = _rho_hat(codes, previous, momentum)
    rho_hat = mean.clamp(_KL_EPS, 1.0 - _KL_EPS)
    rho = target
    kl = rho * torch.log(rho / rho_hat)
    log1p_rho = torch.log1p(-rho) if torch.is_tensor(rho) else math.log1p(-rho)
    kl += (1 - rho) * (log1p_rho - torch.log1p(-rho_hat))
    penalty = kl.sum(dim=-1) * weight
    slope = (1 - rho) / (1 - rho_hat) - rho / rho_hat
    slope = slope.masked_fill_((mean < _KL_EPS) | (mean > 1.0 - _KL_EPS), 0.0)
    grad = slope.mul_(weight / codes.shape[-2]).expand_as(codes)
    return penalty, grad


def l1_sparsity_gradient(codes, decoder_weight, weight=1.0):
    """``weight * l1_sparsity`` and its gradients w.r.t. codes and weight.

    ``d/dh_bj = weight * sign(h_bj) ||W_dec[:, j]|| / n_samples`` and
    ``d/dW_dec[:, j] = weight * mean_b |h_bj| W_dec[:, j] / ||W_dec[:, j]||``
    (zero for a zero column), as autograd computes them. The factors are
    applied to the per-unit vectors, not to the batch- or weight-sized
    results.

    Parameters
    ----------
    codes : Tensor of shape (n_samples, n_components)
    decoder_weight : Tensor of shape (n_out, n_components)
    weight : float, default=1.0

    Returns
    -------
    penalty : Tensor of shape ()
    code_grad : Tensor of shape (n_samples, n_components)
    weight_grad : Tensor of shape (n_out, n_components)
    """
    # A sum over rows, not a strided norm: about 5 times faster; the zero
    # columns' gradient is set below, not taken from sqrt.
    column_norms = decoder_weight.square().sum(dim=-2).sqrt_()
    mean_abs = codes.abs().mean(dim=-2)
    penalty = torch.dot(mean_abs, column_norms) * weight
    code_grad = torch.sign(codes).mul_(column_norms * (weight / codes.shape[-2]))
    scale = torch.where(column_norms > 0, mean_abs / column_norms, 0.0)
    weight_grad = decoder_weight * scale.mul_(weight)
    return penalty, code_grad, weight_grad


def l1_sparsity(codes, decoder_weight):
    """L1 sparsity penalty weighted by the norms of the decoder columns.

    ``mean over batch of sum_j |h_j| * ||W_dec[:, j]||``. Weighting each code by
    the norm of the decoder column it drives makes the penalty invariant to
    scaling codes down and decoder weights up, so it cannot be lowered that
    way without changing the reconstruction.

    Parameters
    ----------
    codes : Tensor of shape (..., n_samples, n_components)
    decoder_weight : Tensor of shape (..., n_out, n_components)
        Weight of the first decoder layer (the one reading the codes).

    Returns
    -------
    penalty : Tensor of shape (...)
    """
    column_norms = torch.linalg.vector_norm(decoder_weight, dim=-2)
    # Average over the batch first: one pass over the codes, then a dot
    # product with the norms (same value, fewer batch-sized operations).
    return (codes.abs().mean(dim=-2) * column_norms).sum(dim=-1)


def contractive_closed_form(codes, weight, activation, factor=1.0):
    """Squared Frobenius norm of the Jacobian of one encoder layer.

    For ``h = f(W x + b)`` with an elementwise ``f``,
    ``||dh/dx||_F^2 = sum_j f'(a_j)^2 ||W_j||^2``; averaged over the batch,
    times ``factor``. The factor's root multiplies W before it is squared:
    the raw-input weights of data at 1e-20 are near 1e20, whose squares
    overflow float32 (and a factor of 0 would make them NaN).

    Parameters
    ----------
    codes : Tensor of shape (..., n_samples, n_components)
        ``h``, the layer's output.
    weight : Tensor of shape (..., n_components, n_features)
        ``W``.
    activation : {"identity", "logistic", "tanh", "relu"}
    factor : float or Tensor of shape (...), default=1.0
        The penalty's weight (one per stacked layer).

    Returns
    -------
    penalty : Tensor of shape (...)
    """
    if isinstance(factor, torch.Tensor):
        weight = weight * factor.to(weight).sqrt()[..., None, None]
    elif factor != 1:
        weight = weight * math.sqrt(factor)
    row_norms = weight.square().sum(dim=-1).unsqueeze(-2)
    fprime = ACTIVATIONS[activation].derivative(codes)
    return (fprime.square() * row_norms).sum(dim=-1).mean(dim=-1)


def contractive_exact(encode, x):
    """Mean squared Frobenius norm of the exact encoder Jacobian.

    Computed per sample with ``torch.func.vmap(torch.func.jacrev(encode))``;
    exact for any encoder, but costs one backward pass per code unit.

    Parameters
    ----------
    encode : callable
        Maps a tensor of shape (n_features,) to (n_components,).
    x : Tensor of shape (n_samples, n_features)

    Returns
    -------
    penalty : Tensor of shape ()
    """
    jacobians = torch.func.vmap(torch.func.jacrev(encode))(x)
    return jacobians.square().sum(dim=(-2, -1)).mean()


def contractive_projection(encode, x, n_projections=1, generator=None):
    """Unbiased random-projection estimate of the mean ``||dh/dx||_F^2``.

    For ``u ~ N(0, I)`` in code space, ``E ||J^T u||^2 = ||J||_F^2``. Each
    projection costs one vector-Jacobian product (a backward pass kept in the
    graph so the estimate can be differentiated).

    Parameters
    ----------
    encode : callable
        Maps a tensor of shape (n_samples, n_features) to
        (n_samples, n_components), row by row.
    x : Tensor of shape (n_samples, n_features)
    n_projections : int, default=1
    generator : torch.Generator, default=None
        Source of the projections.

    Returns
    -------
    penalty : Tensor of shape ()
    """
    x = x.detach().requires_grad_(True)
    codes = encode(x)
    total = codes.new_zeros(())
    for _ in range(n_projections):
        u = torch.randn(
            codes.shape, generator=generator, dtype=codes.dtype, device=codes.device
        )
        (vjp,) = torch.autograd.grad(codes, x, grad_outputs=u, create_graph=True)
        total = total + vjp.square().sum(dim=-1).mean()
    return total / n_projections


def auxk_loss(pre_activation, dead, residual, decoder_weight, k_aux):
    """The AuxK loss that trains dead units to explain the residual.

    Of each row's pre-activations, the ``k_aux`` largest among the units
    marked ``dead`` (their ReLU) are decoded with the decoder's weights
    alone, and their squared distance to the residual ``x - x_hat`` is the
    loss (Gao et al. 2024): dead units then get the gradient of the error
    the live ones leave. It is scaled by ``min(n_dead / k_aux, 1)``, so
    that it fades as units revive (zero when none is dead).

    Parameters
    ----------
    pre_activation : Tensor of shape (..., n_samples, n_components)
        The code layer's pre-activations.
    dead : BoolTensor of shape (..., n_components)
    residual : Tensor of shape (..., n_samples, n_features)
        The reconstruction error, without gradient.
    decoder_weight : Tensor of shape (..., n_features, n_components)
        The weight of the (one-layer) decoder.
    k_aux : int

    Returns
    -------
    loss : Tensor of shape (...)
        The squared error summed over features, averaged over samples.
    """
    if pre_activation.device.type == "cpu":
        # Only the units dead in some model take part: on the CPU, where
        # picking them costs no device synchronisation, the arithmetic runs
        # on those columns alone (usually a few of many).
        units = dead.reshape(-1, dead.shape[-1]).any(dim=0).nonzero().squeeze(-1)
        pre_activation = pre_activation.index_select(-1, units)
        decoder_weight = decoder_weight.index_select(-1, units)
        n_dead = dead.sum(dim=-1)
        dead = dead.index_select(-1, units)
    else:
        n_dead = dead.sum(dim=-1)
    if pre_activation.shape[-1] <= k_aux:
        # Every dead unit is among its k_aux largest.
        codes = pre_activation.relu() * dead.unsqueeze(-2)
    else:
        masked = pre_activation.masked_fill(~dead.unsqueeze(-2), float("-inf"))
        values, index = masked.topk(int(k_aux), dim=-1)
        codes = torch.zeros_like(pre_activation).scatter(-1, index, values.relu())
    explained = codes @ decoder_weight.transpose(-1, -2)
    error = (explained - residual).square().sum(dim=-1).mean(dim=-1)
    return error * (n_dead.to(error.dtype) / k_aux).clamp(max=1.0)
