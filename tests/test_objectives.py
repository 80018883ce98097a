"""The objectives (losses and penalties) and the denoising corruption.

Every quantity is checked against an independent float64 computation: a
direct NumPy formula, central finite differences (a UFLDL-style gradient
check) or exact Jacobians from ``torch.func`` computed here. Statistical
checks use tolerances of a few standard errors, derived from the draws or
from the known distribution.
"""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)
from skae._engine import net as _engine
from skae._engine.net import AutoencoderNet
from skae._nn.modules import AutoencoderModule
from skae._nn.objectives import (
    contractive_closed_form,
    contractive_exact,
    contractive_projection,
    kl_divergence_sparsity,
    kl_divergence_sparsity_gradient,
    l1_sparsity,
    reconstruction_error,
)
from skae._sparsity_penalties import _l1_penalty

pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)

F64 = torch.float64
ACTIVATIONS = {
    "identity": lambda a: a,
    "logistic": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
}
# Central differences in float64: truncation ~ step**2, round-off ~ 1e-16 / step.
STEP = 1e-6
GRAD_RTOL = 1e-7


# --------------------------------------------------------------- helpers


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _numeric_grad(f, theta, step=STEP):
    """Central finite differences of the scalar f at theta, entry by entry."""
    theta = theta.detach().clone()
    grad = torch.empty_like(theta)
    flat, gflat = theta.view(-1), grad.view(-1)
    with torch.no_grad():
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + step
            up = float(f(theta))
            flat[i] = old - step
            down = float(f(theta))
            flat[i] = old
            gflat[i] = (up - down) / (2 * step)
    return grad


def _autograd_grad(f, theta):
    theta = theta.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(theta), theta)
    return grad


def _rel_error(a, b):
    """UFLDL's gradient-check error ||a - b|| / ||a + b||."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(a + b)


def _check_gradient(f, theta):
    analytic = _autograd_grad(f, theta)
    numeric = _numeric_grad(f, theta)
    assert np.linalg.norm(numeric) > 1e-3  # a gradient worth checking
    assert _rel_error(analytic, numeric) < GRAD_RTOL


def _fd_jacobians(g, X, step=STEP):
    """Per-row Jacobians of a row-wise map g by central differences.

    Returns an array of shape (n_samples, n_out, n_features).
    """
    X = X.detach()
    columns = []
    with torch.no_grad():
        for i in range(X.shape[1]):
            E = torch.zeros_like(X)
            E[:, i] = step
            columns.append((g(X + E) - g(X - E)) / (2 * step))
    return torch.stack(columns, dim=-1).numpy()


def _kl_numpy(H, rho):
    rho_hat = H.mean(axis=0)
    return np.sum(
        rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    )


def _l1_numpy(H, W_dec):
    return np.mean(np.sum(np.abs(H) * np.linalg.norm(W_dec, axis=0), axis=1))


def _deep_tanh_module(rng, n_features=6, n_components=3, hidden=(8, 5)):
    """A float64 skae module with tanh layers and weights drawn from rng."""
    with torch.random.fork_rng(devices=[]):  # leave the global stream alone
        module = AutoencoderModule(n_features, n_components, hidden, "tanh")
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(_t(rng.normal(scale=0.7, size=tuple(p.shape))))
    return module


def _frobenius_numpy(J):
    """Mean over samples of the squared Frobenius norm of (B, k, n) Jacobians."""
    return np.mean(np.sum(J**2, axis=(1, 2)))


# ----------------------------------------------------------- KL sparsity


def test_kl_sparsity_matches_numpy_formula():
    """Check that the KL penalty equals sum_j KL(rho || mean_b h_bj) by NumPy."""
    rng = np.random.default_rng(0)
    H = 1 / (1 + np.exp(-rng.normal(-1.0, 1.5, size=(40, 7))))
    for rho in (0.01, 0.05, 0.3):
        value = kl_divergence_sparsity(_t(H), rho)
        assert value.dtype == F64 and value.shape == ()
        np.testing.assert_allclose(float(value), _kl_numpy(H, rho), rtol=1e-12)
    # Zero exactly when every unit's mean activation is the target.
    H_at_target = np.full((10, 4), 0.2)
    assert float(kl_divergence_sparsity(_t(H_at_target), 0.2)) == pytest.approx(
        0.0, abs=1e-15
    )


def test_kl_sparsity_gradient_wrt_codes_matches_finite_differences():
    """Check that the KL penalty's gradient w.r.t. the codes passes a gradient check."""
    rng = np.random.default_rng(1)
    H = _t(1 / (1 + np.exp(-rng.normal(-1.0, 1.0, size=(12, 5)))))
    _check_gradient(lambda h: kl_divergence_sparsity(h, 0.05), H)


