"""Dead-unit revival (AuxK) of the top-k sparse autoencoders, and the dead
fraction recorded per epoch."""

import copy
import pickle

import numpy as np
import pytest
import torch

from skae import SparseAutoencoder
from skae._nn.objectives import auxk_loss
from skae._nn.sparse_codes import TopK, update_since_fired
from skae.datasets import make_sparse_superposition

# Settings where TopK leaves about a third of its 64 units dead without
# revival (measured: 0.36 of them inactive over the last epoch).
DYING = dict(
    n_components=64,
    sparsity="topk",
    n_nonzero_coefs=2,
    loss="squared_error",
    max_iter=30,
    batch_size=50,
    learning_rate_init=1e-2,
    tol=0.0,
    random_state=0,
    device="cpu",
)


pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def X():
    X, _, _ = make_sparse_superposition(
        n_samples=1000, n_features=16, n_atoms=32, n_active=2, random_state=0
    )
    return X


@pytest.mark.parametrize("k_aux", [2, 4])
def test_auxk_loss_is_its_definition(k_aux):
    """Check auxk_loss against a loop over rows in float64 (with fewer and
    more dead units than k_aux), and that its gradient reaches the dead
    units' pre-activations only."""
    rng = np.random.default_rng(0)
    n, u, f = 7, 6, 4
    pre = rng.normal(size=(n, u))
    dead = np.array([True, False, True, True, False, False])
    residual = rng.normal(size=(n, f))
    W = rng.normal(size=(f, u))
    expected = 0.0
    for row in range(n):
        codes = np.zeros(u)
        candidates = np.flatnonzero(dead)
        top = candidates[np.argsort(-pre[row, candidates])[:k_aux]]
        codes[top] = np.maximum(pre[row, top], 0)
        expected += np.sum((W @ codes - residual[row]) ** 2) / n
    expected *= min(dead.sum() / k_aux, 1.0)
    pre_t = torch.tensor(pre, requires_grad=True)
    loss = auxk_loss(
        pre_t, torch.tensor(dead), torch.tensor(residual), torch.tensor(W), k_aux
    )
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    loss.backward()
    assert pre_t.grad[:, ~dead].abs().sum() == 0
    assert pre_t.grad[:, dead].abs().sum() > 0
    # No dead unit: no loss.
    none_dead = torch.zeros(u, dtype=torch.bool)
    assert auxk_loss(pre_t, none_dead, torch.tensor(residual), torch.tensor(W), 2) == 0


