"""TopK and BatchTopK sparse autoencoders, the decoder's atoms, synthetic
superposition data and the dictionary metrics."""

import pickle

import numpy as np
import pytest
import torch

from skae import Autoencoder, SparseAutoencoder
from skae.datasets import _firing_probabilities, make_sparse_superposition
from skae.io import load, save
from skae.metrics import (
    fraction_of_variance_unexplained,
    matched_cosine_similarity,
    mean_max_cosine_similarity,
    sparsity_summary,
)

FAST = dict(max_iter=5, random_state=0, device="cpu")


pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def superposition():
    return make_sparse_superposition(
        n_samples=3000, n_features=16, n_atoms=32, n_active=3, random_state=0
    )


# ------------------------------------------------------------------- TopK


def _reference_mask(a, k):
    """Each row's k largest entries, by a stable descending sort."""
    order = np.argsort(-a, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(a.shape[-1]), axis=-1)
    return ranks < k


@pytest.mark.parametrize("n_units", [40, 700])  # NumPy's sort and torch.topk
@pytest.mark.parametrize("ties", [False, True])
def test_top_k_mask_marks_exactly_the_k_largest(n_units, ties):
    """Check the training-time selection of TopK (and of its batched form,
    a k per model) against a sort: exactly k per row, ties included."""
    from skae._nn.sparse_codes import top_k_mask

    rng = np.random.RandomState(0)
    a = rng.standard_normal((3, 50, n_units)).astype(np.float32)
    if ties:
        a = np.round(a)  # many equal values at the k-th place
    ks = np.array([1, 4, 9])
    for k in ks:
        mask = top_k_mask(torch.from_numpy(a), int(k)).numpy()
        assert (mask.sum(axis=-1) == k).all()
        if not ties:
            np.testing.assert_array_equal(mask, _reference_mask(a, k))
        # The marked entries are never smaller than the unmarked ones.
        kept = np.where(mask, a, np.inf).min(axis=-1)
        dropped = np.where(mask, -np.inf, a).max(axis=-1)
        assert (kept >= dropped).all()
    per_model = top_k_mask(torch.from_numpy(a), torch.as_tensor(ks).view(-1, 1, 1))
    np.testing.assert_array_equal(
        per_model.numpy().sum(axis=-1), np.broadcast_to(ks[:, None], (3, 50))
    )


@pytest.mark.parametrize("k", [1, 3, 7])
def test_topk_codes_have_at_most_k_nonzeros(superposition, k):
    X = superposition[0]
    sae = SparseAutoencoder(32, sparsity="topk", n_nonzero_coefs=k, **FAST).fit(X)
    codes = sae.transform(X)
    assert (codes >= 0).all()
    nonzero = (codes != 0).sum(axis=1)
    assert nonzero.max() <= k
    # Most rows use their whole budget (ReLU may drop a negative k-th value).
    assert nonzero.mean() > 0.8 * k
    assert sparsity_summary(sae, X).mean_active_units <= k


def test_topk_transform_is_the_training_forward(superposition):
    """Check that transform (NumPy on the CPU) keeps the units the training
    pass keeps, with the same values."""
    X = superposition[0][:500].astype(np.float32)
    sae = SparseAutoencoder(32, sparsity="topk", n_nonzero_coefs=4, **FAST).fit(X)
    with torch.enable_grad():
        codes = sae.net_.module_.encode(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(sae.transform(X), codes, rtol=1e-4, atol=1e-5)


def test_topk_default_k_and_bad_k(superposition):
    X = superposition[0][:200]
    sae = SparseAutoencoder(30, sparsity="topk", **FAST).fit(X)
    assert (sae.transform(X) != 0).sum(axis=1).max() <= 3  # 10% of 30
    every = SparseAutoencoder(4, sparsity="topk", n_nonzero_coefs=40, **FAST).fit(X)
    assert every.net_.module_.code_sparsity == ("topk", 4)
    ae = SparseAutoencoder(30, sparsity="topk", n_nonzero_coefs=2, **FAST).fit(X)
    with pytest.raises(ValueError, match="code layer"):
        ae.set_params(sparsity="l1", warm_start=True).fit(X)


# -------------------------------------------------------------- BatchTopK


def test_batch_topk_learns_a_threshold_and_infers_per_row(superposition):
    X = superposition[0].astype(np.float32)
    k = 3
    sae = SparseAutoencoder(
        32,
        sparsity="batch_topk",
        n_nonzero_coefs=k,
        max_iter=20,
        random_state=0,
        device="cpu",
    ).fit(X)
    threshold = float(sae.net_.module_.encoder[-1].threshold)
    assert threshold > 0
    codes = sae.transform(X)
    l0 = (codes != 0).sum(axis=1).mean()
    assert 0.5 * k <= l0 <= 1.5 * k
    # Per row: a row's codes do not depend on the rows around it (up to
    # rounding: the BLAS may sum a row differently at another position).
    rows = [0, 17, 1500, len(X) - 1]
    for i in rows:
        np.testing.assert_allclose(
            sae.transform(X[i : i + 1])[0], codes[i], rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(
        sae.transform(X[::-1])[::-1], codes, rtol=1e-5, atol=1e-6
    )
    # Every kept code is above the threshold.
    assert (codes[codes != 0] > threshold).all()


@pytest.mark.parametrize("sparsity", ["topk", "batch_topk"])
def test_topk_models_persist(superposition, sparsity, tmp_path):
    X = superposition[0][:400]
    sae = SparseAutoencoder(16, sparsity=sparsity, n_nonzero_coefs=2, **FAST).fit(X)
    expected = sae.transform(X)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(sae)).transform(X), expected
    )
    save(sae, tmp_path / "sae.skae")
    np.testing.assert_array_equal(load(tmp_path / "sae.skae").transform(X), expected)