def test_kl_sparsity_gradient_wrt_encoder_weights_matches_finite_differences():
    """Check that d KL / d(W, b) through h = sigmoid(x W^T + b) passes a grad check."""
    rng = np.random.default_rng(2)
    X = _t(rng.normal(size=(20, 7)))
    W = _t(rng.normal(scale=0.4, size=(5, 7)))
    b = _t(rng.normal(-1.0, 0.5, size=5))
    rho = 0.05
    _check_gradient(
        lambda w: kl_divergence_sparsity(torch.sigmoid(X @ w.T + b), rho), W
    )
    _check_gradient(
        lambda c: kl_divergence_sparsity(torch.sigmoid(X @ W.T + c), rho), b
    )


def test_kl_sparsity_with_model_axis_equals_separate_calls():
    """Check that codes (M, B, k) with targets (M, 1) give M separate penalties."""
    rng = np.random.default_rng(3)
    H = 1 / (1 + np.exp(-rng.normal(-1.0, 1.0, size=(4, 25, 6))))
    rhos = np.array([0.01, 0.05, 0.1, 0.4])
    value = kl_divergence_sparsity(_t(H), _t(rhos[:, None]))
    assert value.shape == (4,)
    for m in range(4):
        separate = kl_divergence_sparsity(_t(H[m]), float(rhos[m]))
        np.testing.assert_allclose(float(value[m]), float(separate), rtol=1e-13)
        expected = _kl_numpy(H[m], rhos[m])
        np.testing.assert_allclose(float(value[m]), expected, rtol=1e-12)


def test_kl_sparsity_stays_finite_for_saturated_codes():
    """Check that dead or saturated units give a finite KL penalty and gradient."""
    H = torch.cat([torch.zeros(8, 2, dtype=F64), torch.ones(8, 2, dtype=F64)], dim=1)
    H.requires_grad_(True)
    value = kl_divergence_sparsity(H, 0.05)
    (grad,) = torch.autograd.grad(value, H)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    # Larger than for units far from their target but not saturated.
    assert float(value) > _kl_numpy(np.full((8, 4), 0.5), 0.05)


# ----------------------------------------------------------- L1 sparsity


def test_l1_sparsity_matches_numpy_formula():
    """Check that the L1 penalty equals mean_b sum_j |h_bj| ||W_dec[:, j]|| by NumPy."""
    rng = np.random.default_rng(4)
    H = rng.normal(size=(30, 6))
    W_dec = rng.normal(size=(9, 6)) * rng.uniform(0.1, 3.0, size=6)
    value = l1_sparsity(_t(H), _t(W_dec))
    assert value.dtype == F64 and value.shape == ()
    np.testing.assert_allclose(float(value), _l1_numpy(H, W_dec), rtol=1e-12)


def test_l1_sparsity_gradients_match_finite_differences():
    """Check that the L1 gradients w.r.t. codes and decoder weight pass a grad check."""
    rng = np.random.default_rng(5)
    # Codes kept away from the kink of |h| at 0.
    H = _t(rng.choice([-1.0, 1.0], size=(10, 5)) * rng.uniform(0.2, 1.5, size=(10, 5)))
    W_dec = _t(rng.normal(size=(8, 5)))
    _check_gradient(lambda h: l1_sparsity(h, W_dec), H)
    _check_gradient(lambda w: l1_sparsity(H, w), W_dec)


def test_l1_sparsity_with_model_axis_equals_separate_calls():
    """Check that codes (M, B, k), decoder weights (M, n, k) give M penalties."""
    rng = np.random.default_rng(6)
    H = np.maximum(rng.normal(size=(3, 20, 6)), 0)
    W_dec = rng.normal(size=(3, 9, 6))
    value = l1_sparsity(_t(H), _t(W_dec))
    assert value.shape == (3,)
    for m in range(3):
        separate = l1_sparsity(_t(H[m]), _t(W_dec[m]))
        np.testing.assert_allclose(float(value[m]), float(separate), rtol=1e-13)
        expected = _l1_numpy(H[m], W_dec[m])
        np.testing.assert_allclose(float(value[m]), expected, rtol=1e-12)


