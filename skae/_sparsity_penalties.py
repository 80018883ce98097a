"""SparseAutoencoder's decisions and its penalties (value and written-out
gradient).

The estimator's hooks (``_penalty``, ``_code_sparsity``, ...) are the
functions of the first part; the penalties are module-level functions, so
that the penalty objects built from them pickle.
"""

import math

import torch

from ._nn.objectives import (
    auxk_loss,
    kl_divergence_sparsity,
    kl_divergence_sparsity_gradient,
    l1_sparsity,
    l1_sparsity_gradient,
)
from ._nn.penalty import make_penalty
from ._nn.sparse_codes import top_k_mask

# sparsity_weight="auto": beta for KL, lambda for L1 (see the docstring).
_AUTO_WEIGHTS = {"kl": 5.0, "l1": 0.1}

# revival_weight="auto" for the top-k code layers (Gao et al. 2024's 1/32).
_AUTO_REVIVAL_WEIGHT = 1 / 32

# dead_unit_window="auto": the rows over which a unit active at the average
# rate (k per row among n_components) is active this many times, at most an
# epoch. Gao et al.'s 10M tokens with k=32 of 16M latents is about 20.
_DEAD_WINDOW_FIRINGS = 40


def sparse_activation(estimator):
    """The code activation: "auto" resolved; KL needs logistic codes."""
    if estimator.activation == "auto":
        return "logistic" if estimator.sparsity == "kl" else "relu"
    if estimator.sparsity == "kl" and estimator.activation != "logistic":
        raise ValueError(
            "sparsity='kl' needs codes in (0, 1), i.e. "
            f"activation='logistic', got activation={estimator.activation!r}. "
            "Use activation='logistic' (or 'auto'), or sparsity='l1'."
        )
    return estimator.activation


def centre_only(estimator, loss):
    """Data in [0, 1] (cross-entropy) is only centred: scaling it to unit
    variance cost the codes 1.2 points of downstream accuracy on the
    nudged-digits protocol (4 seeds)."""
    return loss == "binary_cross_entropy"


def code_bias(estimator):
    """Logistic codes start at their target rate instead of near 0.5."""
    if estimator.sparsity == "kl":
        rho = estimator.sparsity_target
        return math.log(rho / (1 - rho))
    return None


