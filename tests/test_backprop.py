"""The written-out backward pass against autograd, and its place in training."""

import pickle
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback
from torch import nn
from torch.utils.data import TensorDataset

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)
from skae._contractive import (
    _closed_form_penalty,
    _exact_penalty,
    _projection_penalty,
)
from skae._engine import net as _engine
from skae._nn.backprop import Plan, backprop
from skae._nn.modules import AutoencoderModule
from skae._nn.objectives import (
    kl_divergence_sparsity,
    kl_divergence_sparsity_gradient,
    l1_sparsity,
    l1_sparsity_gradient,
    reconstruction_error,
)
from skae._sparsity_penalties import _kl_penalty, _l1_penalty

PENALTIES = {
    "none": None,
    # As the estimators build them: partials, whose written-out gradients
    # (registered by skae._sparse and skae._contractive) training uses.
    "kl": partial(_kl_penalty, weight=2.0, target=0.1),
    "l1": partial(_l1_penalty, weight=0.5),
    "closed_form": lambda m, x, c, g: _closed_form_penalty(m, x, c, g, weight=0.3),
    "projection": partial(_projection_penalty, weight=0.2, n_projections=2),
    "exact": lambda m, x, c, g: _exact_penalty(m, x, c, g, weight=0.2),
}


def _module(activation, hidden, seed=0):
    rng = np.random.default_rng(seed)
    module = AutoencoderModule(
        6,
        3,
        hidden,
        activation,
        input_offset=rng.normal(size=6),
        input_scale=rng.uniform(0.5, 2.0, size=6),
        target_offset=rng.normal(size=6),
        target_scale=1.7,
        output_bias=rng.normal(size=6),
        seed=seed,
    ).double()
    # Random weights everywhere (the output layer starts at zero otherwise,
    # and would hide the earlier layers' gradients).
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def _seeded():
    return torch.Generator().manual_seed(3)


def _autograd(module, x_in, target, loss, penalty, generator):
    module.zero_grad(set_to_none=True)
    codes, output = module(x_in)
    if loss == "squared_error":
        target = module.target(target)
    value = reconstruction_error(output, target, loss).mean()
    if penalty is not None:
        value = value + penalty(module, x_in, codes, generator)
    value.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}
    return value.detach(), grads, (codes.detach(), output.detach())


def _written_out(module, x_in, target, loss, penalty, generator):
    module.zero_grad(set_to_none=True)
    plan = Plan(module)
    value, y_pred = backprop(plan, module, x_in, target, loss, penalty, generator)
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}
    return value, grads, y_pred


# KL sparsity needs logistic codes; the closed form, one encoder layer.
CASES = [
    (activation, hidden, loss, penalty)
    for activation in ("identity", "logistic", "tanh", "relu")
    for hidden in ((), (5, 4))
    for loss in ("squared_error", "binary_cross_entropy")
    for penalty in PENALTIES
    if (penalty != "kl" or activation == "logistic")
    and (penalty != "closed_form" or not hidden)
]


@pytest.mark.parametrize("activation, hidden, loss, penalty", CASES)
def test_gradients_equal_autograd(activation, hidden, loss, penalty):
    """Check loss, outputs and every gradient against autograd (float64)."""
    module = _module(activation, hidden)
    rng = np.random.default_rng(1)
    target = torch.as_tensor(rng.uniform(size=(20, 6)))
    x_in = target + torch.as_tensor(rng.normal(scale=0.1, size=(20, 6)))
    results = [
        run(module, x_in, target, loss, PENALTIES[penalty], _seeded())
        for run in (_autograd, _written_out)
    ]
    (v_ref, g_ref, y_ref), (v, g, y) = results
    torch.testing.assert_close(v, v_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    assert set(g) == set(g_ref) == {n for n, _ in module.named_parameters()}
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-9, atol=1e-12)
        # Checks that cannot pass vacuously: the gradient is not all zero.
        assert g_ref[name].abs().max() > 0, name


