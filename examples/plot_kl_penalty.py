"""
=========================================
The KL sparsity penalty and its target ρ
=========================================

With ``sparsity="kl"``, :class:`~skae.SparseAutoencoder` adds

.. math::

    \\beta \\sum_{j=1}^{k} \\mathrm{KL}(\\rho \\,\\|\\, \\hat\\rho_j)
    = \\beta \\sum_{j=1}^{k} \\left[\\rho \\log\\frac{\\rho}{\\hat\\rho_j}
    + (1 - \\rho) \\log\\frac{1 - \\rho}{1 - \\hat\\rho_j}\\right]

to the reconstruction error, where :math:`\\hat\\rho_j` is the mean activation
of the logistic code unit :math:`j` over a minibatch, :math:`\\rho` is
``sparsity_target`` and :math:`\\beta` is ``sparsity_weight``. The first
figure draws the penalty of one unit as a function of :math:`\\hat\\rho_j`;
the second shows the mean activations that training reaches.
"""

# %%
# The penalty as a function of the mean activation
# ------------------------------------------------
# The divergence is zero at :math:`\hat\rho_j = \rho` and grows without bound
# as :math:`\hat\rho_j` approaches 0 or 1 (skae clamps :math:`\hat\rho_j` to
# :math:`[10^{-6}, 1 - 10^{-6}]`). It is asymmetric: it rises steeply below
# :math:`\rho`, so a unit that stops firing altogether is pushed back, and
# slowly above it. Its derivative,
# :math:`(1 - \rho) / (1 - \hat\rho_j) - \rho / \hat\rho_j`, is the force that
# pulls each unit's mean activation towards :math:`\rho`.

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skae import SparseAutoencoder
from skae.metrics import sparsity_summary


def kl_penalty(rho, rho_hat):
    """KL(rho || rho_hat) between Bernoulli distributions."""
    return rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))


def kl_gradient(rho, rho_hat):
    """Derivative of kl_penalty with respect to rho_hat."""
    return (1 - rho) / (1 - rho_hat) - rho / rho_hat


rho_hat = np.linspace(1e-3, 0.5, 500)
targets = [0.01, 0.05, 0.1, 0.2]

fig, (ax_value, ax_gradient) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for rho in targets:
    (line,) = ax_value.plot(rho_hat, kl_penalty(rho, rho_hat), label=rf"$\rho$ = {rho}")
    ax_gradient.plot(rho_hat, kl_gradient(rho, rho_hat), color=line.get_color())
    ax_value.axvline(rho, color=line.get_color(), linestyle=":", linewidth=1)
ax_value.set(
    xlabel=r"mean activation $\hat\rho_j$",
    ylabel=r"$\mathrm{KL}(\rho \,\|\, \hat\rho_j)$",
    ylim=(0, 0.6),
    title="Penalty of one unit",
)
ax_gradient.axhline(0, color="black", linewidth=0.8)
ax_gradient.set(
    xlabel=r"mean activation $\hat\rho_j$",
    ylabel=r"$\partial \mathrm{KL} / \partial \hat\rho_j$",
    ylim=(-10, 10),
    title="Its derivative",
)
ax_value.legend()
plt.show()

# %%
# Mean activations reached on digits
# ----------------------------------
# Three autoencoders are trained with the default ``sparsity_weight="auto"``
# and different targets ρ: β = 5 for ρ ≥ 0.05, and more for a smaller
# target (``5 * (0.05 / ρ) ** 1.5``, about 20 for ρ = 0.02).
# :func:`~skae.metrics.sparsity_summary` reports each unit's mean
# activation on held-out digits: the histograms centre on their targets. A
# coarse stopping rule, ``tol=1e-2`` (stop once 10 epochs gain less than 1%
# of the mean reconstruction's loss), keeps the example fast.

X, _ = load_digits(return_X_y=True)
X_train, X_test = train_test_split(X / 16.0, test_size=0.3, random_state=0)

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
bins = np.linspace(0, 0.16, 49)
for rho, color in zip([0.02, 0.05, 0.1], ["C0", "C1", "C2"]):
    sae = SparseAutoencoder(
        n_components=64,
        sparsity_target=rho,
        learning_rate_init=0.01,
        tol=1e-2,
        random_state=0,
    ).fit(X_train)
    mean_activation = sparsity_summary(sae, X_test).mean_activation
    ax.hist(mean_activation, bins=bins, alpha=0.6, color=color, label=f"ρ = {rho}")
    ax.axvline(rho, color=color, linestyle="--")
    print(f"rho={rho}: median mean activation {np.median(mean_activation):.3f}")
ax.set(
    xlabel="mean activation of a code unit on held-out digits",
    ylabel="number of units",
)
ax.legend()
plt.show()