# ------------------------------------------------------------ dictionary_


@pytest.mark.parametrize("loss", ["squared_error", "binary_cross_entropy"])
def test_dictionary_atoms_make_the_reconstruction(loss):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(300, 6)) * (100 if loss == "squared_error" else 1)
    ae = Autoencoder(3, hidden_layer_sizes=(), loss=loss, **FAST).fit(X)
    assert ae.dictionary_.shape == (3, 6)
    codes = ae.transform(X)
    out = ae.inverse_transform(codes)
    if loss == "binary_cross_entropy":
        out = np.log(out / (1 - out))  # back to logits
    constant = out - codes @ ae.dictionary_
    np.testing.assert_allclose(constant, constant[:1].repeat(len(X), 0), atol=1e-3)
    deep = Autoencoder(3, hidden_layer_sizes=(4,), **FAST).fit(X)
    assert not hasattr(deep, "dictionary_")
    assert not hasattr(deep, "components_")
    # Its error says why, as SVC's says why it has no coef_.
    with pytest.raises(AttributeError, match=r"dictionary_ only with hidden_layer"):
        _ = deep.dictionary_
    with pytest.raises(AttributeError, match="has no attribute 'no_such_'"):
        _ = deep.no_such_


# ----------------------------------------------------------------- data


def test_superposition_data_follow_their_definition():
    X, codes, atoms = make_sparse_superposition(
        n_samples=20000, n_features=10, n_atoms=40, n_active=4, random_state=0
    )
    assert X.shape == (20000, 10) and codes.shape == (20000, 40)
    np.testing.assert_allclose(np.linalg.norm(atoms, axis=1), 1.0)
    np.testing.assert_allclose(X, codes @ atoms)
    active = codes > 0
    assert abs(active.sum(axis=1).mean() - 4) < 0.1
    assert codes.max() <= 1 and codes.min() >= 0
    # Firing probabilities decay with the atom's index.
    rates = active.mean(axis=0)
    assert rates[:5].mean() > rates[-5:].mean()
    np.testing.assert_allclose(rates[-5:].mean() / rates[:5].mean(), 0.99**35, rtol=0.1)
    noisy, _, _ = make_sparse_superposition(
        n_samples=20000,
        n_features=10,
        n_atoms=40,
        n_active=4,
        noise=0.1,
        random_state=0,
    )
    np.testing.assert_allclose((noisy - X).std(), 0.1, rtol=0.05)


@pytest.mark.parametrize(
    "n_atoms, n_active", [(256, 5), (4096, 2048), (16384, 8192), (300, 300), (3, 2.5)]
)
def test_firing_probabilities_sum_to_n_active(n_atoms, n_active):
    """Check that the firing probabilities sum to n_active, each in [0, 1]
    and decaying, also when many atoms are clipped at 1 (the rescaling
    loop stopped after 100 rounds: 16384 atoms at 8192 fired 6731 on
    average, 18% short), and that every atom fires when n_active is
    n_atoms."""
    p = _firing_probabilities(n_atoms, n_active)
    assert p.shape == (n_atoms,)
    np.testing.assert_allclose(p.sum(), n_active, rtol=1e-9)
    assert p.min() >= 0 and p.max() <= 1 and (np.diff(p) <= 1e-15).all()
    if n_active == n_atoms:
        np.testing.assert_array_equal(p, 1.0)
    unclipped = p < 1
    ratios = p[unclipped][1:] / p[unclipped][:-1]
    np.testing.assert_allclose(ratios[ratios > 0], 0.99)


def test_correlated_superposition_keeps_the_rates():
    kwargs = dict(n_samples=20000, n_features=10, n_atoms=20, n_active=4)
    _, codes, _ = make_sparse_superposition(**kwargs, random_state=0)
    _, corr_codes, _ = make_sparse_superposition(
        **kwargs, correlation=0.9, random_state=0
    )
    rates, corr_rates = (codes > 0).mean(axis=0), (corr_codes > 0).mean(axis=0)
    np.testing.assert_allclose(corr_rates, rates, atol=0.02)

    def max_offdiagonal(c):
        r = np.corrcoef((c > 0).T)
        return np.abs(r - np.diag(np.diag(r))).max()

    assert max_offdiagonal(codes) < 0.05
    assert max_offdiagonal(corr_codes) > 0.2
    with pytest.raises(ValueError, match="n_active=50 exceeds n_atoms=20"):
        make_sparse_superposition(n_atoms=20, n_active=50)


