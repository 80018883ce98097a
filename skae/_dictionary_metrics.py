"""Metrics of dictionary recovery and reconstruction (``skae.metrics``)."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.utils.validation import check_array

__all__ = [
    "fraction_of_variance_unexplained",
    "matched_cosine_similarity",
    "mean_max_cosine_similarity",
]


def _cosines(true_atoms, learned_atoms):
    """Cosine similarity of every true atom (rows) with every learned one."""
    true_atoms = check_array(true_atoms, input_name="true_atoms")
    learned_atoms = check_array(learned_atoms, input_name="learned_atoms")
    if true_atoms.shape[1] != learned_atoms.shape[1]:
        raise ValueError(
            f"true_atoms has {true_atoms.shape[1]} features but learned_atoms "
            f"has {learned_atoms.shape[1]}: both are (n_atoms, n_features), "
            "e.g. the atoms of make_sparse_superposition and an estimator's "
            "dictionary_."
        )

    def unit(atoms):
        # Each row first in units of its largest entry: its norm then
        # neither overflows nor underflows, whatever the atoms' scale.
        peak = np.abs(atoms).max(axis=1, keepdims=True)
        atoms = atoms / np.where(peak > 0, peak, 1.0)
        norms = np.linalg.norm(atoms, axis=1, keepdims=True)
        return atoms / np.where(norms > 0, norms, 1.0)

    return unit(true_atoms) @ unit(learned_atoms).T


def mean_max_cosine_similarity(true_atoms, learned_atoms):
    """Compute how well learned atoms recover true ones (MMCS).

    For each true atom, the largest cosine similarity with any learned atom,
    averaged over the true atoms (Sharkey et al. 2022): 1 when every true
    atom is among the learned ones. A learned atom may serve several true
    atoms; :func:`matched_cosine_similarity` does not allow that.

    Parameters
    ----------
    true_atoms : array-like of shape (n_true, n_features)
        The ground-truth atoms, one per row.

    learned_atoms : array-like of shape (n_learned, n_features)
        The learned atoms, one per row (e.g. an estimator's
        ``dictionary_``). Atoms of zero norm have similarity 0.

    Returns
    -------
    mmcs : float
        The mean over the true atoms of their largest cosine similarity, in
        [-1, 1].

    See Also
    --------
    matched_cosine_similarity : The same, with each learned atom matched to
        one true atom at most.

    Examples
    --------
    >>> import numpy as np
    >>> from skae.metrics import mean_max_cosine_similarity
    >>> atoms = np.eye(3)
    >>> float(mean_max_cosine_similarity(atoms, 2 * atoms[::-1]))
    1.0
    """
    return float(_cosines(true_atoms, learned_atoms).max(axis=1).mean())


def matched_cosine_similarity(true_atoms, learned_atoms):
    """Compute the mean cosine similarity of a one-to-one matching of atoms.

    True and learned atoms are paired one to one so that the sum of the
    pairs' cosine similarities is largest (the Hungarian algorithm,
    :func:`scipy.optimize.linear_sum_assignment`); the result is the mean
    over the true atoms of their partner's cosine, as MMCS is a mean over
    the true atoms: with fewer learned atoms than true ones, a true atom
    left without a partner counts 0 (one learned atom does not recover
    three true ones). Each true atom's partner is at best its closest
    learned atom, so the result is at most MMCS when no true atom's best
    cosine is negative.

    Parameters
    ----------
    true_atoms : array-like of shape (n_true, n_features)
        The ground-truth atoms, one per row.

    learned_atoms : array-like of shape (n_learned, n_features)
        The learned atoms, one per row.

    Returns
    -------
    similarity : float
        Mean over the true atoms of their matched cosine similarity (0
        for a true atom left unmatched), in [-1, 1].

    See Also
    --------
    mean_max_cosine_similarity : Each true atom's best match, shared or not.

    Examples
    --------
    >>> import numpy as np
    >>> from skae.metrics import matched_cosine_similarity
    >>> atoms = np.eye(3)
    >>> float(matched_cosine_similarity(atoms, atoms[[0, 0, 1]]))
    0.666...
    >>> float(matched_cosine_similarity(atoms, atoms[:1]))
    0.333...
    """
    cosines = _cosines(true_atoms, learned_atoms)
    rows, cols = linear_sum_assignment(cosines, maximize=True)
    return float(cosines[rows, cols].sum() / len(cosines))


def fraction_of_variance_unexplained(estimator, X):
    """Compute the fraction of X's variance that the reconstruction misses.

    ``sum((X - X_hat)**2) / sum((X - mean(X))**2)`` with ``X_hat =
    estimator.inverse_transform(estimator.transform(X))`` (FVU): 0 for a
    perfect reconstruction, 1 for the mean's.

    Parameters
    ----------
    estimator : estimator instance
        A fitted skae autoencoder, or a fitted
        :class:`~sklearn.pipeline.Pipeline` ending in one (whose steps all
        have ``inverse_transform``).

    X : array-like of shape (n_samples, n_features)
        Data to reconstruct.

    Returns
    -------
    fvu : float
        The fraction of variance unexplained, at least 0.

    See Also
    --------
    sparsity_summary : The codes' L0 (``mean_active_units``) and dead
        fraction.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import Autoencoder
    >>> from skae.metrics import fraction_of_variance_unexplained
    >>> X = np.random.RandomState(0).normal(size=(200, 4))
    >>> ae = Autoencoder(n_components=4, hidden_layer_sizes=(),
    ...                  activation="identity", max_iter=50, tol=1e-2,
    ...                  random_state=0).fit(X)
    >>> fraction_of_variance_unexplained(ae, X) < 0.05
    True
    """
    # X as given to transform (a DataFrame keeps its feature names).
    X_hat = np.asarray(estimator.inverse_transform(estimator.transform(X)))
    X64 = check_array(X, dtype=[np.float64, np.float32]).astype(np.float64, copy=False)
    residual = ((X64 - X_hat) ** 2).sum()
    total = ((X64 - X64.mean(axis=0)) ** 2).sum()
    return float(residual / total) if total > 0 else float(residual > 0)
