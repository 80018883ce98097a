"""Denoising autoencoder: reconstruct clean inputs from corrupted ones."""

from functools import partial
from numbers import Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseAutoencoder

# Each noise takes ``n_values``: None corrupts every column; an int n
# corrupts the first n only, the others being AutoencoderImputer's missing
# indicators (1 where the value is missing), which masking sets to 1 where
# it hides a value, as a gap would be.


def _split(x, n_values):
    if n_values is None:
        return x, None
    return x[:, :n_values], x[:, n_values:]


def _joined(values, indicators):
    return values if indicators is None else torch.cat([values, indicators], dim=1)


def _gaussian(x, generator, *, level, n_values=None):
    x, indicators = _split(x, n_values)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return _joined(x + level * noise, indicators)


def _masking(x, generator, *, level, fill=None, n_values=None):
    # fill: the value of X's 0 in each column of the network's input (the
    # negated float64 shift of data far from zero), None where it is 0.
    x, indicators = _split(x, n_values)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= level
    if indicators is not None:
        indicators = torch.where(keep, indicators, 1.0)
    masked = x * keep if fill is None else torch.where(keep, x, fill.to(x.device))
    return _joined(masked, indicators)


def _salt_and_pepper(x, generator, *, level, low, high, n_values=None):
    x, indicators = _split(x, n_values)
    u = torch.rand(x.shape, generator=generator, device=x.device)
    low, high = low.to(x.device), high.to(x.device)
    x = torch.where(u < level / 2, low, x)
    return _joined(torch.where((u >= level / 2) & (u < level), high, x), indicators)


# The corruption of each ``noise``, by name (skae files name them).
NOISES = {
    "gaussian": _gaussian,
    "masking": _masking,
    "salt_and_pepper": _salt_and_pepper,
}


class DenoisingAutoencoder(_BaseAutoencoder):
    """Denoising autoencoder: reconstructs clean inputs from corrupted ones.

    Each training batch is corrupted afresh, from the estimator's own seeded
    random stream, and the loss compares the reconstruction of the corrupted
    batch with the clean one.

    The network is scale-free: the encoder sees each feature centred on the
    training mean and divided by its standard deviation (or the median
    feature's, when that is larger), and the decoder predicts the centred
    data in units of its root-mean-square deviation, so that squared errors
    keep X's relative weights, as PCA's do. ``inverse_transform``, ``score``
    and ``score_samples`` are in X's units. The decoder's output layer
    starts with zero weights and the training mean as bias: training starts
    from the best constant reconstruction. The corruption is not
    scale-free: the Gaussian noise's ``noise_level`` is in X's units, and
    masking sets entries to 0 in X's units, so that the defaults suit
    standardized X (standardize X, or scale ``noise_level`` with X).

    Parameters
    ----------
    n_components : int, default=32
        Size of the code.

    noise : {"gaussian", "masking", "salt_and_pepper"}, default="gaussian"
        Corruption of the training inputs, freshly drawn for every batch.
        "gaussian" adds ``noise_level * N(0, 1)``; "masking" sets each value
        to 0 with probability ``noise_level``; "salt_and_pepper" sets each
        value, with probability ``noise_level``, to its feature's minimum or
        maximum over the training data (each with equal chance). ``transform``,
        ``inverse_transform`` and ``score`` never corrupt.

    noise_level : float, default=0.2
        Standard deviation of the Gaussian noise, in X's units, or
        probability that a value is corrupted for "masking" and
        "salt_and_pepper".

    hidden_layer_sizes : tuple of int, default=(256, 128)
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
    Autoencoder : Autoencoder without corruption.
    ContractiveAutoencoder : Robustness through a Jacobian penalty instead.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import DenoisingAutoencoder
    >>> X = np.random.RandomState(0).normal(size=(100, 8))
    >>> dae = DenoisingAutoencoder(n_components=4, max_iter=5, random_state=0)
    >>> dae.fit(X).inverse_transform(dae.transform(X)).shape
    (100, 8)
    """

    _parameter_constraints: dict = {
        **_BaseAutoencoder._parameter_constraints,
        "noise": [StrOptions({"gaussian", "masking", "salt_and_pepper"})],
        "noise_level": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_components=32,
        *,
        noise="gaussian",
        noise_level=0.2,
        hidden_layer_sizes=(256, 128),
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
        self.noise = noise
        self.noise_level = noise_level

    def _corruption(self, X):
        # The columns after the first _n_values are missing indicators
        # (set by AutoencoderImputer for its fit): not corrupted.
        n_values = getattr(self, "_n_values", None)
        if self.noise == "gaussian":
            return partial(_gaussian, level=self.noise_level, n_values=n_values)
        if self.noise_level > 1:
            raise ValueError(
                f"noise={self.noise!r} takes noise_level as a probability in "
                f"[0, 1], got {self.noise_level}."
            )
        if self.noise == "masking":
            # X may be centred in float64 (data far from zero): masking
            # still sets a value to 0 in X's units.
            shift = getattr(self, "_input_shift", None)
            fill = None
            if shift is not None:
                fill = torch.as_tensor(-shift[:n_values], dtype=torch.float32)
            return partial(
                _masking, level=self.noise_level, fill=fill, n_values=n_values
            )
        values = X[:, :n_values]  # the range of the value columns
        low = torch.as_tensor(values.min(axis=0), dtype=torch.float32)
        high = torch.as_tensor(values.max(axis=0), dtype=torch.float32)
        return partial(
            _salt_and_pepper,
            level=self.noise_level,
            low=low,
            high=high,
            n_values=n_values,
        )
