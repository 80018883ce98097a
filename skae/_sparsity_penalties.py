"""The sparsity penalties of SparseAutoencoder: value and written-out gradient.

Module-level functions, so that the penalty objects built from them pickle.
"""

from ._nn.objectives import (
    kl_divergence_sparsity,
    kl_divergence_sparsity_gradient,
    l1_sparsity,
    l1_sparsity_gradient,
)


def _kl_penalty(module, x, codes, generator, *, weight, target):
    return weight * kl_divergence_sparsity(codes, target)


def _l1_penalty(module, x, codes, generator, *, weight):
    return weight * l1_sparsity(codes, module.decoder_input_layer.weight)


def _kl_gradient(module, x, codes, generator, encoder, *, weight, target):
    penalty, grad = kl_divergence_sparsity_gradient(codes, target, weight)
    return penalty, grad, {}, {}


def _l1_gradient(module, x, codes, generator, encoder, *, weight):
    decoder_weight = module.decoder_input_layer.weight
    penalty, code_grad, weight_grad = l1_sparsity_gradient(
        codes, decoder_weight, weight
    )
    return penalty, code_grad, {decoder_weight: weight_grad}, {}