def code_sparsity(estimator):
    """``(sparsity, k)`` for the top-k code layers, or None."""
    if estimator.sparsity not in ("topk", "batch_topk"):
        return None
    k = estimator.n_nonzero_coefs
    if k is None:
        k = max(1, estimator.n_components // 10)
    # More non-zeros than units keeps every unit (a ReLU code layer).
    return (estimator.sparsity, int(min(k, estimator.n_components)))


def unit_norm_decoder(estimator):
    """Whether the decoder's columns are kept at unit norm."""
    if estimator.unit_norm_decoder and (
        estimator._hidden_layer_sizes() or estimator.tied_weights
    ):
        raise ValueError(
            "unit_norm_decoder=True keeps the atoms of a one-layer, untied "
            f"decoder at unit norm, got hidden_layer_sizes="
            f"{estimator.hidden_layer_sizes!r} and tied_weights="
            f"{estimator.tied_weights!r}. Use hidden_layer_sizes=() and "
            "tied_weights=False, or unit_norm_decoder=False."
        )
    return bool(estimator.unit_norm_decoder)


def sparse_penalty(estimator, n_samples, loss):
    """The penalty of a SparseAutoencoder fitted on ``n_samples`` rows
    (None for ``partial_fit``'s chunks) with ``loss``: KL or L1 sparsity,
    AuxK revival for the top-k code layers, or None."""
    if estimator.sparsity in ("topk", "batch_topk"):
        weight = revival_weight(estimator, loss)
        if weight is None:
            return None
        # A weight of 0 is a penalty too (of no cost): candidates with and
        # without revival then train batched together.
        window = estimator.dead_unit_window
        if window == "auto":
            _, k = code_sparsity(estimator)
            n_units = estimator.n_components
            window = math.ceil(_DEAD_WINDOW_FIRINGS * n_units / k)
            if n_samples is not None:
                # At most an epoch of fit; partial_fit's rows count across
                # its calls, so its chunks' sizes do not set the window.
                window = min(n_samples, window)
        return make_penalty(
            _auxk_penalty,
            gradient=_auxk_gradient,
            stacked_gradient=_auxk_stacked_gradient,
            stacked_ndims={"weight": 1, "window": 2},
            weight=float(weight),
            window=float(window),
        )
    weight = estimator.sparsity_weight
    if weight == "auto":
        weight = _AUTO_WEIGHTS[estimator.sparsity]
        if estimator.sparsity == "kl":
            # Below rho = 0.05 the weight grows as rho**-1.5: with 5.0, codes
            # end at 2.2 rho for rho = 0.01 (benchmarks/bench_kl_rate.py).
            weight *= max(1.0, (0.05 / estimator.sparsity_target) ** 1.5)
    warmup = int(estimator.sparsity_warmup)
    if estimator.sparsity == "kl":
        # Gradients written out (no autograd graph); batched with the
        # weight and the target differing between nets.
        if estimator.sparsity_momentum:  # state across batches: not batched
            return make_penalty(
                _kl_penalty,
                gradient=_kl_gradient,
                weight=weight,
                target=estimator.sparsity_target,
                momentum=estimator.sparsity_momentum,
                warmup=warmup,
            )
        return make_penalty(
            _kl_penalty,
            gradient=_kl_gradient,
            stacked_ndims={"weight": 1, "target": 2, "warmup": 1},
            weight=weight,
            target=estimator.sparsity_target,
            warmup=warmup,
        )
    return make_penalty(
        _l1_penalty,
        gradient=_l1_gradient,
        stacked_ndims={"weight": 1, "warmup": 1},
        weight=weight,
        warmup=warmup,
    )


def revival_weight(estimator, loss):
    """AuxK's weight: ``revival_weight`` with "auto" resolved (1/32 where
    AuxK applies: one decoder layer and squared error), or None where it
    does not apply."""
    applies = not estimator._hidden_layer_sizes() and loss == "squared_error"
    if estimator.revival_weight == "auto":
        return _AUTO_REVIVAL_WEIGHT if applies else None
    if estimator.revival_weight and not applies:
        raise ValueError(
            "revival_weight > 0 (AuxK) needs a one-layer decoder and squared "
            f"error, got hidden_layer_sizes={estimator.hidden_layer_sizes!r} "
            f"and loss {loss!r}. Use hidden_layer_sizes=() and "
            "loss='squared_error', or revival_weight=0."
        )
    return float(estimator.revival_weight) if applies else None


def _auxk_penalty(module, x, codes, generator, *, weight, window):
    """``weight * auxk_loss`` of the units inactive for ``window`` training
    rows, with k_aux half the number of features; 0 outside training."""
    layer = module.sparse_code
    pre_activation = layer.__dict__.pop("pre_activation", None)
    off = isinstance(weight, float) and weight == 0
    if off or not module.training or pre_activation is None:
        return codes.new_zeros(codes.shape[:-2])
    dead = layer.samples_since_fired >= window
    if dead.device.type == "cpu" and not dead.any():
        # No dead unit: the loss is 0 (skipped where the check costs no
        # device synchronisation).
        return codes.new_zeros(codes.shape[:-2])
    decoder_weight = module.decoder_input_layer.weight
    with torch.no_grad():
        residual = module.target(x) - module.decode(codes)
    k_aux = max(1, decoder_weight.shape[-2] // 2)
    return weight * auxk_loss(pre_activation, dead, residual, decoder_weight, k_aux)


def _auxk_gradient(module, x, codes, generator, encoder, *, weight, window):
    """:func:`_auxk_penalty` and its gradients, written out, on the dead
    units' columns alone: ``(value, None, param_grads, {})``, the gradients
    of the code layer's and the decoder's weights and the code layer's bias
    (a one-layer encoder and decoder: where AuxK applies)."""
    pre_activation = encoder.pre_activation
    if weight == 0 or not module.training:
        return encoder.output.new_zeros(()), None, {}, {}
    units = (module.sparse_code.samples_since_fired >= window).nonzero().squeeze(1)
    if not len(units):
        return encoder.output.new_zeros(()), None, {}, {}
    decoder = module.decoder_input_layer.weight  # (n_features, n_units)
    code_layer = module.code_layer
    k_aux = max(1, decoder.shape[0] // 2)
    pre = pre_activation.index_select(1, units)
    atoms = decoder.index_select(1, units)
    if len(units) > k_aux:
        kept = top_k_mask(pre, k_aux)
        aux_codes = torch.where(kept, pre, 0.0).relu_()
    else:
        aux_codes = pre.relu()
    n = x.shape[0]
    # The explained part minus the residual (target - output); the
    # reconstruction's gradient is 2 (output - target) / n.
    error = torch.addmm(encoder.output_gradient, aux_codes, atoms.t(), beta=n / 2)
    scale = weight * min(len(units) / k_aux, 1.0)
    flat = error.view(-1)
    value = torch.dot(flat, flat) * (scale / n)
    error_grad = error.mul_(2 * scale / n)
    pre_grad = (error_grad @ atoms).mul_(aux_codes > 0)
    decoder_grad = torch.zeros_like(decoder)
    decoder_grad.index_copy_(1, units, error_grad.t() @ aux_codes)
    weight_grad = torch.zeros_like(code_layer.weight)
    weight_grad.index_copy_(0, units, pre_grad.t() @ encoder.inputs)
    bias_grad = torch.zeros_like(code_layer.bias)
    bias_grad.index_copy_(0, units, pre_grad.sum(dim=0))
    return (
        value,
        None,
        {
            decoder: decoder_grad,
            code_layer.weight: weight_grad,
            code_layer.bias: bias_grad,
        },
        {},
    )


def _auxk_stacked_gradient(module, x, step, *, weight, window):
    """:func:`_auxk_gradient` over a leading model axis (batched training,
    ``_engine.stacked_sparse``): each net's AuxK value (n_nets,) and the
    gradients of the stacked code layer's and decoder's parameters, on the
    columns of the units dead in some net."""
    since = step.since_fired
    dead = since >= window  # (n_nets, n_units)
    if not isinstance(weight, float):
        # A net without revival has no dead units to it (their columns
        # would widen every net's arithmetic for nothing).
        dead &= (weight > 0).view(-1, 1)
    values = step.output.new_zeros(len(since))
    if isinstance(weight, float) and weight == 0:
        return values, {}
    units = dead.any(dim=0).nonzero().squeeze(1)
    if not len(units):
        return values, {}
    decoder = module.decoder_input_layer.weight  # (n_nets, n_features, n_units)
    code_layer = module.code_layer
    n = x.shape[1]
    k_aux = max(1, decoder.shape[-2] // 2)
    dead = dead.index_select(1, units)
    pre = step.pre_activation.index_select(2, units)
    atoms = decoder.detach().index_select(2, units)
    if len(units) > k_aux:
        masked = pre.masked_fill(~dead.unsqueeze(1), float("-inf"))
        kept = top_k_mask(masked, k_aux) & dead.unsqueeze(1)
        aux_codes = torch.where(kept, pre, 0.0).relu_()
    else:
        aux_codes = pre.relu().mul_(dead.unsqueeze(1))
    out = None
    if step.workspace is not None:
        out = step.workspace.tensor("auxk", step.output.shape, x.dtype, x.device)
    # Explained minus the residual (target - output).
    error = torch.bmm(aux_codes, atoms.mT, out=out)
    error.sub_(step.target).add_(step.output)
    n_dead = dead.sum(dim=1).to(error.dtype)
    scale = weight * (n_dead / k_aux).clamp(max=1.0)  # (n_nets,)
    flat = error.view(len(error), 1, -1)
    values = torch.bmm(flat, flat.mT).view(len(error)) * (scale / n)
    error_grad = error.mul_((2 * scale / n).view(-1, 1, 1))
    pre_grad = torch.bmm(error_grad, atoms).mul_(aux_codes > 0)
    decoder_grad = torch.zeros_like(decoder).index_add_(
        2, units, torch.bmm(error_grad.mT, aux_codes)
    )
    weight_grad = torch.zeros_like(code_layer.weight).index_add_(
        1, units, torch.bmm(pre_grad.mT, step.inputs)
    )
    bias_grad = torch.zeros_like(code_layer.bias).index_add_(
        1, units, pre_grad.sum(dim=1)
    )
    return values, {
        decoder: decoder_grad,
        code_layer.weight: weight_grad,
        code_layer.bias: bias_grad,
    }


def _warmed_up(module, weight, warmup):
    """``weight`` ramped up linearly over the first ``warmup`` optimizer
    steps: ``weight * min(1, (steps_trained + 1) / warmup)``, per net when
    the steps (and ``warmup``) are tensors over a model axis."""
    if isinstance(warmup, (int, float)) and warmup == 0:
        return weight
    steps = module.steps_trained
    if isinstance(steps, int) and isinstance(warmup, (int, float)):
        return weight * min(1.0, (steps + 1) / warmup)
    # A zero warm-up divides to infinity: clamped to the full weight.
    return weight * ((steps + 1) / warmup).clamp(max=1.0)


def _kl_penalty(module, x, codes, generator, *, weight, target, momentum=0.0, warmup=0):
    weight = _warmed_up(module, weight, warmup)
    previous, rho_hat = _average(module, codes, momentum)
    value = weight * kl_divergence_sparsity(codes, target, previous, momentum)
    _keep(module, rho_hat)
    return value


def _l1_penalty(module, x, codes, generator, *, weight, warmup=0):
    weight = _warmed_up(module, weight, warmup)
    return weight * l1_sparsity(codes, module.decoder_input_layer.weight)


def _kl_gradient(
    module, x, codes, generator, encoder, *, weight, target, momentum=0.0, warmup=0
):
    weight = _warmed_up(module, weight, warmup)
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


def _l1_gradient(module, x, codes, generator, encoder, *, weight, warmup=0):
    weight = _warmed_up(module, weight, warmup)
    decoder_weight = module.decoder_input_layer.weight
    penalty, code_grad, weight_grad = l1_sparsity_gradient(
        codes, decoder_weight, weight
    )
    return penalty, code_grad, {decoder_weight: weight_grad}, {}
