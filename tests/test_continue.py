"""warm_start and partial_fit: settings changed between calls take effect."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skae import Autoencoder, DenoisingAutoencoder, SparseAutoencoder


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(200, 8))


def _quiet_fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
def test_changed_training_settings_take_effect(X, method):
    """Check that set_params between calls reaches the network that goes on."""
    sae = SparseAutoencoder(
        n_components=3, max_iter=2, warm_start=method == "warm_start", random_state=0
    )
    _quiet_fit(sae, X) if method == "warm_start" else sae.partial_fit(X)
    sae.set_params(
        learning_rate_init=0.5, alpha=0.3, batch_size=7, sparsity_weight=123.0
    )
    _quiet_fit(sae, X) if method == "warm_start" else sae.partial_fit(X)
    net = sae.net_
    assert net.batch_size == 7
    assert net.weight_decay == 0.3
    assert net.lr == 0.5
    if method == "partial_fit":  # fit's adaptive schedule may lower it
        assert all(g["lr"] == 0.5 for g in net.optimizer_.param_groups)
    assert net.penalty.keywords["weight"] == 123.0


@pytest.mark.parametrize("before, after", [(0.0, 0.9), (0.5, 0.0)])
def test_changed_code_dropout_takes_effect(X, before, after):
    """Check that a new code_dropout reaches the module that goes on (and
    the training pass that serves it), as a fresh fit's would."""
    import pickle

    ae = Autoencoder(n_components=3, code_dropout=before, random_state=0)
    ae.partial_fit(X)
    unchanged = pickle.loads(pickle.dumps(ae)).partial_fit(X)
    ae.set_params(code_dropout=after)
    ae.partial_fit(X)
    assert ae.net_.module_.code_dropout == after
    assert (ae.net_.backprop_ is None) == (after > 0)
    assert not np.allclose(ae.transform(X), unchanged.transform(X))
    # A copy rebuilt from the parameters (skae.io, clone) agrees with it.
    copy = pickle.loads(pickle.dumps(ae))
    assert copy.net_.module_.code_dropout == after


def test_a_one_row_first_chunk_warns_that_it_sets_the_units(X):
    """Check that partial_fit warns when its first chunk, which sets the
    network's units, is one row (no spread), and only then."""
    with pytest.warns(UserWarning, match="first call sets the network's units"):
        Autoencoder(n_components=2, random_state=0).partial_fit(X[:1])
    ae = Autoencoder(n_components=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ae.partial_fit(X[:32])
        ae.partial_fit(X[:1])  # a later one-row chunk changes no unit


def test_changed_noise_takes_effect(X):
    """Check that a new noise level reaches partial_fit's corruption."""
    dae = DenoisingAutoencoder(n_components=3, noise_level=0.1, random_state=0)
    dae.partial_fit(X)
    dae.set_params(noise_level=0.7)
    dae.partial_fit(X)
    assert dae.net_.corrupt.keywords["level"] == 0.7


@pytest.mark.parametrize(
    "change",
    [
        {"n_components": 5},
        {"hidden_layer_sizes": ()},
        {"activation": "relu"},
        {"solver": "sgd"},
        {"loss": "binary_cross_entropy"},
    ],
)
@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
def test_changed_network_is_refused_and_nothing_is_lost(X, change, method):
    """Check that a change of what defines the network is a clear error, and
    the fitted model stays as it was."""
    X01 = (X - X.min()) / (X.max() - X.min())
    ae = Autoencoder(
        n_components=3,
        hidden_layer_sizes=(5,),
        max_iter=2,
        warm_start=True,
        random_state=0,
    )
    _quiet_fit(ae, X01)
    codes = ae.transform(X01)
    ae.set_params(**change)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"{name} from .* changed since it was built"):
        _quiet_fit(ae, X01) if method == "warm_start" else ae.partial_fit(X01)
    ae.set_params(
        **{
            name: Autoencoder(n_components=3, hidden_layer_sizes=(5,)).get_params()[
                name
            ]
        }
    )
    np.testing.assert_array_equal(ae.transform(X01), codes)
    # warm_start=False builds the new network.
    ae.set_params(warm_start=False, **change)
    _quiet_fit(ae, X01)
    assert ae.transform(X01).shape[1] == ae.n_components


def test_early_stopping_builds_the_network_on_the_training_part():
    """Check that the input units come from the rows trained on, not from
    the held-out validation rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    ae = Autoencoder(
        n_components=2,
        max_iter=2,
        early_stopping=True,
        validation_fraction=0.2,
        random_state=0,
    )
    _quiet_fit(ae, X)
    rows, _ = ae._split_validation(len(X), ae.net_.seed)
    train = X[rows]
    offset = ae.net_.module_.input_offset.cpu().numpy()
    np.testing.assert_allclose(offset, train.mean(axis=0), rtol=1e-6)
    assert not np.allclose(offset, X.mean(axis=0), rtol=1e-3)
