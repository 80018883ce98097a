"""
=====================================
A linear autoencoder and PCA
=====================================

With identity activations and no hidden layer, an :class:`~skae.Autoencoder`
is linear: :math:`h = W (x - \\mu) + b` and
:math:`\\hat x = V h + c`. Minimising the squared reconstruction error over
:math:`W` and :math:`V` gives the projection on the :math:`k` leading
principal components, the solution of :class:`~sklearn.decomposition.PCA`:
the codes span the same subspace as PCA's, though not in the same basis
(any invertible mixing of the components reconstructs equally well).

This example compares the two on the digits: the reconstruction error for
each number of components :math:`k`, and the principal angles between the
subspaces spanned by the rows of ``components_``.
"""

# %%
# Fit both for several k
# ----------------------
# A larger step than the default ``learning_rate_init`` lets the linear
# autoencoder reach its stopping rule in well under 100 epochs.

import matplotlib.pyplot as plt
import numpy as np
from scipy.linalg import subspace_angles
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from skae import Autoencoder

X, _ = load_digits(return_X_y=True)
X = X / 16.0


def reconstruction_error(model, X):
    return np.mean((model.inverse_transform(model.transform(X)) - X) ** 2)


ks = [2, 4, 8, 16, 32]
errors = {"linear Autoencoder": [], "PCA": []}
angles = {}
for k in ks:
    autoencoder = Autoencoder(
        n_components=k,
        activation="identity",
        hidden_layer_sizes=(),
        learning_rate_init=0.01,
        max_iter=150,
        random_state=0,
    ).fit(X)
    pca = PCA(n_components=k, random_state=0).fit(X)
    errors["linear Autoencoder"].append(reconstruction_error(autoencoder, X))
    errors["PCA"].append(reconstruction_error(pca, X))
    # Columns span each subspace; the angles come out in descending order.
    angles[k] = np.degrees(
        subspace_angles(autoencoder.components_.T, pca.components_.T)
    )
    ratio = errors["linear Autoencoder"][-1] / errors["PCA"][-1]
    print(f"k={k:2d}: error {ratio:.4f}x PCA's, largest angle {angles[k][0]:.1f}°")

# %%
# Reconstruction error and principal angles
# -----------------------------------------
# The errors coincide. Most principal angles are within a few degrees;
# the largest ones, of about 5-10 degrees, are those of the last
# directions. Where PCA's eigenvalues :math:`\lambda_k` and
# :math:`\lambda_{k+1}` are close (see the gaps printed below), turning the
# subspace from the :math:`k`-th component towards the :math:`(k+1)`-th
# changes the error very little, so the error does not pin that direction
# down: the stopping rule ends the fit before gradient descent has settled
# it, at an error within rounding of PCA's.
fig, (ax_error, ax_angle) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for (name, values), marker in zip(errors.items(), ["o", "x"]):
    ax_error.plot(ks, values, marker=marker, label=name)
ax_error.set_xscale("log", base=2)
ax_error.set_xticks(ks, [str(k) for k in ks], minor=False)
ax_error.set_xticks([], minor=True)
ax_error.set(
    yscale="log",
    xlabel="number of components k",
    ylabel="mean squared reconstruction error",
    title="Reconstruction error on digits",
)
ax_error.legend()

for k, values in angles.items():
    ax_angle.plot(np.arange(1, k + 1), np.sort(values), marker=".", label=f"k = {k}")
ax_angle.set(
    xlabel="principal angle index (ascending)",
    ylabel="angle (degrees)",
    title="Angles between the two subspaces",
)
ax_angle.legend()
plt.show()

# %%
# Relative eigenvalue gaps of PCA at each k: a small gap leaves the last
# direction loosely determined (the angles above do not follow the gaps
# one for one: they also depend on where each fit stopped).
eigenvalues = PCA(n_components=33, random_state=0).fit(X).explained_variance_
for k in ks:
    gap = (eigenvalues[k - 1] - eigenvalues[k]) / eigenvalues[k - 1]
    print(f"k={k:2d}: (λ_k - λ_k+1) / λ_k = {gap:.3f}")