# -------------------------------------------------------------- metrics


def test_cosine_similarity_metrics():
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(6, 5))
    shuffled = 3 * atoms[rng.permutation(6)]
    assert mean_max_cosine_similarity(atoms, shuffled) == pytest.approx(1.0)
    assert matched_cosine_similarity(atoms, shuffled) == pytest.approx(1.0)
    # A learned atom serving two true ones counts twice in MMCS, once in
    # the one-to-one matching.
    e = np.eye(3)
    learned = np.array([e[0], e[0], 0.6 * e[1] + 0.8 * e[2]])
    assert mean_max_cosine_similarity(e, learned) == pytest.approx((1 + 0.6 + 0.8) / 3)
    assert matched_cosine_similarity(e, learned) == pytest.approx((1 + 0 + 0.8) / 3)
    # Fewer learned atoms than true ones: the true atoms left unmatched
    # count 0 (matched stays at most MMCS), extra learned ones nothing.
    assert mean_max_cosine_similarity(atoms[:5], atoms) == pytest.approx(1.0)
    assert matched_cosine_similarity(atoms[:5], atoms) == pytest.approx(1.0)
    assert matched_cosine_similarity(e, e[:1]) == pytest.approx(1 / 3)
    assert mean_max_cosine_similarity(e, e[:1]) == pytest.approx(1 / 3)
    assert matched_cosine_similarity(atoms, atoms[:5]) <= mean_max_cosine_similarity(
        atoms, atoms[:5]
    )
    # The sign counts: an atom and its opposite are not the same atom.
    assert mean_max_cosine_similarity(e[:1], -e[:1]) == pytest.approx(-1.0)
    assert mean_max_cosine_similarity(e, -e) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="features"):
        mean_max_cosine_similarity(atoms, atoms[:, :3])
    # Scale-free at any magnitude: no norm overflows or underflows.
    for scale in (1e-170, 1e-160, 1e160, 1e300):
        for metric in (mean_max_cosine_similarity, matched_cosine_similarity):
            assert metric(scale * atoms, shuffled) == pytest.approx(1.0)
            assert metric(atoms, scale * shuffled) == pytest.approx(1.0)


def test_fraction_of_variance_unexplained():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4)) * [1, 10, 100, 0.1]
    linear = Autoencoder(
        4,
        hidden_layer_sizes=(),
        activation="identity",
        max_iter=300,
        tol=1e-3,
        random_state=0,
        device="cpu",
    ).fit(X)
    assert fraction_of_variance_unexplained(linear, X) < 1e-3
    one = Autoencoder(1, hidden_layer_sizes=(), activation="identity", **FAST).fit(X)
    fvu = fraction_of_variance_unexplained(one, X)
    assert 0.0 < fvu <= 1.0


def test_kl_moving_average_is_training_state(superposition):
    """Check that sparsity_momentum keeps a moving average of rho_hat on the
    module, updated by training batches only, and is fitted one by one by
    the batched search."""
    from sklearn.datasets import load_digits

    from skae.model_selection import BatchedGridSearchCV

    X = load_digits().data[:300] / 16
    sae = SparseAutoencoder(16, sparsity_momentum=0.9, **FAST).fit(X)
    average = sae.net_.module_.rho_hat_average
    assert average.shape == (16,)
    codes = sae.transform(X)
    np.testing.assert_allclose(average.numpy(), codes.mean(axis=0), atol=0.05)
    before = average.clone()
    sae.score(X)  # inference: no update
    assert torch.equal(sae.net_.module_.rho_hat_average, before)
    plain = SparseAutoencoder(16, **FAST).fit(X)
    assert not hasattr(plain.net_.module_, "rho_hat_average")
    assert sae.loss_curve_ != plain.loss_curve_
    with pytest.warns(UserWarning, match="no batched form"):
        search = BatchedGridSearchCV(sae, {"sparsity_weight": [1.0, 5.0]}, cv=2)
        search.fit(X)
    assert not search.batched_.any()


@pytest.mark.parametrize("sparsity", ["topk", "batch_topk"])
def test_sparsity_summary_counts_topk_codes_whatever_the_activation(
    superposition, sparsity
):
    """Check that the L0 of TopK codes is their count of non-zeros with a
    tanh or logistic ``activation`` (it applies to the hidden layers only;
    the summary counted codes above 0.5, 2.56 where the codes hold 3)."""
    from skae.metrics import sparsity_summary

    X = superposition[0]
    for activation in ("tanh", "logistic"):
        model = SparseAutoencoder(
            16,
            sparsity=sparsity,
            n_nonzero_coefs=3,
            activation=activation,
            hidden_layer_sizes=(16,),
            max_iter=3,
            random_state=0,
            device="cpu",
        ).fit(X)
        codes = model.transform(X)
        summary = sparsity_summary(model, X)
        assert summary.threshold == 0.0
        assert summary.mean_active_units == pytest.approx((codes != 0).sum(1).mean())
