"""The written-out pass of TopK and BatchTopK code layers against autograd."""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skae import SparseAutoencoder
from skae._engine import net as _engine
from skae._engine.stacked import _StackedModule
from skae._engine.stacked_sparse import StackedTopK, sparse_step
from skae._nn.backprop import Plan
from skae._nn.modules import AutoencoderModule
from skae._nn.penalty import make_penalty
from skae._nn.sparse_backprop import select_codes, sparse_backprop
from skae._nn.sparse_codes import Workspace, update_since_fired
from skae._sparsity_penalties import (
    _auxk_gradient,
    _auxk_penalty,
    _auxk_stacked_gradient,
)


def _module(kind, k, hidden=(), n_features=12, n_units=20, seed=0):
    rng = np.random.default_rng(seed)
    module = AutoencoderModule(
        n_features,
        n_units,
        hidden,
        "relu",
        input_offset=rng.normal(size=n_features),
        input_scale=rng.uniform(0.5, 2.0, size=n_features),
        target_offset=rng.normal(size=n_features),
        target_scale=1.3,
        seed=seed,
        code_sparsity=(kind, k),
    ).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def _batch(n=16, n_features=12, seed=1, loss="squared_error"):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_features, generator=generator, dtype=torch.float64)
    return torch.sigmoid(x) if loss == "binary_cross_entropy" else x


def _autograd(module, x, loss, penalty, weight_decay):
    module.zero_grad(set_to_none=True)
    module.train()
    codes, output = module(x)
    target = module.target(x) if loss == "squared_error" else x
    if loss == "squared_error":
        value = (output - target).square().sum(dim=1).mean()
    else:
        value = torch.nn.functional.binary_cross_entropy_with_logits(
            output, target, reduction="sum"
        ) / len(x)
    if penalty is not None:
        value = value + penalty(module, x, codes, None)
    value.backward()
    grads = {}
    for name, p in module.named_parameters():
        g = p.grad.clone()
        if weight_decay and not name.endswith("bias"):
            g += weight_decay * p.detach()
        grads[name] = g
    return value.detach(), codes.detach(), grads


def _written_out(module, x, loss, penalty, weight_decay):
    module.train()
    plan = Plan(module)
    assert plan.sparse is module.sparse_code
    value, (codes, _) = sparse_backprop(
        plan, module, x, x, loss, penalty, None, weight_decay
    )
    return (
        value,
        codes.dense(),
        {n: p.grad.clone() for n, p in module.named_parameters()},
    )


def _auxk(window):
    return make_penalty(
        _auxk_penalty, gradient=_auxk_gradient, weight=0.3, window=float(window)
    )


@pytest.mark.parametrize(
    "kind, k, hidden, loss, revival, weight_decay",
    [
        ("topk", 4, (), "squared_error", False, 0.0),
        # Most rows keep negative pre-activations too (codes 0).
        ("topk", 15, (), "squared_error", False, 0.0),
        ("topk", 4, (), "squared_error", True, 0.0),
        ("topk", 4, (), "squared_error", True, 0.1),
        ("batch_topk", 4, (), "squared_error", True, 0.0),
        # More dead units than k_aux: AuxK keeps its k_aux per row.
        ("topk", 1, (), "squared_error", True, 0.0),
        ("batch_topk", 1, (), "squared_error", True, 0.1),
        ("batch_topk", 12, (), "squared_error", False, 0.0),
        ("topk", 4, (9,), "squared_error", False, 0.05),
        ("batch_topk", 4, (9,), "binary_cross_entropy", False, 0.0),
        ("topk", 4, (), "binary_cross_entropy", False, 0.0),
    ],
)
def test_gradients_match_autograd(kind, k, hidden, loss, revival, weight_decay):
    """Float64: loss, codes and every parameter's gradient as autograd
    computes them through the module's own forward pass; AuxK on units
    marked dead (some of them active in the batch, some not)."""
    module = _module(kind, k, hidden)
    x = _batch(loss=loss)
    penalty = None
    if revival:
        penalty = _auxk(window=5.0)
        with torch.no_grad():
            since = module.sparse_code.samples_since_fired
            since.copy_(torch.arange(since.numel(), dtype=since.dtype) % 3 * 5.0)
    other = copy.deepcopy(module)
    v_ref, c_ref, g_ref = _autograd(other, x, loss, penalty, weight_decay)
    v, c, g = _written_out(module, x, loss, penalty, weight_decay)
    torch.testing.assert_close(v, v_ref)
    torch.testing.assert_close(c, c_ref)
    if revival and k == 1:
        # The case is the one it is meant to be: more units dead after the
        # batch than AuxK's k_aux (n_features // 2).
        n_dead = int((module.sparse_code.samples_since_fired >= 5.0).sum())
        assert n_dead > x.shape[1] // 2
    assert g.keys() == g_ref.keys()
    for name in g:
        torch.testing.assert_close(g[name], g_ref[name], msg=name)
    # The training records agree too: units' activity and the threshold.
    torch.testing.assert_close(
        module.sparse_code.samples_since_fired, other.sparse_code.samples_since_fired
    )
    if kind == "batch_topk":
        torch.testing.assert_close(
            module.sparse_code.threshold, other.sparse_code.threshold
        )


