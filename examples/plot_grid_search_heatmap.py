"""
===============================================
Tuning sparsity for a classifier by grid search
===============================================

A :class:`~skae.SparseAutoencoder` is a transformer, so it tunes like any
step of a :class:`~sklearn.pipeline.Pipeline`: here its KL penalty weight
β (``sparsity_weight``) and target rate ρ (``sparsity_target``) are searched
by :class:`~sklearn.model_selection.GridSearchCV` for the accuracy of a
:class:`~sklearn.linear_model.LogisticRegression` trained on the codes.

The grid is kept tiny (2 x 3 settings, 3 folds) and the stopping rule
coarse (``tol=1e-2``: stop once 10 epochs gain less than 1% of the mean
reconstruction's loss) so that the example runs in well under a minute; a
real search would train longer and cover more values.
"""

# %%
# Search the grid
# ---------------

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline

from skae import SparseAutoencoder

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.3, stratify=y, random_state=0
)

pipe = make_pipeline(
    SparseAutoencoder(
        n_components=64, learning_rate_init=0.01, tol=1e-2, random_state=0
    ),
    LogisticRegression(max_iter=500),
)
weights = [1.0, 5.0]  # β
targets = [0.02, 0.05, 0.1]  # ρ
search = GridSearchCV(
    pipe,
    {
        "sparseautoencoder__sparsity_weight": weights,
        "sparseautoencoder__sparsity_target": targets,
    },
    cv=3,
)
search.fit(X_train, y_train)

print("best parameters:", search.best_params_)
print(f"cross-validated accuracy: {search.best_score_:.3f}")
print(f"test accuracy: {search.score(X_test, y_test):.3f}")

# %%
# Draw the accuracies as a heatmap
# --------------------------------
# ``cv_results_`` holds the parameters of each candidate (``"params"``) and
# its accuracy averaged over the folds (``"mean_test_score"``).
results = search.cv_results_
scores = np.empty((len(targets), len(weights)))
for params, score in zip(results["params"], results["mean_test_score"]):
    i = targets.index(params["sparseautoencoder__sparsity_target"])
    j = weights.index(params["sparseautoencoder__sparsity_weight"])
    scores[i, j] = score

fig, ax = plt.subplots(figsize=(4.5, 4), layout="constrained")
image = ax.imshow(scores, cmap="viridis", origin="lower")
for i in range(len(targets)):
    for j in range(len(weights)):
        light = scores[i, j] > scores.min() + 0.6 * np.ptp(scores)
        color = "black" if light else "white"
        ax.text(j, i, f"{scores[i, j]:.3f}", ha="center", va="center", color=color)
ax.set_xticks(range(len(weights)), [str(w) for w in weights])
ax.set_yticks(range(len(targets)), [str(t) for t in targets])
ax.set(
    xlabel="sparsity_weight (β)",
    ylabel="sparsity_target (ρ)",
    title="Mean cross-validated accuracy",
)
fig.colorbar(image, ax=ax, shrink=0.8)
plt.show()
