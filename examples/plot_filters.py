"""
=========================================
Filters of a sparse autoencoder on digits
=========================================

A :class:`~skae.SparseAutoencoder` with a single encoder layer computes its
codes as :math:`h = f(W (x - \\mu) + b)`. Each row of :math:`W`, the attribute
``components_`` of shape ``(n_components, n_features)``, is a *filter*: the
input pattern that excites one code unit most. The decoder maps each unit
back to an image, its *atom*: what the unit adds to a reconstruction when it
switches on.

Both are drawn as 8x8 images for a KL-sparse autoencoder trained on the
digits, next to the components of :class:`~sklearn.decomposition.PCA`, which
are dense and ordered by explained variance.
"""

# %%
# Train on the digits
# -------------------
# The pixels are scaled to [0, 1], so ``loss="auto"`` trains with binary
# cross-entropy. KL sparsity with target rate ρ = 0.05 is the default. A
# larger step than the default ``learning_rate_init`` and a coarse stopping
# rule, ``tol=1e-2`` (stop once 10 epochs gain less than 1% of the mean
# reconstruction's loss), keep the example fast.

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from skae import SparseAutoencoder
from skae.metrics import sparsity_summary

X, _ = load_digits(return_X_y=True)
X = X / 16.0

sae = SparseAutoencoder(
    n_components=36, learning_rate_init=0.01, tol=1e-2, random_state=0
).fit(X)
pca = PCA(n_components=36, random_state=0).fit(X)

summary = sparsity_summary(sae, X)
print(f"mean activation of the code units: {summary.mean_activation.mean():.3f}")

# %%
# Filters and atoms
# -----------------
# The filters are ``components_``. The atom of unit ``j`` is the change of the
# reconstruction when that unit alone is fully on (code 1) rather than every
# unit off (code 0), computed with ``inverse_transform``.
filters = sae.components_
off = sae.inverse_transform(np.zeros((1, 36)))
atoms = sae.inverse_transform(np.eye(36)) - off

# %%
# Draw them as tiles
# ------------------
# Each image is drawn on its own symmetric colour scale: red pixels are
# positive weights, blue ones negative.
panels = {
    "SparseAutoencoder filters\n(components_)": filters,
    "SparseAutoencoder atoms\n(decoder)": atoms,
    "PCA components": pca.components_,
}
fig = plt.figure(figsize=(11, 4.3), layout="constrained")
for subfig, (title, images) in zip(fig.subfigures(1, 3), panels.items()):
    axes = subfig.subplots(6, 6, gridspec_kw={"wspace": 0.04, "hspace": 0.04})
    for ax, image in zip(axes.ravel(), images):
        vmax = np.abs(image).max()
        ax.imshow(image.reshape(8, 8), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_xticks(())
        ax.set_yticks(())
    subfig.suptitle(title)
plt.show()

# %%
# The atoms are strokes and parts of digits: a sparse code reconstructs an
# image from a few of them. The encoder's filters are noisier, because pixels
# that barely vary across the digits (the borders) hardly affect the loss and
# keep weights close to their random start. With hidden layers
# (``hidden_layer_sizes`` not empty) ``components_`` is not set: the codes of
# a deeper encoder are not one linear filter of the input.