def test_l1_penalty_cannot_be_lowered_by_rescaling_codes_and_decoder():
    """Check that codes / c and decoder weights * c leave the L1 penalty unchanged."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    sae = SparseAutoencoder(
        n_components=6,
        sparsity="l1",
        sparsity_weight=0.1,
        max_iter=5,
        device="cpu",
        random_state=0,
    ).fit(X)
    module = copy.deepcopy(sae.net_.module_).double().eval()
    assert module.activation == "relu"
    x = _t(X)
    c = 10.0

    def measure(module):
        with torch.no_grad():
            codes, output = module(x)
            penalty = _l1_penalty(module, x, codes, None, weight=sae.sparsity_weight)
            naive = codes.abs().sum(dim=-1).mean()
        return codes, output, float(penalty), float(naive)

    codes, output, penalty, naive = measure(module)
    assert (codes > 0).float().mean() > 0.2  # live codes: a real test
    # The penalty the estimator uses is lambda times the weighted formula.
    np.testing.assert_allclose(
        penalty,
        sae.sparsity_weight
        * _l1_numpy(codes.numpy(), module.decoder_input_layer.weight.detach().numpy()),
        rtol=1e-12,
    )

    with torch.no_grad():
        module.code_layer.weight /= c
        module.code_layer.bias /= c
        module.decoder_input_layer.weight *= c
    codes_c, output_c, penalty_c, naive_c = measure(module)

    np.testing.assert_allclose(codes_c.numpy(), codes.numpy() / c, rtol=1e-12)
    np.testing.assert_allclose(output_c.numpy(), output.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(penalty_c, penalty, rtol=1e-12)
    np.testing.assert_allclose(naive_c, naive / c, rtol=1e-12)


# ------------------------------------------------------------ contractive


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_contractive_closed_form_matches_exact_and_finite_difference_jacobians(
    activation,
):
    """Check that the closed form is mean ||dh/dx||_F^2 by jacrev and differences."""
    rng = np.random.default_rng(8)
    f = ACTIVATIONS[activation]
    X = _t(rng.normal(size=(40, 7)))
    W = _t(rng.normal(scale=0.6, size=(5, 7)))
    b = _t(rng.normal(scale=0.5, size=5))
    if activation == "relu":
        # Keep samples whose pre-activations are far from the kink at 0.
        far = (X @ W.T + b).abs().min(dim=1).values > 0.05
        X = X[far]
        assert len(X) >= 10
    codes = f(X @ W.T + b)

    value = float(contractive_closed_form(codes, W, activation))
    jac = torch.func.vmap(torch.func.jacrev(lambda x: f(W @ x + b)))(X)
    assert jac.shape == (len(X), 5, 7)
    exact = _frobenius_numpy(jac.numpy())
    fd = _frobenius_numpy(_fd_jacobians(lambda Z: f(Z @ W.T + b), X))

    assert value > 0
    np.testing.assert_allclose(value, exact, rtol=1e-12)
    np.testing.assert_allclose(value, fd, rtol=1e-8)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_contractive_closed_form_gradient_wrt_weight_matches_finite_differences(
    activation,
):
    """Check that d(closed form)/dW through h = f(x W^T + b) passes a grad check."""
    rng = np.random.default_rng(9)
    f = ACTIVATIONS[activation]
    X = _t(rng.normal(size=(15, 6)))
    W = _t(rng.normal(scale=0.6, size=(4, 6)))
    b = _t(rng.normal(scale=0.5, size=4))
    if activation == "relu":
        far = (X @ W.T + b).abs().min(dim=1).values > 0.05
        X = X[far]
        assert len(X) >= 5

    def penalty(w):
        return contractive_closed_form(f(X @ w.T + b), w, activation)

    _check_gradient(penalty, W)

    # And it is the gradient of the exact mean squared Frobenius norm.
    def exact(w):
        jac = torch.func.vmap(torch.func.jacrev(lambda x: f(w @ x + b)))(X)
        return jac.square().sum(dim=(-2, -1)).mean()

    np.testing.assert_allclose(
        _autograd_grad(penalty, W).numpy(),
        _autograd_grad(exact, W).numpy(),
        rtol=1e-10,
        atol=1e-12,
    )


def test_contractive_closed_form_with_model_axis_equals_separate_calls():
    """Check that codes (M, B, k) with weights (M, k, n) give M separate penalties."""
    rng = np.random.default_rng(10)
    X = _t(rng.normal(size=(3, 12, 6)))
    W = _t(rng.normal(size=(3, 4, 6)))
    codes = torch.tanh(X @ W.transpose(-1, -2))
    value = contractive_closed_form(codes, W, "tanh")
    assert value.shape == (3,)
    for m in range(3):
        separate = contractive_closed_form(codes[m], W[m], "tanh")
        np.testing.assert_allclose(float(value[m]), float(separate), rtol=1e-13)
    # One weight per model, applied as the penalty's factor.
    factor = _t(np.array([0.0, 0.5, 2.0]))
    weighted = contractive_closed_form(codes, W, "tanh", factor=factor)
    np.testing.assert_allclose(weighted.numpy(), (factor * value).numpy(), rtol=1e-13)


def test_contractive_closed_form_weights_weights_at_tiny_scales():
    """Check that the weight is applied before the raw-input weights of data
    at 1e-20 (near 1e20) are squared: float32 squares would overflow."""
    rng = np.random.default_rng(12)
    W = torch.as_tensor(rng.normal(size=(4, 6)) * 1e20, dtype=torch.float32)
    codes = torch.tanh(torch.as_tensor(rng.normal(size=(12, 4)), dtype=torch.float32))
    assert not torch.isfinite(contractive_closed_form(codes, W, "tanh"))
    for factor in (0.0, 1e-40):
        value = float(contractive_closed_form(codes, W, "tanh", factor=factor))
        expected = factor * float(contractive_closed_form(codes, W.double(), "tanh"))
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=0)


def test_contractive_exact_matches_finite_differences_for_deep_encoder():
    """Check that contractive_exact is a deep encoder's ||dh/dx||_F^2 by differences."""
    rng = np.random.default_rng(11)
    module = _deep_tanh_module(rng)
    X = _t(rng.normal(size=(16, 6)))
    value = contractive_exact(module.encode, X)
    assert value.dtype == F64 and value.shape == ()
    fd = _frobenius_numpy(_fd_jacobians(module.encode, X))
    assert fd > 1e-2
    np.testing.assert_allclose(float(value), fd, rtol=1e-8)