def test_units_count_the_rows_since_they_fired():
    """Check that a TopK layer in training counts, per unit, the rows since
    it was last active, and that evaluation and pickling leave no batch."""
    counts = torch.zeros(3)
    update_since_fired(counts, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(counts, [0, 2, 2])
    update_since_fired(counts, torch.tensor([[0.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(counts, [1, 3, 0])

    layer = TopK(1, 3).train()
    a = torch.tensor([[3.0, 1.0, 0.0], [2.0, 1.0, 0.5]], requires_grad=True)
    layer(a)
    np.testing.assert_array_equal(layer.samples_since_fired, [0, 2, 2])
    assert layer.pre_activation is a
    assert "pre_activation" not in pickle.loads(pickle.dumps(layer)).__dict__
    copy.deepcopy(layer)  # the graph tensor is not copied
    layer.eval()(a)
    np.testing.assert_array_equal(layer.samples_since_fired, [0, 2, 2])


def test_revival_revives_dead_units(X):
    """Check that AuxK leaves far fewer dead units than no revival, and that
    the recorded dead fraction is that of the fitted codes."""
    dead = {}
    for weight in (0.0, "auto"):
        model = SparseAutoencoder(revival_weight=weight, **DYING).fit(X)
        history = model.net_.history[:, "dead_fraction"]
        assert len(history) == model.n_iter_
        dead[weight] = history[-1]
        # Units inactive over the last epoch are (nearly) those inactive on
        # X with the final weights.
        never_active = 1 - (model.transform(X) > 0).any(axis=0).mean()
        assert abs(history[-1] - never_active) <= 2 / 64
    assert dead[0.0] > 0.25
    assert dead["auto"] < dead[0.0] - 0.1


def test_dead_fraction_is_the_epoch_inactive_units(X):
    """Check the first epoch's dead fraction against the codes of a model
    that barely moves in that epoch."""
    params = {**DYING, "max_iter": 1, "learning_rate_init": 1e-9}
    model = SparseAutoencoder(revival_weight=0.0, **params).fit(X)
    inactive = 1 - (model.transform(X) > 0).any(axis=0).mean()
    assert model.net_.history[-1, "dead_fraction"] == pytest.approx(inactive)


def test_revival_window_counts_training_rows(X):
    """Check that a unit counts as dead only after dead_unit_window rows: a
    window longer than training revives nothing (the fit equals no revival)."""
    params = {**DYING, "max_iter": 3}
    none = SparseAutoencoder(revival_weight=0.0, **params).fit(X)
    long = SparseAutoencoder(dead_unit_window=10**6, **params).fit(X)
    short = SparseAutoencoder(dead_unit_window=50, **params).fit(X)
    np.testing.assert_array_equal(long.dictionary_, none.dictionary_)
    assert not np.allclose(short.dictionary_, none.dictionary_)


def test_auto_window_is_forty_average_firings_at_most_an_epoch(X):
    """Check that dead_unit_window="auto" is 40 * n_components / k rows
    when that is shorter than an epoch, and one epoch otherwise."""
    params = {**DYING, "max_iter": 3}
    del params["n_nonzero_coefs"]

    def fit(k, window):
        return SparseAutoencoder(
            n_nonzero_coefs=k, dead_unit_window=window, **params
        ).fit(X)

    # k=4: 40 * 64 / 4 = 640 rows of the 1000.
    auto = fit(4, "auto").dictionary_
    np.testing.assert_array_equal(auto, fit(4, 640).dictionary_)
    assert not np.allclose(auto, fit(4, len(X)).dictionary_)
    # k=2: 1280 rows, longer than the epoch.
    np.testing.assert_array_equal(
        fit(2, "auto").dictionary_, fit(2, len(X)).dictionary_
    )


def test_auto_window_of_partial_fit_does_not_follow_its_chunks(X):
    """Check that partial_fit's "auto" window is 40 * n_components / k rows
    whatever its chunks' sizes (rows count across its calls): a short last
    chunk of a stream trains as with that window given, not as with a
    window of the chunk's length."""
    params = {**DYING, "n_nonzero_coefs": 2, "max_iter": 1}

    def stream(window):
        model = SparseAutoencoder(dead_unit_window=window, **params)
        for start in range(0, 1010, 500):  # chunks of 500, 500 and 10 rows
            model.partial_fit(X[start : start + 500] if start < 1000 else X[:10])
        return model.dictionary_

    # k=2: 40 * 64 / 2 = 1280 rows, longer than every chunk.
    auto = stream("auto")
    np.testing.assert_array_equal(auto, stream(1280))
    assert not np.allclose(auto, stream(10))


def test_revival_needs_one_decoder_layer_and_squared_error(X):
    """Check that an explicit revival weight where AuxK does not apply is an
    error that says what to do, and that "auto" turns it off there."""
    params = {**DYING, "max_iter": 2}
    with pytest.raises(ValueError, match=r"one-layer decoder.*revival_weight=0"):
        SparseAutoencoder(hidden_layer_sizes=(8,), revival_weight=0.1, **params).fit(X)
    with pytest.raises(ValueError, match=r"squared error.*revival_weight=0"):
        SparseAutoencoder(
            **{**params, "loss": "binary_cross_entropy"}, revival_weight=0.1
        ).fit(np.clip(X, 0, 1))
    model = SparseAutoencoder(hidden_layer_sizes=(8,), **params).fit(X)
    assert model.net_.penalty is None
