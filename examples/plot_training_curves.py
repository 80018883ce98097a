"""
==========================================================
Training curves: learning-rate schedule and early stopping
==========================================================

Every estimator records the training loss of each epoch in ``loss_curve_``:
the reconstruction error summed over features and averaged over samples,
plus any penalty. Training stops at a *plateau*: when the monitored loss has
not improved by ``tol`` for ``n_iter_no_change`` consecutive epochs.

* ``learning_rate="constant"`` stops at the first plateau;
  ``learning_rate="adaptive"`` (the default) divides the learning rate by 10
  at each of the first two plateaus and stops at the third.
* ``early_stopping=True`` holds out ``validation_fraction`` of the data,
  monitors the loss on it instead of the training loss, records its negative
  in ``validation_scores_`` and restores the weights of the best epoch.

This example trains the same :class:`~skae.Autoencoder` on the digits in
these settings and draws the curves.
"""

# %%
# Train with each schedule
# ------------------------
# A network with one hidden layer of 128 units and a larger initial step
# than the default keep the example fast; each fit ends by its stopping
# rule (the adaptive schedule's after its third plateau, a few hundred
# epochs).

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skae import Autoencoder

X, _ = load_digits(return_X_y=True)
X_train, X_test = train_test_split(X / 16.0, test_size=0.3, random_state=0)

params = dict(
    n_components=16,
    hidden_layer_sizes=(128,),
    learning_rate_init=0.01,
    random_state=0,
)
constant = Autoencoder(learning_rate="constant", **params).fit(X_train)
adaptive = Autoencoder(learning_rate="adaptive", **params).fit(X_train)

for name, model in [("constant", constant), ("adaptive", adaptive)]:
    print(
        f"learning_rate={name!r}: {model.n_iter_} epochs, "
        f"test reconstruction error {-model.score(X_test):.5f}"
    )

# %%
# Both runs are identical up to the first plateau, where the constant
# schedule stops. The adaptive schedule goes on with a ten times smaller
# step, and the loss drops again: smaller steps average out the gradient
# noise of the minibatches.
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
for name, model, style in [
    ("adaptive", adaptive, {"color": "C1", "linewidth": 1.5}),
    ("constant", constant, {"color": "C0", "linewidth": 1.5, "linestyle": "--"}),
]:
    epochs = np.arange(1, model.n_iter_ + 1)
    ax.plot(epochs, model.loss_curve_, label=f"learning_rate={name!r}", **style)
ax.axvline(constant.n_iter_, color="gray", linestyle=":", label="first plateau")
ax.set(
    xlabel="epoch",
    ylabel="training loss (summed over the 64 pixels)",
    yscale="log",
    title="loss_curve_",
)
ax.legend()
plt.show()

# %%
# Early stopping
# --------------
# With ``early_stopping=True`` a fifth of the training data is held out. The
# training loss is the average over each epoch's batches while the weights
# change; the validation loss is measured on clean held-out samples with the
# weights at the end of the epoch. The weights of the best validation epoch
# are kept.
early = Autoencoder(
    learning_rate="constant", early_stopping=True, validation_fraction=0.2, **params
).fit(X_train)

validation_loss = -np.asarray(early.validation_scores_)
best_epoch = int(np.argmax(early.validation_scores_)) + 1
print(
    f"early stopping: {early.n_iter_} epochs, best epoch {best_epoch}, "
    f"test reconstruction error {-early.score(X_test):.5f}"
)

epochs = np.arange(1, early.n_iter_ + 1)
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
ax.plot(epochs, early.loss_curve_, label="training loss (loss_curve_)")
ax.plot(epochs, validation_loss, label="validation loss (-validation_scores_)")
ax.axvline(best_epoch, color="gray", linestyle=":", label="best epoch, restored")
ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="early_stopping=True")
ax.legend()
plt.show()