def test_contractive_exact_gradient_matches_finite_differences():
    """Check that contractive_exact's gradient w.r.t. a weight passes a grad check."""
    rng = np.random.default_rng(12)
    module = _deep_tanh_module(rng, n_features=4, n_components=2, hidden=(5,))
    params = {k: v.detach() for k, v in module.encoder.named_parameters()}
    X = _t(rng.normal(size=(6, 4)))

    def penalty(w):
        def encode(x):
            return torch.func.functional_call(
                module.encoder, {**params, "0.weight": w}, (x,)
            )

        return contractive_exact(encode, X)

    _check_gradient(penalty, params["0.weight"])


def _projection_setup(seed):
    rng = np.random.default_rng(seed)
    module = _deep_tanh_module(rng)
    X = _t(rng.normal(size=(16, 6)))
    J = _fd_jacobians(module.encode, X)  # (B, k, n)
    # For u ~ N(0, I_k): E||J^T u||^2 = tr(J J^T), Var = 2 ||J J^T||_F^2.
    JJt = J @ J.transpose(0, 2, 1)
    exact = np.mean(np.trace(JJt, axis1=1, axis2=2))
    var_one_draw = 2 * np.sum(JJt**2) / len(X) ** 2  # of the batch mean
    return module, X, exact, var_one_draw


def test_contractive_projection_is_unbiased():
    """Check that the projection estimate averages to the exact penalty within 4 SE."""
    module, X, exact, var_one_draw = _projection_setup(13)
    generator = torch.Generator().manual_seed(0)
    R = 2000
    draws = np.array(
        [
            float(contractive_projection(module.encode, X, 1, generator).detach())
            for _ in range(R)
        ]
    )
    se = draws.std(ddof=1) / np.sqrt(R)
    assert abs(draws.mean() - exact) < 4 * se
    assert abs(draws.mean() - exact) < 4 * np.sqrt(var_one_draw / R)
    # Its spread is the one of the Gaussian-projection estimator: the sample
    # variance matches 2 ||J J^T||_F^2 / B^2 within 4 standard errors, that
    # standard error being sqrt((kurtosis - 1) / R) relative.
    centred = draws - draws.mean()
    kurtosis = np.mean(centred**4) / np.mean(centred**2) ** 2
    _within(draws.var(ddof=1) / var_one_draw, 1.0, np.sqrt((kurtosis - 1) / R), z=4)

    # n_projections=K averages K draws: same mean, variance divided by K.
    K = 500
    pooled = float(contractive_projection(module.encode, X, K, generator).detach())
    assert abs(pooled - exact) < 4 * np.sqrt(var_one_draw / K)

    # A seeded generator makes it reproducible.
    a = contractive_projection(module.encode, X, 3, torch.Generator().manual_seed(5))
    b = contractive_projection(module.encode, X, 3, torch.Generator().manual_seed(5))
    assert float(a) == float(b)