def test_auxk_gradient_reaches_only_dead_units():
    """Mechanism check: with AuxK on and the live units' reconstruction
    gradient removed (x reconstructed exactly is not arranged; instead the
    difference with and without AuxK is taken), AuxK changes only the dead
    units' encoder rows and decoder columns."""
    module = _module("topk", 3)
    x = _batch()
    with torch.no_grad():
        module.sparse_code.samples_since_fired[:5] = 100.0
    base = copy.deepcopy(module)
    _, _, with_aux = _written_out(module, x, "squared_error", _auxk(50), 0.0)
    _, _, without = _written_out(base, x, "squared_error", None, 0.0)
    encoder = (with_aux["encoder.0.weight"] - without["encoder.0.weight"]).abs()
    decoder = (with_aux["decoder.0.weight"] - without["decoder.0.weight"]).abs()
    assert encoder[:5].sum() > 0 and decoder[:, :5].sum() > 0
    assert encoder[5:].max() == 0 and decoder[:, 5:].max() == 0


def test_select_codes_keeps_exactly_k_per_row_with_ties():
    layer = _module("topk", 3).sparse_code
    pre = torch.zeros(4, 8, dtype=torch.float64)
    pre[0, :5] = 1.0  # a five-way tie at the top
    pre[1] = torch.arange(8.0)
    codes = select_codes(layer, pre)
    assert torch.bincount(codes.rows, minlength=4).tolist() == [3, 3, 3, 3]
    assert torch.equal(codes.offsets, torch.tensor([0, 3, 6, 9]))
    assert sorted(codes.cols[codes.rows == 1].tolist()) == [5, 6, 7]


def test_batch_top_k_keeps_k_times_rows_overall():
    layer = _module("batch_topk", 3).sparse_code
    generator = torch.Generator().manual_seed(0)
    pre = torch.randn(10, 20, generator=generator, dtype=torch.float64)
    codes = select_codes(layer, pre)
    assert len(codes.rows) == 30
    counts = torch.bincount(codes.rows, minlength=10)
    assert counts.min() != counts.max()  # rows share the budget
    torch.testing.assert_close(codes.offsets, counts.cumsum(0) - counts)
    kept = codes.dense() != 0
    smallest_kept = pre[codes.rows, codes.cols].min()
    assert (pre[~kept.bool()] <= smallest_kept).all()


def _no_plan(module):
    raise ValueError("no written-out backward pass (test)")


