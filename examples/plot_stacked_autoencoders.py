"""
==========================================
Stacked autoencoders in a pipeline
==========================================

Autoencoders stack: in a :class:`~sklearn.pipeline.Pipeline`, the second
autoencoder is trained on the codes of the first, the third on the codes of
the second, and so on. This is the greedy layer-wise training of stacked
autoencoders: each layer learns a representation of the one below it, and a
classifier is trained on the top codes.

Here two :class:`~skae.SparseAutoencoder` steps (64 pixels to 200 codes to
100 codes) feed a :class:`~sklearn.linear_model.LogisticRegression`, compared
with the same classifier on one autoencoder's codes and on the raw pixels.
"""

# %%
# Three pipelines
# ---------------
# The pixels are scaled to [0, 1] and the KL-sparse codes lie in (0, 1), so
# every autoencoder trains with binary cross-entropy (``loss="auto"``). A
# coarse stopping rule, ``tol=1e-2`` (stop once 10 epochs gain less than 1%
# of the mean reconstruction's loss), keeps the example fast. Every pipeline
# ends in the same weakly regularised
# logistic regression (``C=100``).
import time

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from skae import SparseAutoencoder

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.3, stratify=y, random_state=0
)


def sparse_autoencoder(n_components):
    return SparseAutoencoder(
        n_components=n_components,
        learning_rate_init=0.01,
        tol=1e-2,
        random_state=0,
    )


def classifier():
    return LogisticRegression(C=100, max_iter=3000)


pipelines = {
    "raw pixels": Pipeline([("classifier", classifier())]),
    "64 → 200": Pipeline(
        [
            ("layer1", sparse_autoencoder(200)),
            ("classifier", classifier()),
        ]
    ),
    "64 → 200 → 100": Pipeline(
        [
            ("layer1", sparse_autoencoder(200)),
            ("layer2", sparse_autoencoder(100)),
            ("classifier", classifier()),
        ]
    ),
}

accuracy = {}
for name, pipeline in pipelines.items():
    start = time.perf_counter()
    pipeline.fit(X_train, y_train)
    accuracy[name] = pipeline.score(X_test, y_test)
    seconds = time.perf_counter() - start
    print(f"{name}: test accuracy {accuracy[name]:.3f} ({seconds:.1f} s)")

# %%
# Each step keeps its own fitted attributes: the second layer saw 200 input
# features, the codes of the first.
stack = pipelines["64 → 200 → 100"]
print(stack["layer2"].n_features_in_, stack[:-1].get_feature_names_out()[:3])

# %%
# Test accuracy
# -------------
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
bars = ax.barh(list(accuracy), list(accuracy.values()), color=["C7", "C0", "C1"])
ax.bar_label(bars, fmt="%.3f", padding=3)
ax.set(
    xlim=(0.8, 1.0),
    xlabel="test accuracy of the logistic regression",
    title="Features for digit classification",
)
ax.invert_yaxis()
plt.show()
