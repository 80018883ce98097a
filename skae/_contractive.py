"""Contractive autoencoder: codes insensitive to small input changes."""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseAutoencoder
from ._engine.stacked import contractive_projection_stacked
from ._nn.objectives import (
    contractive_closed_form,
    contractive_exact,
    contractive_projection,
)
from ._nn.penalty import make_penalty


def _closed_form_penalty(module, x, codes, generator, *, weight):
    # One encoder layer: its weights, as seen by the raw input, are the
    # Jacobian's rows up to the activation's derivative.
    return contractive_closed_form(
        codes, module.input_weight, module.activation, factor=weight
    )


def _exact_penalty(module, x, codes, generator, *, weight):
    return weight * contractive_exact(module.encode, x)


def _projection_penalty(module, x, codes, generator, *, weight, n_projections):
    return weight * contractive_projection(module.encode, x, n_projections, generator)


def _projection_gradient(
    module, x, codes, generator, encoder, *, weight, n_projections
):
    """``_projection_penalty`` and its gradients, written out.

    With ``q_L = u``, ``r_l = f'(a_l) * q_l`` and ``q_{l-1} = r_l W_l`` down
    the encoder, ``J^T u = s q_0``; the penalty is ``weight`` times the mean
    over projections of ``mean_b ||J^T u||^2``. Its gradient runs back up
    the same chain: into each ``W_l`` directly, and into each pre-activation
    ``a_l`` through ``f'(a_l)`` (returned for the training pass to add).
    The projections ``u`` are drawn from ``generator`` as
    ``contractive_projection`` draws them.
    """
    weights, first, second = (
        encoder.weights,
        encoder.derivatives,
        encoder.second_derivatives,
    )
    n_layers = len(weights)
    scale = encoder.scale
    factor = weight / n_projections
    n = x.shape[0]
    total = codes.new_zeros(())
    weight_grads = [None] * n_layers
    pre_grads = {}
    for _ in range(n_projections):
        u = torch.randn(
            codes.shape, generator=generator, dtype=codes.dtype, device=codes.device
        )
        # Down the encoder: q holds q_l, then q_{l-1}.
        q, rs, qs = u, [None] * n_layers, [None] * n_layers
        for layer in range(n_layers - 1, -1, -1):
            qs[layer] = q
            r = q if first[layer] is None else q * first[layer]
            rs[layer] = r
            q = r @ weights[layer]
        v = q * scale
        total = total + v.square().sum(dim=-1).mean()
        # Back up: d/dq_0, then through each layer.
        dq = v * (2 * factor / n * scale)
        for layer in range(n_layers):
            grad = rs[layer].t() @ dq
            weight_grads[layer] = (
                grad if weight_grads[layer] is None else weight_grads[layer] + grad
            )
            dr = dq @ weights[layer].t()
            if second[layer] is not None:
                extra = dr * qs[layer] * second[layer]
                pre_grads[layer] = (
                    extra if layer not in pre_grads else pre_grads[layer] + extra
                )
            dq = dr if first[layer] is None else dr * first[layer]
    params = dict(zip(weights, weight_grads))
    return total * factor, None, params, pre_grads