@pytest.mark.parametrize("sparsity", ["topk", "batch_topk"])
def test_fit_through_the_sparse_pass_matches_autograd_training(sparsity, monkeypatch):
    """A fit through the written-out sparse pass ends where the same fit
    through autograd ends (float32 rounding apart), AuxK reviving units."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10)).astype(np.float32)
    fitted = {}
    for written_out in (True, False):
        if not written_out:
            monkeypatch.setattr(_engine, "Plan", _no_plan)
        model = SparseAutoencoder(
            16,
            sparsity=sparsity,
            n_nonzero_coefs=3,
            max_iter=5,
            batch_size=64,
            random_state=0,
            dead_unit_window=100,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
        fitted[written_out] = model
    assert fitted[True].net_.backprop_.sparse is not None
    assert fitted[False].net_.backprop_ is None
    np.testing.assert_allclose(
        fitted[True].transform(X), fitted[False].transform(X), atol=1e-4
    )
    np.testing.assert_allclose(
        fitted[True].net_.history[:, "dead_fraction"],
        fitted[False].net_.history[:, "dead_fraction"],
    )


@pytest.mark.parametrize("revival", [False, True])
@pytest.mark.parametrize("loss", ["squared_error", "binary_cross_entropy"])
def test_stacked_step_matches_autograd(revival, loss):
    """Float64: the batched written-out step (three nets, each its own k;
    AuxK with per-net weights and windows) against autograd through the
    stacked module's own forward pass and the AuxK penalty."""
    if revival and loss != "squared_error":
        pytest.skip("AuxK applies to the squared error only")
    generator = torch.Generator().manual_seed(0)

    def randn(*shape, scale=0.5):
        t = torch.randn(shape, generator=generator, dtype=torch.float64)
        return (scale * t).requires_grad_()

    n_nets, n, d, m = 3, 10, 6, 12
    params = [randn(n_nets, m, d), randn(n_nets, m), randn(n_nets, d, m)]
    params.append(randn(n_nets, d))
    w_enc, b_enc, w_dec, b_dec = params
    offset, scale = randn(n_nets, d).detach(), randn(n_nets, d).detach().abs() + 0.5
    units = (
        randn(n_nets, d).detach(),
        torch.tensor([1.3, 0.7, 1.0], dtype=torch.float64),
    )
    ks = torch.tensor([2, 3, 5])
    module = _StackedModule(
        [(w_enc, b_enc)],
        [(w_dec, b_dec, False)],
        offset,
        scale,
        "relu",
        StackedTopK(ks),
        units,
    )
    x = randn(n_nets, n, d, scale=1.0).detach()
    if loss == "binary_cross_entropy":
        x = torch.sigmoid(x)
    since = (torch.arange(n_nets * m, dtype=torch.float64) % 4 * 6).view(n_nets, m)
    weight = torch.tensor([0.5, 0.0, 2.0], dtype=torch.float64)
    window = torch.tensor([[6.0], [12.0], [6.0]], dtype=torch.float64)

    # Autograd, as the batched trainer computed it before the written-out step.
    codes, output = module.forward(x)
    counts = since.clone()
    update_since_fired(counts, codes.detach())
    module.code.samples_since_fired = counts
    if loss == "squared_error":
        target = module.target(x)
        values = (output - target).square().sum(dim=-1).mean(dim=-1)
    else:
        target = x
        values = (
            torch.nn.functional.binary_cross_entropy_with_logits(
                output, x, reduction="none"
            )
            .sum(dim=-1)
            .mean(dim=-1)
        )
    if revival:
        values = values + _auxk_penalty(
            module, x, codes, None, weight=weight, window=window
        )
    reference = torch.autograd.grad(values.sum(), params)

    written = since.clone()
    penalty = None
    if revival:

        def penalty(part, x_in, step):
            return _auxk_stacked_gradient(
                part, x_in, step, weight=weight, window=window
            )

    losses, grads = sparse_step(
        module, x, target.detach(), loss, written, penalty, Workspace()
    )
    torch.testing.assert_close(losses, values.detach())
    torch.testing.assert_close(written, counts)
    for p, g in zip(params, reference):
        torch.testing.assert_close(grads[p], g)