ESTIMATORS = [
    Autoencoder(n_components=3, hidden_layer_sizes=(8,)),
    SparseAutoencoder(n_components=5),
    SparseAutoencoder(n_components=5, sparsity="l1"),
    DenoisingAutoencoder(n_components=3, hidden_layer_sizes=(8,)),
    ContractiveAutoencoder(n_components=3),
    ContractiveAutoencoder(
        n_components=3, hidden_layer_sizes=(8,), jacobian="projection"
    ),
]


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: repr(e))
def test_training_equals_autograd_training(estimator, solver, monkeypatch):
    """Check that a fit with the written-out pass equals one through autograd
    (same losses and codes up to float32 rounding), weight decay included."""
    X = np.random.default_rng(0).uniform(size=(150, 10)).astype(np.float32)
    estimator.set_params(
        max_iter=8,
        batch_size=32,
        solver=solver,
        alpha=1e-2,
        random_state=0,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        written = pickle.loads(pickle.dumps(estimator)).fit(X)
        assert written.net_.backprop_ is not None

        def no_plan(module):
            raise ValueError("autograd only")

        monkeypatch.setattr(_engine, "Plan", no_plan)
        reference = pickle.loads(pickle.dumps(estimator)).fit(X)
        assert reference.net_.backprop_ is None
    np.testing.assert_allclose(written.loss_curve_, reference.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(
        written.transform(X), reference.transform(X), rtol=1e-4, atol=1e-5
    )


class _WithDropout(AutoencoderModule):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder[1] = nn.Dropout(0.1)


def test_other_modules_train_through_autograd():
    """Check that a module the plan does not know is refused by Plan and
    trained through autograd by the net."""
    shape = dict(n_features=6, n_components=3, hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match="no written-out backward pass"):
        Plan(_WithDropout(**shape, activation="tanh"))
    net = _engine.AutoencoderNet(
        _WithDropout,
        **{f"module__{k}": v for k, v in shape.items()},
        module__activation="tanh",
        criterion=_engine.ReconstructionLoss,
        train_split=None,
        max_epochs=2,
        batch_size=8,
    )
    net.fit(TensorDataset(torch.rand(32, 6)), None)
    assert net.written_out_gradients
    assert net.backprop_ is None
    assert np.isfinite(net.history[-1, "train_loss"])
    assert len(net.history) == 2


def test_pickled_net_trains_its_own_weights():
    """Check that after a pickle round trip the plan still points at the
    module's own tensors, so that training moves the unpickled weights."""
    X = np.random.default_rng(0).uniform(size=(64, 6))
    params = dict(n_components=2, max_iter=2, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(**params).fit(X)
    copy = pickle.loads(pickle.dumps(ae))
    net = copy.net_
    first_weight = net.module_.encoder[0].weight
    assert net.backprop_.layers[0][0] is first_weight
    before = first_weight.detach().clone()
    copy.partial_fit(X)
    assert not torch.equal(first_weight.detach(), before)
    ae.partial_fit(X)
    np.testing.assert_array_equal(copy.transform(X), ae.transform(X))


class _Recorder(Callback):
    def initialize(self):
        self.events = []
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        self.events.append(("begin", training))

    def on_grad_computed(self, net, named_parameters, **kwargs):
        grads = {n: p.grad for n, p in named_parameters}
        assert all(g is not None for g in grads.values())
        self.events.append(("grad", len(grads)))

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        self.events.append(("end", float(loss)))


def test_batch_callbacks_still_see_every_step():
    """Check that batch events and on_grad_computed reach a callback that
    handles them, with the gradients set, once per step."""
    X = np.random.default_rng(0).uniform(size=(40, 6))
    recorder = _Recorder()
    ae = Autoencoder(
        n_components=2,
        hidden_layer_sizes=(),
        batch_size=16,
        max_iter=2,
        random_state=0,
        device="cpu",
        callbacks=[recorder],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(X)
    events = ae.net_.callbacks_[-1][1].events
    steps = 2 * 3  # 2 epochs of 3 batches (16, 16, 8)
    assert [e for e, _ in events] == ["begin", "grad", "end"] * steps
    assert all(n == 4 for e, n in events if e == "grad")
    assert all(np.isfinite(v) for e, v in events if e == "end")


def test_weight_decay_with_and_without_gradient_callbacks():
    """Check that the L2 term is the same whether it joins the gradient in the
    written-out product (no on_grad_computed callback) or after the callbacks
    (as torch's optimizers add it), and that those callbacks see the loss's
    gradient without it."""
    X = np.random.default_rng(0).uniform(size=(40, 6))
    params = dict(
        n_components=2,
        hidden_layer_sizes=(),
        alpha=0.5,
        batch_size=40,
        max_iter=3,
        random_state=0,
        device="cpu",
    )
    checked = []

    class LossGradient(Callback):
        def on_grad_computed(self, net, named_parameters, batch=None, **kwargs):
            # The loss's own gradient, by autograd at the current weights.
            module = net.module_
            x = batch[0]
            with torch.enable_grad():
                _, output = module(x)
                target = module.target(x)
                loss = reconstruction_error(output, target, "squared_error").mean()
                expected = torch.autograd.grad(loss, list(module.parameters()))
            for p, g in zip(module.parameters(), expected):
                torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)
            checked.append(True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fused = Autoencoder(**params).fit(X)
        listened = Autoencoder(**params, callbacks=[LossGradient()]).fit(X)
        no_decay = Autoencoder(**{**params, "alpha": 0.0}).fit(X)
    assert len(checked) == 3
    np.testing.assert_allclose(listened.loss_curve_, fused.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(listened.transform(X), fused.transform(X), rtol=1e-5)
    assert not np.allclose(no_decay.transform(X), fused.transform(X), rtol=1e-3)


def test_sparsity_gradients_at_their_edges():
    """Check the written-out sparsity gradients against autograd where the
    KL mean activation is clamped and where a decoder column is zero."""
    rng = np.random.default_rng(0)
    codes = torch.as_tensor(rng.uniform(0.2, 0.8, size=(8, 4)))
    codes[:, 0] = 0.0  # mean activation 0: clamped, no gradient
    codes[:, 1] = 1.0  # mean activation 1: clamped too
    leaf = codes.clone().requires_grad_(True)
    kl_divergence_sparsity(leaf, 0.1).backward()
    value, grad = kl_divergence_sparsity_gradient(codes, 0.1)
    torch.testing.assert_close(value, kl_divergence_sparsity(codes, 0.1))
    torch.testing.assert_close(grad, leaf.grad)
    assert grad[:, :2].abs().max() == 0 and grad[:, 2:].abs().min() > 0

    codes = torch.as_tensor(rng.normal(size=(8, 4)))
    codes[0, 3] = 0.0  # sign(0) = 0
    weight = torch.as_tensor(rng.normal(size=(5, 4)))
    weight[:, 2] = 0.0  # a zero column: its norm has no gradient
    leaves = codes.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    l1_sparsity(*leaves).backward()
    value, code_grad, weight_grad = l1_sparsity_gradient(codes, weight)
    torch.testing.assert_close(value, l1_sparsity(codes, weight))
    torch.testing.assert_close(code_grad, leaves[0].grad)
    torch.testing.assert_close(weight_grad, leaves[1].grad)
    assert torch.isfinite(weight_grad).all() and weight_grad[:, 2].abs().max() == 0


def test_penalty_objects_carry_their_gradient_and_batched_form():
    """Check that a penalty is one object: value, written-out gradient and
    stacked form travel with it (no registry filled at import), and survive
    pickling and a change of keywords."""
    import pickle

    from skae import ContractiveAutoencoder, SparseAutoencoder

    fit = (100, "squared_error")  # training rows and loss
    kl = SparseAutoencoder(sparsity_weight=2.0)._penalty(*fit)
    l1 = SparseAutoencoder(sparsity="l1")._penalty(*fit)
    projection = ContractiveAutoencoder(
        hidden_layer_sizes=(4,), jacobian="projection"
    )._penalty(*fit)
    exact = ContractiveAutoencoder(hidden_layer_sizes=(4,), jacobian="exact")._penalty(
        *fit
    )
    closed = ContractiveAutoencoder(hidden_layer_sizes=())._penalty(*fit)
    for penalty in (kl, l1, projection):
        assert callable(penalty.gradient)
    assert exact.gradient is None and closed.gradient is None
    assert kl.stacked_ndims == {"weight": 1, "target": 2, "warmup": 1}
    assert exact.stacked_ndims is None  # trains one by one
    assert projection.stacked is not None and kl.stacked is None
    again = pickle.loads(pickle.dumps(kl))
    assert again.gradient is kl.gradient and again.keywords == kl.keywords
    changed = kl.with_keywords(weight=7.0)
    assert changed.keywords["weight"] == 7.0 and changed.gradient is kl.gradient


def test_moving_average_kl_gradient_matches_autograd():
    """Check the written-out KL gradient with a moving average of rho_hat
    against autograd in float64: the value is the divergence at the
    average, the gradient its slope there, passed to the batch's codes."""
    rng = np.random.default_rng(1)
    codes = torch.as_tensor(rng.uniform(0.0, 0.3, size=(16, 5)))
    previous = torch.as_tensor(rng.uniform(0.01, 0.2, size=5))
    leaf = codes.clone().requires_grad_(True)
    value = kl_divergence_sparsity(leaf, 0.05, previous, 0.9) * 3.0
    value.backward()
    got, grad = kl_divergence_sparsity_gradient(codes, 0.05, 3.0, previous, 0.9)
    torch.testing.assert_close(got, value.detach())
    torch.testing.assert_close(grad, leaf.grad)
    average = 0.9 * previous + 0.1 * codes.mean(0)
    expected = kl_divergence_sparsity(average.expand(1, 5), 0.05) * 3.0
    torch.testing.assert_close(got, expected)
    # Without the average: the batch's own divergence.
    plain = kl_divergence_sparsity(codes, 0.05)
    torch.testing.assert_close(kl_divergence_sparsity(codes, 0.05, None, 0.9), plain)


def test_plan_follows_the_module_to_another_device_or_dtype():
    """Check that the plan reads the module's current tensors: ``module.to``
    (skorch moves the module to its device after building it) replaces the
    buffers, and a plan holding the old ones mixes devices in the step."""
    X = np.random.default_rng(0).uniform(size=(64, 6))
    params = dict(n_components=2, max_iter=2, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net = Autoencoder(**params).fit(X).net_
    module = net.module_
    old_offset = module.input_offset
    module.to(torch.float64)  # new buffers, as a move to a GPU makes
    assert module.input_offset is not old_offset
    plan = net.backprop_
    assert plan.offset is module.input_offset
    assert plan.scale is module.input_scale
    assert plan.target_offset is module.target_offset
    assert plan.target_scale is module.target_scale
    weights = [weight for weight, _, _ in plan.layers]
    assert weights[0] is module.encoder[0].weight
    assert all(w.dtype == torch.float64 for w in weights)
