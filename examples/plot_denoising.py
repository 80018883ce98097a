"""
==============================
Denoising digits
==============================

A :class:`~skae.DenoisingAutoencoder` is trained to reconstruct clean inputs
from corrupted ones: every training batch is corrupted afresh, and the loss
compares the reconstruction of the corrupted batch with the clean batch.
Once trained, ``inverse_transform(transform(X))`` maps a noisy image to a
clean one. ``transform``, ``inverse_transform`` and ``score`` never corrupt.

Here the corruption is Gaussian, :math:`\\tilde x = x + \\sigma \\varepsilon`
with :math:`\\varepsilon \\sim \\mathcal{N}(0, I)` and :math:`\\sigma` =
``noise_level`` = 0.25, on digits scaled to [0, 1]. The reconstructions are
compared with a projection on the leading principal components, the linear
way to discard noise.
"""

# %%
# Corrupt held-out digits
# -----------------------

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skae import DenoisingAutoencoder

X, _ = load_digits(return_X_y=True)
X_train, X_test = train_test_split(X / 16.0, test_size=0.3, random_state=0)

sigma = 0.25
rng = np.random.default_rng(0)
X_test_noisy = X_test + sigma * rng.standard_normal(X_test.shape)

# %%
# Train on clean digits
# ---------------------
# The autoencoder sees only clean training digits and corrupts them itself,
# with the same kind and level of noise as the test digits. A coarse
# stopping rule, ``tol=1e-2`` (stop once 10 epochs gain less than 1% of the
# mean reconstruction's loss), keeps the example fast. PCA is fitted on the
# same clean digits.
dae = DenoisingAutoencoder(
    n_components=32, noise="gaussian", noise_level=sigma, tol=1e-2, random_state=0
).fit(X_train)
pca = PCA(n_components=16, random_state=0).fit(X_train)

denoised = {
    "DenoisingAutoencoder": dae.inverse_transform(dae.transform(X_test_noisy)),
    "PCA(16)": pca.inverse_transform(pca.transform(X_test_noisy)),
}
print(f"noisy input: mean squared error {np.mean((X_test_noisy - X_test) ** 2):.4f}")
for name, X_hat in denoised.items():
    print(f"{name}: mean squared error {np.mean((X_hat - X_test) ** 2):.4f}")

# %%
# Before and after
# ----------------
# Rows: the clean test digits, their noisy versions, and the two
# reconstructions of the noisy versions.
rows = {"clean": X_test, f"noisy (σ = {sigma})": X_test_noisy, **denoised}
n_images = 10
fig, axes = plt.subplots(
    len(rows), n_images, figsize=(n_images, 1.15 * len(rows)), layout="constrained"
)
for axes_row, (name, images) in zip(axes, rows.items()):
    for ax, image in zip(axes_row, images[:n_images]):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks(())
        ax.set_yticks(())
    axes_row[0].set_ylabel(name, rotation=0, ha="right", va="center")
plt.show()
