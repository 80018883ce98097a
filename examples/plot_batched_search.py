"""
==================================================
Tuning λ, ρ and β at once with BatchedGridSearchCV
==================================================

:class:`~skae.model_selection.BatchedGridSearchCV` takes the arguments of
:class:`~sklearn.model_selection.GridSearchCV`, but trains every candidate
that shares an architecture, on every fold, as one stacked model. Each
candidate still trains on its own fold with its own seed, and ends with the
weights a separate ``fit`` would give it, to float32 rounding (which, over
many steps, can move a candidate's score in the third decimal).

Here it tunes a KL-sparse autoencoder (β = ``sparsity_weight``,
ρ = ``sparsity_target``) and an L1-sparse one (λ = ``sparsity_weight``) for
the accuracy of a logistic regression on their codes: one search over a
list of two grids, 14 candidates x 3 folds in all.
"""

# %%
# Search both grids
# -----------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skae import SparseAutoencoder
from skae.model_selection import BatchedGridSearchCV

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.3, stratify=y, random_state=0
)

pipe = make_pipeline(
    SparseAutoencoder(
        n_components=64,
        hidden_layer_sizes=(),
        learning_rate_init=0.01,
        tol=1e-2,
        random_state=0,
    ),
    LogisticRegression(max_iter=500),
)
betas = [1.0, 3.0, 10.0]
rhos = [0.02, 0.05, 0.1]
lambdas = [0.01, 0.03, 0.1, 0.3, 1.0]
grid = [
    {
        "sparseautoencoder__sparsity": ["kl"],
        "sparseautoencoder__sparsity_weight": betas,
        "sparseautoencoder__sparsity_target": rhos,
    },
    {
        "sparseautoencoder__sparsity": ["l1"],
        "sparseautoencoder__sparsity_weight": lambdas,
    },
]
search = BatchedGridSearchCV(pipe, grid, cv=3)
start = time.perf_counter()
search.fit(X_train, y_train)
print(
    f"{len(search.cv_results_['params'])} candidates x 3 folds in "
    f"{time.perf_counter() - start:.1f} s"
)
print("best parameters:", search.best_params_)
print(f"cross-validated accuracy: {search.best_score_:.3f}")
print(f"test accuracy: {search.score(X_test, y_test):.3f}")

# %%
# Cross-validated accuracy over the grids
# ---------------------------------------
# The KL candidates form a β x ρ table; the L1 candidates a curve over λ.
results = search.cv_results_
params = results["params"]
scores = results["mean_test_score"]
kl = np.full((len(betas), len(rhos)), np.nan)
l1 = np.full(len(lambdas), np.nan)
for p, score in zip(params, scores):
    weight = p["sparseautoencoder__sparsity_weight"]
    if p["sparseautoencoder__sparsity"] == "kl":
        rho = p["sparseautoencoder__sparsity_target"]
        kl[betas.index(weight), rhos.index(rho)] = score
    else:
        l1[lambdas.index(weight)] = score

fig, (ax_kl, ax_l1) = plt.subplots(1, 2, figsize=(10, 4))
image = ax_kl.imshow(kl, cmap="viridis", origin="lower")
ax_kl.set_xticks(range(len(rhos)), [str(r) for r in rhos])
ax_kl.set_yticks(range(len(betas)), [str(b) for b in betas])
ax_kl.set_xlabel("ρ (sparsity_target)")
ax_kl.set_ylabel("β (sparsity_weight)")
ax_kl.set_title("KL sparsity")
for i in range(len(betas)):
    for j in range(len(rhos)):
        ax_kl.text(j, i, f"{kl[i, j]:.3f}", ha="center", va="center", color="w")
fig.colorbar(image, ax=ax_kl, label="CV accuracy")

ax_l1.semilogx(lambdas, l1, marker="o")
ax_l1.set_xlabel("λ (sparsity_weight)")
ax_l1.set_ylabel("CV accuracy")
ax_l1.set_title("L1 sparsity")
fig.tight_layout()
plt.show()
