"""
====================================================
Anomaly detection with the reconstruction error
====================================================

An autoencoder trained on normal data reconstructs normal samples well and
unusual ones badly. ``score_samples(X)`` returns the negative reconstruction
error of each sample (its loss averaged over features), with
scikit-learn's sign convention: the lower the score, the more abnormal the
sample.

:class:`~skae.AutoencoderOutlierDetector` wraps an autoencoder as a
scikit-learn outlier detector: ``decision_function`` and ``predict`` (-1
for an outlier) with a threshold set by ``contamination``.

The digits 0 to 8 are the normal class here and the 9s are the anomalies.
The detector, trained on normal digits only, is compared with
:class:`~sklearn.ensemble.IsolationForest` by the ROC curve of their scores
on held-out normal digits and on every 9.
"""

# %%
# Normal training data, mixed test data
# -------------------------------------

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.metrics import RocCurveDisplay
from sklearn.model_selection import train_test_split

from skae import Autoencoder, AutoencoderOutlierDetector

X, y = load_digits(return_X_y=True)
X = X / 16.0
is_normal = y != 9
X_train, X_normal_test = train_test_split(X[is_normal], test_size=0.3, random_state=0)
X_test = np.vstack([X_normal_test, X[~is_normal]])
is_anomaly = np.r_[np.zeros(len(X_normal_test)), np.ones(np.sum(~is_normal))]
print(f"{len(X_train)} normal training digits")
print(f"test: {len(X_normal_test)} normal digits and {int(is_anomaly.sum())} nines")

# %%
# Fit both detectors
# ------------------
# The autoencoder has the default encoder layers (256, 128) and an 8-unit
# code; a coarse stopping rule (``tol=1e-2``) keeps the example fast. Both
# detectors score higher for
# more normal samples, so the anomaly score is the negative of
# ``score_samples``.
detector = AutoencoderOutlierDetector(
    Autoencoder(n_components=8, tol=1e-2, random_state=0), contamination=0.05
).fit(X_train)
autoencoder = detector.estimator_
forest = IsolationForest(random_state=0).fit(X_train)

anomaly_scores = {
    "Autoencoder reconstruction error": -detector.score_samples(X_test),
    "IsolationForest": -forest.score_samples(X_test),
}
# The threshold is the training scores' 5% quantile, and the training digits
# are reconstructed better than unseen ones: far more than 5% of the
# held-out normal digits fall below it (the rate is printed below). Where
# the rate of false alarms matters, set the threshold on held-out normal
# data instead.
flagged = detector.predict(X_test) == -1
print(
    f"flagged: {flagged[is_anomaly == 1].mean():.0%} of the nines, "
    f"{flagged[is_anomaly == 0].mean():.0%} of the normal test digits"
)

fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
for name, score in anomaly_scores.items():
    RocCurveDisplay.from_predictions(is_anomaly, score, name=name, ax=ax)
ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
ax.set_title("Nines among the digits 0-8")
ax.legend(loc="lower right")
plt.show()

# %%
# The least and the most normal test digits
# -----------------------------------------
# The held-out digits with the highest and the lowest reconstruction error,
# with their reconstructions below them.
error = anomaly_scores["Autoencoder reconstruction error"]
order = np.argsort(error)
shown = np.r_[order[-6:][::-1], order[:6]]
reconstructions = autoencoder.inverse_transform(autoencoder.transform(X_test[shown]))

fig, axes = plt.subplots(2, 12, figsize=(12, 2.6), layout="constrained")
for column, (index, reconstruction) in enumerate(zip(shown, reconstructions)):
    for ax, image in zip(axes[:, column], [X_test[index], reconstruction]):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks(())
        ax.set_yticks(())
    label = "9" if is_anomaly[index] else "0-8"
    axes[0, column].set_title(f"{label}\n{error[index]:.3f}", fontsize=9)
axes[0, 0].set_ylabel("input")
axes[1, 0].set_ylabel("output")
fig.suptitle("Highest (left) and lowest (right) reconstruction error")
plt.show()
