"""Synthetic data with a known sparse structure."""

from numbers import Integral, Real

import numpy as np
from scipy.special import ndtri
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["make_sparse_superposition"]


def _firing_probabilities(n_atoms, n_active):
    """Probabilities decaying as 0.99^i, rescaled to sum to ``n_active``
    (each at most 1: the excess of the clipped ones goes to the others).

    With the first ``m`` atoms clipped at 1, atom ``i >= m`` fires with
    ``(n_active - m) * 0.99^(i - m) / sum_{j < n_atoms - m} 0.99^j`` (a
    geometric sum, in closed form: no underflow for many atoms); ``m`` is
    the fewest clipped atoms for which atom ``m`` stays at most 1.
    """
    r = 0.99
    clipped = np.arange(n_atoms)
    first = (n_active - clipped) * (1 - r) / -np.expm1((n_atoms - clipped) * np.log(r))
    # (Some m fits: m = n_atoms - 1 does whenever n_active <= n_atoms.)
    m = np.flatnonzero(first <= 1 + 1e-12)[0]
    tail = np.minimum(first[m] * r ** np.arange(n_atoms - m), 1.0)
    return np.concatenate([np.ones(m), tail])


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_atoms": [Interval(Integral, 1, None, closed="left")],
        "n_active": [Interval(Real, 0, None, closed="neither")],
        "correlation": [Interval(Real, 0, 1, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_sparse_superposition(
    n_samples=10000,
    n_features=64,
    n_atoms=256,
    *,
    n_active=5.0,
    correlation=0.0,
    noise=0.0,
    random_state=None,
):
    """Generate data as sparse non-negative combinations of unit-norm atoms.

    The ground truth of sparse dictionary learning, as in Sharkey et al.
    (2022), "Taking features out of superposition with sparse
    autoencoders": ``n_atoms`` atoms drawn from a standard Gaussian in
    ``n_features`` dimensions and scaled to unit norm (more atoms than
    dimensions: superposition); atom ``i`` is active in a sample with a
    probability decaying as ``0.99**i``, rescaled so that on average
    ``n_active`` atoms are active; an active atom's coefficient is drawn
    from U(0, 1). ``X = codes @ atoms``, plus Gaussian noise of standard
    deviation ``noise``.

    With ``correlation > 0``, which atoms are active together is correlated
    through a Gaussian copula (the firing probabilities stay the same): a
    sample's latent Gaussian variables share a few random factors, so that
    an atom's activity is correlated with that of others, positively or
    negatively, with coefficients up to ``correlation`` in magnitude.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of samples.

    n_features : int, default=64
        Dimension of the data.

    n_atoms : int, default=256
        Number of ground-truth atoms.

    n_active : float, default=5.0
        Average number of active atoms per sample; at most ``n_atoms``.

    correlation : float, default=0.0
        Strength of the correlation between the atoms' activity, in
        [0, 1): 0 for independent atoms.

    noise : float, default=0.0
        Standard deviation of the Gaussian noise added to ``X``.

    random_state : int, RandomState instance or None, default=None
        Determines the atoms, the codes and the noise. Pass an int for
        reproducible output across calls.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The data.

    codes : ndarray of shape (n_samples, n_atoms)
        The non-negative coefficients of each sample (zero where an atom is
        inactive).

    atoms : ndarray of shape (n_atoms, n_features)
        The unit-norm atoms.

    See Also
    --------
    sklearn.datasets.make_sparse_coded_signal : Sparse combinations of
        atoms, with a fixed number of non-zero coefficients per sample.

    Examples
    --------
    >>> from skae.datasets import make_sparse_superposition
    >>> X, codes, atoms = make_sparse_superposition(
    ...     n_samples=100, n_features=8, n_atoms=32, random_state=0
    ... )
    >>> X.shape, codes.shape, atoms.shape
    ((100, 8), (100, 32), (32, 8))
    """
    if n_active > n_atoms:
        raise ValueError(
            f"n_active={n_active} exceeds n_atoms={n_atoms}: at most every "
            "atom can be active. Lower n_active or raise n_atoms."
        )
    rng = check_random_state(random_state)
    atoms = rng.standard_normal((n_atoms, n_features))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    p = _firing_probabilities(n_atoms, n_active)
    if correlation > 0:
        # A Gaussian copula: latent z ~ N(0, S) with unit variances, active
        # where z falls below the quantile of the atom's probability.
        n_factors = min(8, n_atoms)
        loadings = rng.standard_normal((n_atoms, n_factors))
        loadings *= np.sqrt(correlation) / np.linalg.norm(
            loadings, axis=1, keepdims=True
        )
        z = rng.standard_normal((n_samples, n_factors)) @ loadings.T
        z += np.sqrt(1 - correlation) * rng.standard_normal((n_samples, n_atoms))
        active = z < ndtri(p)
    else:
        active = rng.random_sample((n_samples, n_atoms)) < p
    codes = np.where(active, rng.random_sample((n_samples, n_atoms)), 0.0)
    X = codes @ atoms
    if noise:
        X += noise * rng.standard_normal(X.shape)
    return X, codes, atoms