def test_contractive_projection_gradient_is_unbiased():
    """Check that the projection estimate's gradient averages to the exact gradient."""
    module, X, _, _ = _projection_setup(14)
    weight = module.encoder[0].weight
    (exact_grad,) = torch.autograd.grad(contractive_exact(module.encode, X), weight)
    generator = torch.Generator().manual_seed(1)
    R = 1000
    grads = np.stack(
        [
            torch.autograd.grad(
                contractive_projection(module.encode, X, 1, generator), weight
            )[0].numpy()
            for _ in range(R)
        ]
    )
    se = grads.std(axis=0, ddof=1) / np.sqrt(R)
    z = (grads.mean(axis=0) - exact_grad.numpy()) / se
    # 48 coordinates: P(max |z| > 5) ~ 48 * 6e-7 under the null.
    assert np.abs(z).max() < 5
    # The mean gradient points the exact way (a non-vacuous check).
    mean = grads.mean(axis=0).ravel()
    cosine = (
        mean
        @ exact_grad.numpy().ravel()
        / (np.linalg.norm(mean) * np.linalg.norm(exact_grad.numpy()))
    )
    assert cosine > 0.99


# -------------------------------------------------------------- denoising

N_ROWS, N_FEATURES, BATCH = 2048, 16, 256
NOISE_LEVEL = 0.3


@pytest.fixture
def clean_data():
    # Continuous, no zeros, each per-feature extreme attained by one row only.
    rng = np.random.default_rng(15)
    return rng.uniform(0.5, 2.0, size=(N_ROWS, N_FEATURES)).astype(np.float32)


@pytest.fixture
def infer_calls(monkeypatch):
    """Record (training mode, input) of every forward pass of the module.

    Training steps go through the written-out backward pass
    (``_engine.backprop``), other passes through ``AutoencoderNet.infer``.
    """
    calls = []
    original_infer = AutoencoderNet.infer
    original_backprop = _engine.backprop

    def infer(self, x, **fit_params):
        calls.append((self.module_.training, x.detach().cpu().numpy().copy()))
        return original_infer(self, x, **fit_params)

    def backprop(plan, module, x_in, *args, **kwargs):
        calls.append((module.training, x_in.detach().cpu().numpy().copy()))
        return original_backprop(plan, module, x_in, *args, **kwargs)

    monkeypatch.setattr(AutoencoderNet, "infer", infer)
    monkeypatch.setattr(_engine, "backprop", backprop)
    return calls


def _dae(noise, random_state=0, max_iter=2):
    return DenoisingAutoencoder(
        n_components=4,
        noise=noise,
        noise_level=NOISE_LEVEL,
        batch_size=BATCH,
        max_iter=max_iter,
        shuffle=False,  # batch i of every epoch is X[i * BATCH:(i + 1) * BATCH]
        device="cpu",
        random_state=random_state,
    )


def _training_pairs(calls, X):
    """(clean batch, module input) of each recorded training step, in order."""
    n_batches = N_ROWS // BATCH
    assert all(training for training, _ in calls)
    pairs = []
    for step, (_, x_in) in enumerate(calls):
        i = step % n_batches
        pairs.append((X[i * BATCH : (i + 1) * BATCH].astype(np.float64), x_in))
    return pairs


def _within(estimate, expected, se, z=5):
    assert abs(estimate - expected) < z * se, (estimate, expected, se)


@pytest.mark.parametrize("noise", ["gaussian", "masking", "salt_and_pepper"])
def test_denoising_training_batches_are_corrupted_as_specified(
    noise, clean_data, infer_calls
):
    """Check that training batches are corrupted with the right distribution."""
    X = clean_data
    _dae(noise).fit(X)
    assert len(infer_calls) == 2 * N_ROWS // BATCH
    pairs = _training_pairs(infer_calls, X)
    clean = np.stack([c for c, _ in pairs]).astype(np.float64)
    seen = np.stack([x for _, x in pairs]).astype(np.float64)
    assert seen.shape == clean.shape
    n = clean.size
    p = NOISE_LEVEL

    if noise == "gaussian":
        d = seen - clean
        _within(d.mean(), 0.0, p / np.sqrt(n))
        _within(d.std(), p, p / np.sqrt(2 * n))
        inside = np.mean(np.abs(d) < p)  # 68.27% within one sd for a Gaussian
        _within(inside, 0.682689, np.sqrt(0.682689 * 0.317311 / n))
    elif noise == "masking":
        zeroed = seen == 0
        # Kept entries are untouched; the others are zero.
        np.testing.assert_array_equal(seen[~zeroed], clean[~zeroed])
        _within(zeroed.mean(), p, np.sqrt(p * (1 - p) / n))
    else:
        low = X.min(axis=0).astype(np.float64)
        high = X.max(axis=0).astype(np.float64)
        changed = seen != clean
        pepper = (seen == low) & (clean != low)
        salt = (seen == high) & (clean != high)
        # Every changed entry became its feature's minimum or maximum.
        np.testing.assert_array_equal(changed, pepper | salt)
        eligible_low, eligible_high = clean != low, clean != high
        _within(pepper[eligible_low].mean(), p / 2, np.sqrt(p / 2 * (1 - p / 2) / n))
        _within(salt[eligible_high].mean(), p / 2, np.sqrt(p / 2 * (1 - p / 2) / n))


