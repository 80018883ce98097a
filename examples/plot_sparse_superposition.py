"""
================================================
Recovering the atoms of superposed sparse codes
================================================

:func:`~skae.datasets.make_sparse_superposition` draws data as sparse
non-negative combinations of more unit-norm atoms than the data has
dimensions (features in superposition, Sharkey et al. 2022). A sparse
autoencoder with one decoder layer learns a dictionary, its fitted
``dictionary_``: the better it recovers the true atoms, the closer their
mean max cosine similarity (MMCS) is to 1.

This example trains :class:`~skae.SparseAutoencoder` with a TopK code layer
(``sparsity="topk"``: at most ``n_nonzero_coefs`` active units per row,
the ReLU of its largest pre-activations) for
several ``k`` and with an L1 penalty for several weights, and plots MMCS
against the codes' L0 (the mean number of non-zero codes per row).
"""

# %%
# The data: 32 dimensions, 64 atoms, 3 active per sample on average
# -----------------------------------------------------------------

import matplotlib.pyplot as plt

from skae import SparseAutoencoder
from skae.datasets import make_sparse_superposition
from skae.metrics import (
    fraction_of_variance_unexplained,
    mean_max_cosine_similarity,
    sparsity_summary,
)

X, codes, atoms = make_sparse_superposition(
    n_samples=8000, n_features=32, n_atoms=64, n_active=3, random_state=0
)
print(X.shape, "true L0:", (codes > 0).sum(axis=1).mean())

# %%
# TopK and L1 sparse autoencoders
# -------------------------------
# Both have 64 latents (as many as atoms), squared error and one encoder
# layer. ``tol=1e-2`` is a coarse stopping rule that keeps the example fast.

common = dict(
    n_components=64, loss="squared_error", tol=1e-2, batch_size=256, random_state=0
)
results = {"TopK": [], "L1": []}
for k in (1, 2, 3, 5, 8):
    sae = SparseAutoencoder(sparsity="topk", n_nonzero_coefs=k, **common).fit(X)
    results["TopK"].append(sae)
for weight in (0.03, 0.1, 0.3, 1.0):
    sae = SparseAutoencoder(sparsity="l1", sparsity_weight=weight, **common).fit(X)
    results["L1"].append(sae)

fig, ax = plt.subplots(figsize=(6, 4))
for name, models in results.items():
    l0 = [sparsity_summary(m, X).mean_active_units for m in models]
    mmcs = [mean_max_cosine_similarity(atoms, m.dictionary_) for m in models]
    ax.plot(l0, mmcs, "o-", label=name)
    for m, x, y in zip(models, l0, mmcs):
        fvu = fraction_of_variance_unexplained(m, X)
        print(f"{name:4} L0 {x:5.2f}  MMCS {y:.3f}  FVU {fvu:.3f}")
ax.axvline(3, color="grey", linestyle=":", label="true L0")
ax.set_xlabel("L0 (mean non-zero codes per row)")
ax.set_ylabel("MMCS with the true atoms")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# TopK bounds L0 by k (a little below it: some of a row's k largest
# pre-activations are negative, and the ReLU zeroes them) and recovers the
# atoms best near the true sparsity; the L1 penalty reaches a given L0 only
# through its weight.
