"""Sparse autoencoder: L1 or KL-divergence sparsity on the codes, or a
TopK / BatchTopK code layer."""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseAutoencoder
from ._sparsity_penalties import (
    centre_only,
    code_bias,
    code_sparsity,
    sparse_activation,
    sparse_penalty,
    unit_norm_decoder,
)


class SparseAutoencoder(_BaseAutoencoder):
    """Autoencoder with sparse codes (L1 or KL-divergence sparsity).

    Adds a sparsity penalty on the codes to the reconstruction error. With
    ``activation="auto"`` the codes are logistic for KL sparsity and ReLU
    for L1 sparsity. With KL sparsity the code units start at the target
    rate (their biases at ``logit(rho)``).

    Any scale of X works: the encoder sees each feature centred on the
    training mean and divided by its standard deviation (or the median
    feature's, when that is larger; data in [0, 1] trained with
    cross-entropy is only centred), and with squared error the decoder
    predicts the centred data in units of its root-mean-square deviation,
    so that squared errors keep X's relative weights, as PCA's do.
    ``inverse_transform``, ``score`` and ``score_samples`` are in X's units.
    The decoder's output layer starts with zero weights and the training
    mean (its logit for cross-entropy) as bias: training starts from the
    best constant reconstruction.

    Parameters
    ----------
    n_components : int, default=32
        Size of the code.

    sparsity : {"kl", "l1", "topk", "batch_topk"}, default="kl"
        How the codes are made sparse. "kl": the penalty ``beta * sum_j
        KL(rho || rho_hat_j)``, where ``rho_hat_j`` is the mean activation
        of code unit ``j`` over the batch; it needs logistic codes. "l1":
        the penalty ``lambda * mean over batch of sum_j |h_j| *
        ||W_dec[:, j]||``, weighted by the norm of the decoder column each
        code drives, so that it cannot be lowered by shrinking codes and
        growing decoder weights. "topk": no penalty; the code layer keeps
        the ReLU of the ``n_nonzero_coefs`` largest pre-activations of each
        row and zeroes the others (Gao et al. 2024), so every code has at
        most ``n_nonzero_coefs`` non-zeros. "batch_topk": in training, the
        ``n_nonzero_coefs * batch_size`` largest pre-activations of the
        whole batch (Bussmann et al. 2024); at inference, the
        pre-activations above a threshold learned in training (a running
        average of the smallest activation kept per batch), so that
        ``transform`` is per row, with about ``n_nonzero_coefs`` non-zeros
        on average once trained for a few hundred batches (the average
        spans about the last 100; after fewer, it lags and L0 runs higher).

    n_nonzero_coefs : int or None, default=None
        Non-zero codes per row for "topk" (on average for "batch_topk");
        None is 10% of ``n_components`` (at least 1); values above
        ``n_components`` keep every unit. Only used with those.

    revival_weight : float or "auto", default="auto"
        Weight of the AuxK loss (Gao et al. 2024) that revives dead code
        units with "topk" and "batch_topk": units inactive for
        ``dead_unit_window`` training rows learn to reconstruct the error
        the others leave, from their ``n_features // 2`` largest
        pre-activations. "auto" is 1/32 where it applies
        (``hidden_layer_sizes=()`` and squared error), else 0 (off).

    dead_unit_window : int or "auto", default="auto"
        Training rows after which a code unit that was never active counts
        as dead for ``revival_weight``; "auto" is ``40 * n_components /
        n_nonzero_coefs`` rows (those in which a unit active at the average
        rate is active 40 times), or one epoch of ``fit`` (the number of
        training rows) when that is shorter; ``partial_fit`` counts rows
        across its calls, so the size of its chunks does not change the
        window. The
        fraction of units inactive over each epoch is recorded in the
        training history as ``"dead_fraction"``.

    sparsity_weight : float or "auto", default="auto"
        Weight of the sparsity penalty: beta for "kl", lambda for "l1".
        "auto" is ``5.0 * max(1, (0.05 / sparsity_target) ** 1.5)`` for
        "kl" and 0.1 for "l1": with the reconstruction error summed over
        features, these reach the KL target rate within 25% and useful L1
        sparsity on digit-sized data without tuning. Not used by "topk" and
        "batch_topk".

    sparsity_warmup : int, default=0
        Optimizer steps over which ``sparsity_weight`` grows linearly from
        ``1 / sparsity_warmup`` of its value to all of it, so that the
        codes first learn to reconstruct; 0 applies it whole from the first
        step. Counted over all calls to ``fit`` with ``warm_start=True``
        and to ``partial_fit``. Only used with "kl" and "l1".

    sparsity_target : float, default=0.05
        Target mean activation rho of each code unit, in (0, 1). Only used
        with ``sparsity="kl"``.

    sparsity_momentum : float, default=0.0
        With ``sparsity="kl"``, the momentum ``m`` of a moving average of
        ``rho_hat`` across batches, ``m * previous + (1 - m) * batch mean``,
        at which the penalty's slope is taken. 0 uses each batch's mean.

    hidden_layer_sizes : tuple of int, default=()
        Sizes of the encoder layers between the input and the code. The
        decoder mirrors them. The empty tuple gives one encoder layer.

    tied_weights : bool, default=False
        Whether the decoder's weights are the encoder's, transposed, layer
        for layer (as in the classic autoencoders): half the weights, and a
        dictionary that is the encoder's filters. The decoder keeps biases
        of its own.

    unit_norm_decoder : bool, default=False
        Whether the decoder's atoms (its weight columns, in the decoder's
        units) are kept at unit norm, as in Gao et al. 2024: each step
        removes the gradient's component along its column and rescales the
        column after; the decoder starts with random unit columns and the
        encoder as their transpose. Needs ``hidden_layer_sizes=()`` and
        ``tied_weights=False``.

    code_dropout : float, default=0.0
        Fraction of the code units zeroed at random in each training batch
        before decoding (the others scaled by ``1 / (1 - code_dropout)``),
        so that no unit can be relied on alone; drawn from ``random_state``.
        Never applied by ``transform``, ``inverse_transform`` or the scores.

    activation : {"auto", "identity", "logistic", "tanh", "relu"}, default="auto"
        Activation of every encoder layer, the code layer included (but
        with "topk" and "batch_topk", whose code layer is the ReLU of the
        pre-activations it keeps whatever this is), and of the decoder's
        hidden layers. The output layer is linear for
        ``loss="squared_error"`` and logistic for
        ``loss="binary_cross_entropy"``. "auto" is "logistic" for
        ``sparsity="kl"``, which needs it, and "relu" for ``sparsity="l1"``.

    loss : {"auto", "squared_error", "binary_cross_entropy"}, default="auto"
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
        ``min(256, max(16, ceil(n_samples / 20)))``: small data sets are
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
    sklearn.neural_network.BernoulliRBM : Another learner of sparse binary
        features.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import SparseAutoencoder
    >>> X = np.random.RandomState(0).uniform(size=(100, 8))
    >>> sae = SparseAutoencoder(n_components=16, max_iter=5, random_state=0)
    >>> sae.fit_transform(X).shape
    (100, 16)
    """

    _parameter_constraints: dict = {
        **_BaseAutoencoder._parameter_constraints,
        "sparsity": [StrOptions({"kl", "l1", "topk", "batch_topk"})],
        "n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
        "revival_weight": [
            Interval(Real, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "dead_unit_window": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "sparsity_weight": [
            Interval(Real, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "sparsity_warmup": [Interval(Integral, 0, None, closed="left")],
        "sparsity_target": [Interval(Real, 0, 1, closed="neither")],
        "sparsity_momentum": [Interval(Real, 0, 1, closed="left")],
        "unit_norm_decoder": ["boolean"],
        "activation": [StrOptions({"auto", "identity", "logistic", "tanh", "relu"})],
    }

    def __init__(
        self,
        n_components=32,
        *,
        sparsity="kl",
        n_nonzero_coefs=None,
        revival_weight="auto",
        dead_unit_window="auto",
        sparsity_weight="auto",
        sparsity_warmup=0,
        sparsity_target=0.05,
        sparsity_momentum=0.0,
        hidden_layer_sizes=(),
        tied_weights=False,
        unit_norm_decoder=False,
        code_dropout=0.0,
        activation="auto",
        loss="auto",
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
        self.sparsity = sparsity
        self.n_nonzero_coefs = n_nonzero_coefs
        self.revival_weight = revival_weight
        self.dead_unit_window = dead_unit_window
        self.sparsity_weight = sparsity_weight
        self.sparsity_warmup = sparsity_warmup
        self.sparsity_target = sparsity_target
        self.sparsity_momentum = sparsity_momentum
        self.unit_norm_decoder = unit_norm_decoder

    _auto_batch_size = 256

    # The decisions from the parameters: in skae/_sparsity_penalties.py.
    _resolve_activation = sparse_activation
    _centre_only = centre_only
    _code_bias = code_bias
    _code_sparsity = code_sparsity
    _unit_norm_decoder = unit_norm_decoder
    _penalty = sparse_penalty