@pytest.mark.parametrize("noise", ["gaussian", "masking", "salt_and_pepper"])
def test_denoising_corruption_is_seeded_and_fresh_per_batch(
    noise, clean_data, infer_calls
):
    """Check that random_state repeats the corruption; every batch draws anew."""
    X = clean_data
    _dae(noise, random_state=0).fit(X)
    first = [x for _, x in infer_calls]
    infer_calls.clear()
    _dae(noise, random_state=0).fit(X)
    second = [x for _, x in infer_calls]
    infer_calls.clear()
    _dae(noise, random_state=1).fit(X)
    other = [x for _, x in infer_calls]

    assert len(first) == len(second) == len(other) == 2 * N_ROWS // BATCH
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not any(np.array_equal(a, c) for a, c in zip(first, other))

    pairs = _training_pairs([(True, x) for x in first], X)
    noise_of = [seen.astype(np.float64) - clean for clean, seen in pairs]
    n_batches = N_ROWS // BATCH
    # Same clean rows in epochs 1 and 2, different corruption.
    for i in range(n_batches):
        assert not np.allclose(noise_of[i], noise_of[i + n_batches], rtol=0, atol=1e-3)
    # Different batches of one epoch get different draws: different Gaussian
    # values (beyond float32 rounding), different masks for the others.
    if noise == "gaussian":
        draws = [noise_of[i] / NOISE_LEVEL for i in range(n_batches)]
        same = lambda a, b: np.allclose(a, b, rtol=0, atol=1e-3)  # noqa: E731
    else:
        draws = [noise_of[i] != 0 for i in range(n_batches)]
        same = np.array_equal
    assert not any(same(draws[i], draws[j]) for i in range(n_batches) for j in range(i))
    if noise == "gaussian":
        # Fresh noise is independent of the previous epoch's: correlation ~ 0.
        a, b = noise_of[0].ravel(), noise_of[n_batches].ravel()
        _within(np.corrcoef(a, b)[0, 1], 0.0, 1 / np.sqrt(a.size))


@pytest.mark.parametrize("noise", ["gaussian", "masking", "salt_and_pepper"])
def test_denoising_inference_never_corrupts(noise, clean_data, infer_calls):
    """Check that transform, inverse_transform and score are deterministic and clean."""
    dae = _dae(noise).fit(clean_data)
    X = clean_data[:1500]  # two inference blocks, the second one padded
    n = len(X)
    module = dae.net_.module_
    infer_calls.clear()

    seen = {"encoder": [], "decoder": []}
    # Inference encodes through inference_encoder (transform, score) only.
    inference_encoder = module.inference_encoder

    def recording_inference_encoder(*args, **kwargs):
        encode = inference_encoder(*args, **kwargs)

        def recording_encode(x, out=None):
            seen["encoder"].append(np.array(x, copy=True))
            return encode(x, out)

        return recording_encode

    module.inference_encoder = recording_inference_encoder
    handles = [
        module.decoder.register_forward_pre_hook(
            lambda m, args: seen["decoder"].append(args[0].numpy().copy())
        )
    ]

    def inputs_during(method, *args):
        """The call's result, and the rows its encoder and decoder saw."""
        for rows in seen.values():
            rows.clear()
        result = method(*args)
        return result, {
            part: np.concatenate(rows) if rows else None for part, rows in seen.items()
        }

    try:
        Z, seen_transform = inputs_during(dae.transform, X)
        Z_again, _ = inputs_during(dae.transform, X)
        scores, seen_score = inputs_during(dae.score_samples, X)
        score, _ = inputs_during(dae.score, X)
        score_again, _ = inputs_during(dae.score, X)
        X_hat, seen_inverse = inputs_during(dae.inverse_transform, Z)
        X_hat_again, _ = inputs_during(dae.inverse_transform, Z)
    finally:
        for handle in handles:
            handle.remove()
        del module.inference_encoder

    assert infer_calls == []  # no training step ran
    np.testing.assert_array_equal(Z, Z_again)
    np.testing.assert_array_equal(X_hat, X_hat_again)
    assert score == score_again
    # The encoder saw exactly the clean rows (then zero padding), and the
    # decoder exactly the clean codes.
    for rows in (seen_transform["encoder"], seen_score["encoder"]):
        np.testing.assert_array_equal(rows[:n], X.astype(np.float32))
        np.testing.assert_array_equal(rows[n:], np.zeros_like(rows[n:]))
    assert seen_transform["decoder"] is None and seen_inverse["encoder"] is None
    # transform encodes through NumPy's BLAS on the CPU, score through
    # torch's: the same codes up to float32 rounding (any noise is far
    # larger).
    np.testing.assert_allclose(seen_score["decoder"][:n], Z, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seen_inverse["decoder"][:n], Z)

    # Independent float64 forward pass on the clean data.
    ref = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        codes_ref = ref.encode(_t(X)).numpy()
        # In X's units (the decoder's are X's centred and scaled).
        recon_ref = ref.reconstruction(ref.decode(_t(codes_ref))).numpy()
        decode_Z = ref.reconstruction(ref.decode(_t(Z))).numpy()
    np.testing.assert_allclose(Z, codes_ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(X_hat, decode_Z, rtol=0, atol=1e-5)
    expected_scores = -np.mean((recon_ref - X.astype(np.float64)) ** 2, axis=1)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(score, expected_scores.mean(), rtol=1e-4)


# ----------------------------------------------------- reconstruction error


def _bce_with_logits_numpy(z, t):
    # max(z, 0) - z t + log(1 + exp(-|z|)): stable form of
    # -[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))].
    return np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))


