"""
=====================================================
Sparse autoencoder features for digit classification
=====================================================

A :class:`~skae.SparseAutoencoder` learns 100 sparse features from the 8x8
digit images, and a :class:`~sklearn.linear_model.LogisticRegression` classifies
the digits from those features. The kind of sparsity (KL or L1), the
penalty's weight (β for KL, λ for L1: ``sparsity_weight``) and the KL target
mean activation ρ (``sparsity_target``) are tuned by
:class:`~sklearn.model_selection.GridSearchCV`, exactly as any other pipeline
parameter.

The tuned pipeline is compared on the same train/test split with two
baselines: a logistic regression on the raw pixels, and one on PCA
components (with the number of components tuned the same way).
"""

# %%
# Load the digits and scale the pixels to [0, 1]
# -----------------------------------------------
# Pixel intensities range from 0 to 16. Dividing by 16 puts them in [0, 1],
# which suits the binary cross-entropy reconstruction loss used below.
import time

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline

from skae import SparseAutoencoder

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)

# %%
# Tune a sparse autoencoder inside a pipeline
# -------------------------------------------
# ``sparsity="kl"`` penalises the divergence between each code unit's mean
# activation and the target ρ, weighted by β. With
# ``sparsity="l1"`` the same ``sparsity_weight`` parameter is λ, the weight of
# an L1 penalty on the codes. The grid searches both kinds: β × ρ for KL,
# λ for L1. ``device="auto"`` trains on a GPU when one is
# available. A larger step than the default ``learning_rate_init`` and a
# coarse stopping rule, ``tol=1e-2`` (stop once 10 epochs gain less than 1%
# of the mean reconstruction's loss), keep the search fast; every fit still
# ends by its stopping rule.

sparse_pipe = make_pipeline(
    SparseAutoencoder(
        n_components=100,
        sparsity="kl",
        loss="binary_cross_entropy",
        learning_rate_init=0.01,
        tol=1e-2,
        random_state=0,
        device="auto",
    ),
    LogisticRegression(max_iter=2000),
)
sparse_grid = [
    {
        "sparseautoencoder__sparsity": ["kl"],
        "sparseautoencoder__sparsity_weight": [0.03, 0.1, 0.3],  # β
        "sparseautoencoder__sparsity_target": [0.05, 0.1],  # ρ
    },
    {
        "sparseautoencoder__sparsity": ["l1"],
        "sparseautoencoder__sparsity_weight": [0.01, 0.1],  # λ
    },
]

# %%
# Baselines on the same split
# ---------------------------
pca_pipe = make_pipeline(PCA(random_state=0), LogisticRegression(max_iter=2000))
pca_grid = {"pca__n_components": [16, 32, 48]}

raw_pipe = make_pipeline(LogisticRegression(max_iter=2000))

searches = {
    "raw pixels + logistic": GridSearchCV(raw_pipe, {}, cv=3, n_jobs=1),
    "PCA + logistic": GridSearchCV(pca_pipe, pca_grid, cv=3, n_jobs=1),
    "sparse AE + logistic": GridSearchCV(sparse_pipe, sparse_grid, cv=3, n_jobs=1),
}

rows = []
for name, search in searches.items():
    start = time.perf_counter()
    search.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    params = ", ".join(
        f"{key.split('__')[-1]}={value}" for key, value in search.best_params_.items()
    )
    cv_score, test_score = search.best_score_, search.score(X_test, y_test)
    rows.append(
        (name, params or "-", f"{cv_score:.3f}", f"{test_score:.3f}", f"{seconds:.1f}")
    )

# %%
# Results
# -------
# Cross-validated accuracy (3 folds of the training set) of the best
# parameters, accuracy on the held-out test set, and the time the whole search
# took.
header = ("model", "best parameters", "CV acc.", "test acc.", "time (s)")
width = max(len(row[1]) for row in [header, *rows])
template = "{:<22}  {:<" + str(width) + "}  {:>8}  {:>9}  {:>8}"
print(template.format(*header))
print("-" * len(template.format(*header)))
for row in rows:
    print(template.format(*row))
