"""The sparsity penalties of SparseAutoencoder: value and written-out gradient.

Module-level functions, so that the penalty objects built from them pickle.
"""

from ._nn.objectives import (
    kl_divergence_sparsity,
    kl_divergence_sparsity_gradient,
    l1_sparsity,
    l1_sparsity_gradient,
)


def _kl_penalty(module, x, codes, generator, *, weight, target, momentum=0.0):
    previous, rho_hat = _average(module, codes, momentum)
    value = weight * kl_divergence_sparsity(codes, target, previous, momentum)
    _keep(module, rho_hat)
    return value


def _l1_penalty(module, x, codes, generator, *, weight):
    return weight * l1_sparsity(codes, module.decoder_input_layer.weight)


def _kl_gradient(module, x, codes, generator, encoder, *, weight, target, momentum=0.0):
    previous, rho_hat = _average(module, codes, momentum)
    penalty, grad = kl_divergence_sparsity_gradient(
        codes, target, weight, previous, momentum
    )
    _keep(module, rho_hat)
    return penalty, grad, {}, {}


def _average(module, codes, momentum):
    """The moving average of rho_hat before this batch, and after it (None
    without momentum). It lives on the module as a plain attribute (not a
    buffer: a training statistic, not a weight), updated in training only.
    """
    if not momentum:
        return None, None
    previous = getattr(module, "rho_hat_average", None)
    mean = codes.detach().mean(dim=-2)
    if previous is None or previous.shape != mean.shape:
        return None, mean  # the first batch starts the average
    return previous, momentum * previous + (1 - momentum) * mean


def _keep(module, rho_hat):
    if rho_hat is not None and module.training:
        module.rho_hat_average = rho_hat


def _l1_gradient(module, x, codes, generator, encoder, *, weight):
    decoder_weight = module.decoder_input_layer.weight
    penalty, code_grad, weight_grad = l1_sparsity_gradient(
        codes, decoder_weight, weight
    )
    return penalty, code_grad, {decoder_weight: weight_grad}, {}