def test_reconstruction_error_matches_numpy_per_sample():
    """Check that squared error and BCE on logits are per-sample sums, by NumPy."""
    rng = np.random.default_rng(16)
    output = rng.normal(scale=3.0, size=(2, 25, 9))  # leading "model" axis
    target_real = rng.normal(size=(2, 25, 9))
    target_unit = rng.uniform(size=(2, 25, 9))
    target_unit[0, :3] = np.round(target_unit[0, :3])  # some exact 0s and 1s

    squared = reconstruction_error(_t(output), _t(target_real), "squared_error")
    assert squared.shape == (2, 25) and squared.dtype == F64
    np.testing.assert_allclose(
        squared.numpy(), np.sum((output - target_real) ** 2, axis=-1), rtol=1e-13
    )

    bce = reconstruction_error(_t(output), _t(target_unit), "binary_cross_entropy")
    assert bce.shape == (2, 25)
    expected = np.sum(_bce_with_logits_numpy(output, target_unit), axis=-1)
    np.testing.assert_allclose(bce.numpy(), expected, rtol=1e-12)
    # The textbook form agrees where it is numerically safe.
    s = 1 / (1 + np.exp(-output))
    textbook = -(target_unit * np.log(s) + (1 - target_unit) * np.log(1 - s))
    np.testing.assert_allclose(bce.numpy(), np.sum(textbook, axis=-1), rtol=1e-9)
    # Each model's slice is its own computation.
    for m in range(2):
        np.testing.assert_allclose(
            bce[m].numpy(),
            reconstruction_error(
                _t(output[m]), _t(target_unit[m]), "binary_cross_entropy"
            ).numpy(),
            rtol=1e-14,
        )


@pytest.mark.parametrize("loss", ["squared_error", "binary_cross_entropy"])
def test_score_samples_is_negative_per_sample_reconstruction_error(loss):
    """Check that score_samples is minus the per-sample loss mean over features."""
    rng = np.random.default_rng(17)
    X = rng.uniform(size=(300, 10)).astype(np.float32)
    ae = Autoencoder(
        n_components=3, loss=loss, max_iter=3, device="cpu", random_state=0
    ).fit(X)
    ref = copy.deepcopy(ae.net_.module_).double().eval()
    x = X.astype(np.float64)
    with torch.no_grad():
        _, output = ref(_t(x))
    output = output.numpy()
    if loss == "squared_error":
        # The decoder's units are X's centred and scaled: back to X's.
        reconstruction = ref.reconstruction(_t(output)).numpy()
        expected = np.mean((reconstruction - x) ** 2, axis=1)
    else:
        expected = np.mean(_bce_with_logits_numpy(output, x), axis=1)
    scores = ae.score_samples(X)
    np.testing.assert_allclose(scores, -expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ae.score(X), -expected.mean(), rtol=1e-5)