class ContractiveAutoencoder(_BaseAutoencoder):
    """Contractive autoencoder: codes insensitive to small input changes.

    Adds the squared Frobenius norm of the encoder's Jacobian, averaged
    over the batch, to the reconstruction error.

    The network is scale-free: the encoder sees each feature centred on the
    training mean and divided by its standard deviation (or the median
    feature's, when that is larger), and the decoder predicts the centred
    data in units of its root-mean-square deviation, so that squared errors
    keep X's relative weights, as PCA's do. ``inverse_transform``, ``score``
    and ``score_samples`` are in X's units. The decoder's output layer
    starts with zero weights and the training mean as bias: training starts
    from the best constant reconstruction. The penalty is not: its Jacobian
    is with respect to X in X's units, so a ``contraction_weight`` suits one
    scale of X (standardize X, or tune the weight with X's scale).

    Parameters
    ----------
    n_components : int, default=32
        Size of the code.

    contraction_weight : float, default=0.01
        Weight lambda of the contractive penalty
        ``lambda * mean over batch of ||dh/dx||_F^2``.

    jacobian : {"auto", "closed_form", "exact", "projection"}, default="auto"
        How the penalty is computed. "closed_form": ``sum_j f'(a_j)^2
        ||W_j||^2``, exact and cheap, for a single encoder layer only.
        "exact": the full per-sample Jacobian through ``torch.func``, for any
        encoder but one backward pass per code unit. "projection": an
        unbiased estimate ``||J^T u||^2`` with ``u ~ N(0, I)``, averaged over
        ``n_projections`` draws. "auto" picks "closed_form" for a single
        encoder layer and "projection" otherwise.

    n_projections : int, default=1
        Number of random projections per batch when ``jacobian="projection"``.

    hidden_layer_sizes : tuple of int, default=()
        Sizes of the encoder layers between the input and the code. The
        decoder mirrors them. The empty tuple gives one encoder layer.

    tied_weights : bool, default=False
        Whether the decoder's weights are the encoder's, transposed, layer
        for layer (as in the classic autoencoders): half the weights, and a
        dictionary that is the encoder's filters. The decoder keeps biases
        of its own.

    code_dropout : float, default=0.0
        Fraction of the code units zeroed at random in each training batch
        before decoding (the others scaled by ``1 / (1 - code_dropout)``),
        so that no unit can be relied on alone; drawn from ``random_state``.
        Never applied by ``transform``, ``inverse_transform`` or the scores.

    activation : {"identity", "logistic", "tanh", "relu"}, default="tanh"
        Activation of every encoder layer, the code layer included, and of
        the decoder's hidden layers. The output layer is linear for
        ``loss="squared_error"`` and logistic for
        ``loss="binary_cross_entropy"``.

    loss : {"auto", "squared_error", "binary_cross_entropy"}, default="squared_error"
        Reconstruction loss. Training minimises its sum over features,
        averaged over samples, plus any penalty, as in the autoencoder
        literature; ``score_samples`` reports its mean over features. Binary
        cross-entropy needs inputs in [0, 1]. "auto" is binary cross-entropy
        when every training value lies in [0, 1] and the largest is above
        0.5 (intensities, probabilities), and squared error otherwise (data
        of small values train far better with it); ``loss_`` holds the
        choice.

    solver : {"adam", "sgd"}, default="adam"
        Optimizer: Adam, or SGD with Nesterov momentum 0.9.

    learning_rate : {"adaptive", "constant"}, default="adaptive"
        Learning-rate schedule. "constant" keeps ``learning_rate_init`` and
        stops at the first plateau of the loss (see ``tol``). "adaptive"
        divides the learning rate by 10 at each plateau instead, twice, and
        stops at the third: the last epochs then refine the weights with
        less gradient noise. Each call to ``fit`` starts again from
        ``learning_rate_init``; ``partial_fit`` keeps the current rate.

    learning_rate_init : float, default=1e-3
        Learning rate of the optimizer.

    alpha : float, default=1e-4
        Strength of the L2 penalty on the weights (not on the biases).

    batch_size : int or "auto", default="auto"
        Size of the minibatches; clipped to the number of samples. "auto" is
        ``min(128, max(16, ceil(n_samples / 20)))``: small data sets are
        split into 20 batches (fewer below 320 rows), so that an epoch is
        enough optimizer steps for the stopping rule to measure progress by.

    max_iter : int or "auto", default="auto"
        Maximum number of epochs. "auto" is a step budget: the larger of 200
        epochs and the number of epochs that makes 50 000 optimizer steps,
        so that small data sets (few batches per epoch) get the steps they
        need to converge; large ones get 200 epochs.

    tol : float, default=1e-4
        Tolerance for the optimization, as a fraction of the training loss of
        the best constant reconstruction (for squared error, of the training
        data's total variance), so that it does not depend on X's units or
        number of features. When the loss (or, with early stopping, the
        validation loss) does not improve by at least that much for
        ``n_iter_no_change`` consecutive epochs, the loss has reached a
        plateau: training stops, or first lowers the learning rate (see
        ``learning_rate``).

    n_iter_no_change : int, default=10
        Number of epochs without improvement by ``tol`` that make a plateau.

    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data,
        stop when the loss on it stops improving, and restore the weights of
        the best epoch. No data is held out when False.

    validation_fraction : float, default=0.1
        Proportion of the training data held out for early stopping. Only
        used if ``early_stopping=True``.

    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.

    warm_start : bool, default=False
        When True, ``fit`` continues training the previous model instead of
        starting afresh.

    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling, the validation split
        and any random corruption or estimate. Pass an int for reproducible
        results across calls. The global random states of Python, NumPy and
        torch are never used.

    verbose : bool or int, default=False
        Whether to show a progress bar with the current loss.

    device : str, default="auto"
        Where to train and infer: "auto" (CUDA when available, else MPS,
        else CPU), "cpu", "cuda", "cuda:N" or "mps". Resolved in ``fit``.

    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks of the skorch training engine, such as
        ``skorch.callbacks.LRScheduler``, or ``(name, callback)`` pairs.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Weights of the code layer, as applied to the centred input. Only set
        when ``hidden_layer_sizes=()``.

    dictionary_ : ndarray of shape (n_components, n_features)
        The decoder's atoms: row ``j`` is what code unit ``j`` adds to the
        reconstruction per unit of its code, in X's units (in logits with
        ``loss_="binary_cross_entropy"``), so that the reconstruction is
        ``codes @ dictionary_`` plus a constant. Only set when
        ``hidden_layer_sizes=()``.

    loss_ : {"squared_error", "binary_cross_entropy"}
        The reconstruction loss trained with (``loss`` with "auto"
        resolved).

    activation_ : {"identity", "logistic", "tanh", "relu"}
        The activation the encoder applies (``activation`` with "auto"
        resolved).

    input_weights_ : ndarray of shape (n_units, n_features)
        Weights of the first encoder layer as applied to the raw input (the
        per-feature scaling of the input folded in): what each of its
        ``n_units`` units (the first hidden layer's size, or
        ``n_components`` without hidden layers) responds to.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    n_iter_ : int
        Number of epochs trained, over all calls to ``fit`` with
        ``warm_start=True`` and to ``partial_fit``.

    loss_curve_ : list of float
        Training loss of each epoch (error summed over features, averaged
        over samples, plus any penalty) in the decoder's units, not X's.

    best_loss_ : float
        Lowest value of ``loss_curve_``.

    validation_scores_ : list of float
        Negative validation loss of each epoch, in ``loss_curve_``'s
        units. Only set when ``early_stopping=True``.

    best_validation_score_ : float
        Validation score of the kept weights: the highest of the last
        early-stopping fit's epochs. Only set when ``early_stopping=True``.

    net_ : skorch.NeuralNet
        The trained skorch network holding the torch module.

    See Also
    --------
    Autoencoder : Autoencoder without a penalty.
    DenoisingAutoencoder : Robustness through corrupted inputs instead.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import ContractiveAutoencoder
    >>> X = np.random.RandomState(0).normal(size=(100, 8))
    >>> cae = ContractiveAutoencoder(n_components=4, max_iter=5, random_state=0)
    >>> cae.fit_transform(X).shape
    (100, 4)
    """

    _parameter_constraints: dict = {
        **_BaseAutoencoder._parameter_constraints,
        "contraction_weight": [Interval(Real, 0, None, closed="left")],
        "jacobian": [StrOptions({"auto", "closed_form", "exact", "projection"})],
        "n_projections": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_components=32,
        *,
        contraction_weight=0.01,
        jacobian="auto",
        n_projections=1,
        hidden_layer_sizes=(),
        tied_weights=False,
        code_dropout=0.0,
        activation="tanh",
        loss="squared_error",
        solver="adam",
        learning_rate="adaptive",
        learning_rate_init=1e-3,
        alpha=1e-4,
        batch_size="auto",
        max_iter="auto",
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        warm_start=False,
        random_state=None,
        verbose=False,
        device="auto",
        callbacks=None,
    ):
        super().__init__(
            n_components,
            hidden_layer_sizes=hidden_layer_sizes,
            tied_weights=tied_weights,
            code_dropout=code_dropout,
            activation=activation,
            loss=loss,
            solver=solver,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            alpha=alpha,
            batch_size=batch_size,
            max_iter=max_iter,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            shuffle=shuffle,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            device=device,
            callbacks=callbacks,
        )
        self.contraction_weight = contraction_weight
        self.jacobian = jacobian
        self.n_projections = n_projections

    def _jacobian(self):
        if self.jacobian == "auto":
            return "projection" if self._hidden_layer_sizes() else "closed_form"
        if self.jacobian == "closed_form" and self._hidden_layer_sizes():
            raise ValueError(
                "jacobian='closed_form' holds for a single encoder layer only, "
                f"got hidden_layer_sizes={self.hidden_layer_sizes!r}. Use "
                "jacobian='projection' or 'exact', or hidden_layer_sizes=()."
            )
        return self.jacobian

    def _penalty(self, n_samples, loss):
        method = self._jacobian()
        if method == "closed_form":
            return make_penalty(
                _closed_form_penalty,
                stacked_ndims={"weight": 1},
                weight=self.contraction_weight,
            )
        if method == "exact":
            # Autograd's Jacobian per sample: neither written out nor batched.
            return make_penalty(_exact_penalty, weight=self.contraction_weight)
        # Gradients written out (no double backward through autograd).
        return make_penalty(
            _projection_penalty,
            gradient=_projection_gradient,
            stacked_ndims={"weight": 1},
            stacked=contractive_projection_stacked,
            weight=self.contraction_weight,
            n_projections=self.n_projections,
        )