def _contraction_numpy(module, x):
    """Mean squared Frobenius norm of the encoder Jacobian, by differences."""
    return _frobenius_numpy(_fd_jacobians(module.encode, _t(x)))


TRAINING_OBJECTIVES = {
    "plain": (Autoencoder(), lambda module, x, h: 0.0),
    "kl": (
        # The codes start near the target rate: a strong weight keeps the
        # penalty large enough to check.
        SparseAutoencoder(sparsity="kl", sparsity_weight=3.0, sparsity_target=0.1),
        lambda module, x, h: 3.0 * _kl_numpy(h, 0.1),
    ),
    "l1": (
        SparseAutoencoder(sparsity="l1", sparsity_weight=0.2),
        lambda module, x, h: (
            0.2 * _l1_numpy(h, module.decoder_input_layer.weight.detach().numpy())
        ),
    ),
    "contractive_closed_form": (
        ContractiveAutoencoder(contraction_weight=0.5, jacobian="closed_form"),
        lambda module, x, h: 0.5 * _contraction_numpy(module, x),
    ),
    "contractive_exact": (
        ContractiveAutoencoder(
            contraction_weight=0.5, jacobian="exact", hidden_layer_sizes=(5,)
        ),
        lambda module, x, h: 0.5 * _contraction_numpy(module, x),
    ),
}


@pytest.mark.parametrize("case", list(TRAINING_OBJECTIVES))
def test_training_loss_is_summed_reconstruction_error_plus_penalty(case):
    """Check that an epoch's loss is mean_b sum_i (x - x_hat)^2 + weighted penalty."""
    estimator, penalty = TRAINING_OBJECTIVES[case]
    rng = np.random.default_rng(18)
    X = rng.normal(size=(64, 6)).astype(np.float32)
    # One full batch per epoch: the epoch's loss is the objective at the
    # weights it starts from. A few epochs first, so that the decoder (whose
    # output layer starts at zero) weighs the L1 penalty.
    estimator = copy.deepcopy(estimator).set_params(
        n_components=3, batch_size=64, max_iter=20, device="cpu", random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X)
    ref = copy.deepcopy(estimator.net_.module_).double().eval()
    estimator.partial_fit(X)

    x = X.astype(np.float64)
    with torch.no_grad():
        codes, output = ref(_t(x))
    codes, output = codes.numpy(), output.numpy()
    # The squared error is in the decoder's units: X's centred and scaled.
    target = ref.target(_t(x)).numpy()
    expected = np.mean(np.sum((output - target) ** 2, axis=1)) + penalty(ref, x, codes)
    if case != "plain":
        assert penalty(ref, x, codes) > 1e-3  # a penalty worth checking
    np.testing.assert_allclose(estimator.loss_curve_[-1], expected, rtol=1e-5)


@pytest.mark.parametrize("activation", ["logistic", "tanh"])
def test_closed_form_contraction_is_wrt_the_raw_input(activation):
    """Check that the closed form includes the module's input scale: it is
    the Jacobian of the codes with respect to the input the user passes."""
    from skae._contractive import _closed_form_penalty

    torch.manual_seed(0)
    module = AutoencoderModule(
        5, 3, (), activation, input_offset=np.full(5, 0.3), input_scale=3.7
    ).double()
    x = torch.randn(20, 5, dtype=torch.float64)
    codes = module.encode(x)
    closed = _closed_form_penalty(module, x, codes, None, weight=1.0)
    exact = contractive_exact(module.encode, x)
    torch.testing.assert_close(closed, exact)
    unscaled = contractive_closed_form(codes, module.code_layer.weight, activation)
    torch.testing.assert_close(closed, unscaled * 3.7**2)


@pytest.mark.parametrize("target", [1e-6, 1e-4, 0.05])
def test_kl_penalty_is_accurate_in_float32_for_small_targets(target):
    """Check that the float32 KL penalty (and the written-out one) matches
    float64 to float32's relative precision: the ratio (1 - rho) /
    (1 - rho_hat) rounds near 1, and a small target's large weight turned
    that rounding into penalties of either sign."""
    rng = np.random.default_rng(0)
    codes = torch.as_tensor(
        target * rng.uniform(0.2, 3.0, size=(64, 16)), dtype=torch.float64
    )
    reference = kl_divergence_sparsity(codes, target)
    single = kl_divergence_sparsity(codes.float(), target)
    written, _ = kl_divergence_sparsity_gradient(codes.float(), target)
    assert reference.item() > 0
    np.testing.assert_allclose(single.item(), reference.item(), rtol=1e-4)
    np.testing.assert_allclose(written.item(), reference.item(), rtol=1e-4)
