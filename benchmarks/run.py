"""skae's performance harness: every figure measured beside its peer, as ratios.

One run measures the sections below side by side (runs interleaved, each
side warmed up once, medians of wall-clock ``time.perf_counter`` times) and
prints one table: section, figure, skae, peer/reference, ratio, target and
PASS / FAIL / info, under a line giving the versions, device, threads and
load average. The exit status is 1 when a target row fails (or a section
raises), 0 otherwise.

Data: synthetic float32, low-rank plus noise, fixed seed (``make_data`` in
``_harness.py``). Every skae estimator
gets ``batch_size=256``, ``random_state=0`` and fixed epochs (``tol=0``,
``n_iter_no_change=epochs + 1``; the "Maximum iterations" warnings this
budget raises are counted and the count printed, not shown one by one); skae's
one-layer model is ``hidden_layer_sizes=()`` with the default tanh,
``learning_rate_init=1e-3`` and ``alpha=1e-4``.

Sections (``--only`` names):

fit
    Seconds per epoch (the full ``fit(X)`` call divided by its epochs) at
    digits size (20000 x 64 -> 32) and MNIST size (60000 x 784 -> 128), one
    tanh layer, batch 256, Adam lr 1e-3, against three peers:
    (a) a bare torch loop with autograd (skae's ``AutoencoderModule``,
    the same Adam(fused) and weight decay, the whole tensor on the
    device, batches by ``index_select`` of a ``torch.randperm``);
    (b) skorch's ``NeuralNetRegressor`` with its defaults, trained X -> X:
    ``nn.Sequential(Linear, Tanh, Linear)`` of the same shape, Adam lr 1e-3,
    batch 256, NumPy float32 in, default ``train_split`` (so each epoch
    trains on 80% and scores the other 20%), DataLoader batching;
    (c) scikit-learn's ``MLPRegressor(hidden_layer_sizes=(k,),
    activation="tanh", solver="adam", batch_size=256,
    learning_rate_init=1e-3, alpha=1e-4)`` trained X -> X with fixed epochs
    (NumPy, on the CPU whatever ``--device``). Targets: skae / bare <= 1.10
    at both sizes; skae / MLPRegressor <= 1.0 at digits size; on CUDA only,
    skae at least 3x faster than MLPRegressor at MNIST size (<= 0.33).
step
    Latency of one training step at digits size: skorch's per-batch
    sequence on skae's net (notify, ``train_step``, ``loss.item()``,
    history bookkeeping, notify) against the bare step, on the same
    batches, as the median of many short interleaved chunks of 10 steps.
    Target on CUDA only: <= 0.4 ms per step; on the CPU the figures are
    informational and the target is reported as not measured.
penalties
    Seconds per epoch of the penalised variants relative to the plain
    ``Autoencoder`` at MNIST size (784 -> 128), each variant with its
    default activation and ``loss="squared_error"``:
    ``SparseAutoencoder(sparsity="kl")`` <= 1.3x, ``sparsity="l1"`` <= 1.2x,
    ``ContractiveAutoencoder(jacobian="closed_form")`` <= 1.5x, and
    ``ContractiveAutoencoder(hidden_layer_sizes=(256,),
    jacobian="projection")`` relative to ``Autoencoder(
    hidden_layer_sizes=(256,))`` <= 2x. ``jacobian="exact"`` on the deep
    encoder is an info row: one epoch on a small subset, scaled per row.
    The same ratios per training step (``net.train_step`` on the same 10
    batches, medians of interleaved chunks) are info rows: steadier than
    whole fits on a loaded machine.
transform
    Rows per second of ``transform`` (NumPy in and out) of a fitted
    one-layer Autoencoder (one epoch), 60000 x 784 -> 128, against
    ``PCA(128).fit(X)``'s ``transform``; target ratio >= 1.0 on the CPU,
    >= 1.2 on CUDA. ``inverse_transform`` against PCA's, as info.
memory
    In a fresh interpreter (``_memory_child.py``), the peak RSS that
    ``Autoencoder(n_components=16, hidden_layer_sizes=(), max_iter=1,
    batch_size=256, device="cpu").fit(X).transform(X)`` adds on a
    1,000,000 x 100 float32 X, as a multiple of ``X.nbytes``; target
    <= 1.5. The codes alone need 16 / 100 = 0.16x. ``PCA(16)`` is the
    reference row (info).
scaling
    skae's fit seconds per epoch at n = 10000, 20000, 40000 rows (256
    features -> 32) and at 64, 256, 1024 features (20000 rows -> 32); the
    slope of log(time) on log(size) (``np.polyfit``). Target slope in
    [0.8, 1.2] for n; the n_features slope is info (small widths are bound
    by per-step overhead, not arithmetic).

``--quick`` keeps every protocol and shrinks epochs, repeats and sizes
(2 MNIST-sized epochs, 2 repeats, info-only peers once; penalties on 20000
rows; memory on 200,000 rows). ``--threads N`` sets both torch's intra-op
threads and the BLAS threads NumPy and scikit-learn use (threadpoolctl), so
every side gets the same cores. ``--device cuda`` runs skae, the bare loop
and skorch on the GPU (MLPRegressor and PCA stay on the CPU) and turns on
the GPU-only targets; without CUDA it says so and runs on the CPU.

On a machine shared with other jobs, wall-clock times swing; interleaving
spreads that over every side, but ratios near a threshold can flip between
runs. torch's intra-op threads spin-wait for each other, so a busy machine
with ``threads`` + load > cores slows torch far more than NumPy: the header
warns, and ``--threads 1`` is the robust choice there.

Usage::

    python benchmarks/run.py                     # everything, full sizes
    python benchmarks/run.py --quick             # fewer epochs, repeats, rows
    python benchmarks/run.py --quick --threads 1 # 1.5-2.5 min, 2 busy cores
    python benchmarks/run.py --only fit step --device cuda
"""

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sklearn
import skorch
import torch
from sklearn.decomposition import PCA
from sklearn.neural_network import MLPRegressor
from skorch import NeuralNetRegressor
from threadpoolctl import threadpool_limits
from torch import nn

# Run from a checkout without installing: put the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import (  # noqa: E402
    ACTIVATION,
    ALPHA,
    BATCH_SIZE,
    BUDGET_WARNINGS,
    LR,
    REPO_ROOT,
    Row,
    bare_fit,
    bare_model,
    bare_optimizer,
    fmt_rate,
    fmt_ratio,
    fmt_s,
    format_table,
    interleave,
    load_average,
    make_data,
    median,
    quiet,
    sync,
    timed,
)

import skae  # noqa: E402
from skae import Autoencoder, ContractiveAutoencoder, SparseAutoencoder  # noqa: E402

SECTIONS = ("fit", "step", "penalties", "transform", "memory", "scaling")

# Settings are (full, quick) pairs; Context.pick chooses one.
FIT_PROBLEMS = {
    "digits": dict(n=20_000, d=64, k=32, epochs=(10, 4), repeats=(5, 3)),
    "MNIST": dict(n=60_000, d=784, k=128, epochs=(4, 2), repeats=(5, 2)),
}
INFO_PEER_REPEATS = (3, 1)  # peers whose rows have no target on this device
WARMUP_ROWS = 4096  # warm-ups: one epoch on the first rows
FIT_TARGETS = dict(bare=1.10, mlp_digits=1.0, mlp_mnist_gpu=1 / 3)

STEP = dict(n=20_000, d=64, k=32, chunk=10, chunks=(300, 60), target_ms=0.4)

PENALTIES = dict(
    n=(60_000, 20_000), d=784, k=128, epochs=(2, 1), repeats=(3, 3), deep=256
)
PENALTY_TARGETS = {"kl": 1.3, "l1": 1.2, "closed_form": 1.5, "projection": 2.0}
EXACT_ROWS = (2048, 512)
PENALTY_STEP_CHUNKS = (30, 10)  # interleaved 10-step chunks per variant

TRANSFORM = dict(n=60_000, d=784, k=128, repeats=(7, 3), cpu=1.0, gpu=1.2)

MEMORY = dict(n=(1_000_000, 200_000), target=1.5)

SCALING = dict(
    n_sizes=(10_000, 20_000, 40_000),
    n_width=256,
    d_sizes=(64, 256, 1024),
    d_rows=20_000,
    k=32,
    epochs=(5, 3),
    repeats=(3, 3),
    slope=(0.8, 1.2),
)


@dataclass
class Context:
    device: torch.device
    quick: bool
    threads: int
    log: Callable
    notes: list = field(default_factory=list)

    def pick(self, setting):
        """The full or quick variant of a (full, quick) setting."""
        return setting[1] if self.quick else setting[0]

    @property
    def cuda(self):
        return self.device.type == "cuda"


NOT_MEASURED = "not measured on this machine"


def gpu_row(section, figure, target):
    """A GPU-only target on a run without CUDA."""
    return Row(section, figure, "-", "-", "-", target, None, NOT_MEASURED)


# ------------------------------------------------------------------- fit


def per_epoch(fit, X, k, epochs, device):
    """A timed side: ``fit(X, k, epochs, device)``'s wall seconds / epochs."""

    def once():
        return timed(lambda: fit(X, k, epochs, device), device)[0] / epochs

    return once


def skae_fit(X, k, epochs, device):
    """skae's one-layer Autoencoder fitted for exactly ``epochs``."""
    est = Autoencoder(
        n_components=k,
        hidden_layer_sizes=(),
        batch_size=BATCH_SIZE,
        max_iter=epochs,
        tol=0,
        n_iter_no_change=epochs + 1,
        random_state=0,
        device=str(device),
    )
    quiet(est.fit, X)
    assert est.n_iter_ == epochs, (est.n_iter_, epochs)
    return est


def skorch_fit(X, k, epochs, device):
    """skorch's NeuralNetRegressor with its defaults, trained X -> X."""
    d = X.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = nn.Sequential(nn.Linear(d, k), nn.Tanh(), nn.Linear(k, d))
    net = NeuralNetRegressor(
        module,
        optimizer=torch.optim.Adam,
        lr=LR,
        batch_size=BATCH_SIZE,
        max_epochs=epochs,
        device=str(device),
        verbose=0,
    )
    net.fit(X, X)
    assert len(net.history) == epochs, (len(net.history), epochs)
    return net


def mlp_fit(X, k, epochs, device):
    """scikit-learn's MLPRegressor trained X -> X for exactly ``epochs``."""
    mlp = MLPRegressor(
        hidden_layer_sizes=(k,),
        activation=ACTIVATION,
        solver="adam",
        batch_size=BATCH_SIZE,
        learning_rate_init=LR,
        alpha=ALPHA,
        max_iter=epochs,
        tol=0,
        n_iter_no_change=epochs + 1,
        early_stopping=False,
        random_state=0,
    )
    quiet(mlp.fit, X, X)
    assert mlp.n_iter_ == epochs, (mlp.n_iter_, epochs)
    return mlp


FIT_PEERS = {
    "bare": ("bare torch loop", bare_fit),
    "skae": ("skae", skae_fit),
    "skorch": ("skorch NeuralNetRegressor", skorch_fit),
    "mlp": ("MLPRegressor", mlp_fit),
}


def section_fit(ctx):
    rows = []
    for name, cfg in FIT_PROBLEMS.items():
        X = make_data(cfg["n"], cfg["d"])
        k, epochs = cfg["k"], ctx.pick(cfg["epochs"])
        repeats = ctx.pick(cfg["repeats"])
        info_repeats = ctx.pick(INFO_PEER_REPEATS)
        mlp_has_target = name == "digits" or ctx.cuda
        side_repeats = {
            "bare": repeats,
            "skae": repeats,
            "skorch": min(repeats, info_repeats),
            "mlp": repeats if mlp_has_target else min(repeats, info_repeats),
        }
        size = f"{name} {cfg['n']}x{cfg['d']}->{k}"
        ctx.log(
            f"\n[fit] {size}: {epochs} epochs, repeats {side_repeats}, "
            f"{-(-cfg['n'] // BATCH_SIZE)} batches/epoch"
        )
        for _, fit in FIT_PEERS.values():
            # Warm-up: one epoch on the first rows (imports, kernels, caches).
            fit(X[:WARMUP_ROWS], k, 1, ctx.device)

        times = interleave(
            {
                key: per_epoch(fit, X, k, epochs, ctx.device)
                for key, (_, fit) in FIT_PEERS.items()
            },
            side_repeats,
            ctx.log,
            "s/epoch ",
        )
        med = {key: median(v) for key, v in times.items()}
        for key, v in times.items():
            ctx.log(
                f"  {FIT_PEERS[key][0]:<26} median {med[key]:.4f} s/epoch "
                f"(range {min(v):.4f}-{max(v):.4f}); skae / this: median "
                f"{med['skae'] / med[key]:.2f}x, fastest "
                f"{min(times['skae']) / min(v):.2f}x"
            )
        for key in ("bare", "skorch", "mlp"):
            ratio = med["skae"] / med[key]
            target, passed = "-", None
            if key == "bare":
                target = f"<= {FIT_TARGETS['bare']:.2f}"
                passed = ratio <= FIT_TARGETS["bare"]
            elif key == "mlp" and name == "digits":
                target = f"<= {FIT_TARGETS['mlp_digits']:.2f}"
                passed = ratio <= FIT_TARGETS["mlp_digits"]
            elif key == "mlp" and ctx.cuda:
                target = "<= 0.33 (>= 3x faster)"
                passed = ratio <= FIT_TARGETS["mlp_mnist_gpu"]
            peer = fmt_s(med[key])
            if key != "bare":
                peer += f" ({med[key] / med['bare']:.2f}x bare)"
            rows.append(
                Row(
                    "fit",
                    f"{size} s/epoch vs {FIT_PEERS[key][0]}",
                    fmt_s(med["skae"]),
                    peer,
                    fmt_ratio(ratio),
                    target,
                    passed,
                )
            )
        if name == "MNIST" and not ctx.cuda:
            rows.append(
                gpu_row(
                    "fit",
                    f"{size} s/epoch vs MLPRegressor, skae on GPU",
                    "<= 0.33 (>= 3x faster)",
                )
            )
    return rows


# ------------------------------------------------------------------ step


def section_step(ctx):
    """Per-step latency, skorch's per-batch sequence vs the bare step."""
    from skorch.dataset import get_len

    cfg, device = STEP, ctx.device
    chunk, chunks = cfg["chunk"], ctx.pick(cfg["chunks"])
    X_np = make_data(cfg["n"], cfg["d"])
    net = skae_fit(X_np, cfg["k"], 1, device).net_
    net.callbacks = None  # skae's own default callbacks only
    net.initialize_callbacks()
    net.history.new_epoch()

    X = torch.from_numpy(X_np).to(device)
    n_batches = X.shape[0] // BATCH_SIZE
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(0))
    perm = perm.to(device)
    model = bare_model(cfg["d"], cfg["k"], device)
    optimizer = bare_optimizer(model, device)
    model.train()

    def batch_at(i):
        start = (i % n_batches) * BATCH_SIZE
        return X.index_select(0, perm[start : start + BATCH_SIZE])

    def bare_chunk(i0):
        total = torch.zeros((), device=device)
        for i in range(i0, i0 + chunk):
            xb = batch_at(i)
            optimizer.zero_grad()
            _, out = model(xb)
            loss = (out - xb).square().sum(dim=-1).mean()
            loss.backward()
            optimizer.step()
            total += loss.detach() * xb.shape[0]
        total.item()

    def skae_chunk(i0):
        # The body of skorch's NeuralNet.run_single_epoch, batch by batch.
        for i in range(i0, i0 + chunk):
            batch = (batch_at(i), None)
            net.notify("on_batch_begin", batch=batch, training=True)
            step = net.train_step(batch)
            net.history.record_batch("train_loss", step["loss"].item())
            net.history.record_batch("train_batch_size", get_len(batch[0]))
            net.notify("on_batch_end", batch=batch, training=True, **step)

    counter = iter(range(0, 10**9, chunk))

    def side(run):
        def once():
            return timed(lambda: run(next(counter)), device)[0] / chunk * 1e3

        return once

    bare_chunk(0)
    skae_chunk(0)
    ctx.log(
        f"\n[step] digits {cfg['n']}x{cfg['d']}->{cfg['k']}: {chunks} chunks of "
        f"{chunk} steps per side"
    )
    times = interleave(
        {"bare": side(bare_chunk), "skae": side(skae_chunk)},
        chunks,
        lambda *a: None,
    )
    med = {key: median(v) for key, v in times.items()}
    for key, v in times.items():
        ctx.log(
            f"  {key}: median {med[key]:.4f} ms/step, min {min(v):.4f}, "
            f"p90 {sorted(v)[int(0.9 * len(v))]:.4f}"
        )
    figure = "digits ms/step (median of chunks) vs bare step"
    target = f"<= {cfg['target_ms']} ms (GPU)"
    skae_ms, bare_ms = med["skae"], med["bare"]
    rows = []
    if ctx.cuda:
        rows.append(
            Row(
                "step",
                figure,
                f"{skae_ms:.3f} ms",
                f"{bare_ms:.3f} ms",
                fmt_ratio(skae_ms / bare_ms),
                target,
                skae_ms <= cfg["target_ms"],
            )
        )
    else:
        rows.append(
            Row(
                "step",
                figure + " (CPU)",
                f"{skae_ms:.3f} ms",
                f"{bare_ms:.3f} ms",
                fmt_ratio(skae_ms / bare_ms),
                "-",
                None,
            )
        )
        rows.append(gpu_row("step", "digits ms/step, skae on GPU", target))
    return rows


# ------------------------------------------------------------- penalties


def penalty_estimators(k, epochs, device, deep):
    common = dict(
        n_components=k,
        loss="squared_error",
        batch_size=BATCH_SIZE,
        max_iter=epochs,
        tol=0,
        n_iter_no_change=epochs + 1,
        random_state=0,
        device=str(device),
    )
    return {
        "Autoencoder": Autoencoder(hidden_layer_sizes=(), **common),
        "kl": SparseAutoencoder(sparsity="kl", **common),
        "l1": SparseAutoencoder(sparsity="l1", **common),
        "closed_form": ContractiveAutoencoder(jacobian="closed_form", **common),
        "Autoencoder deep": Autoencoder(hidden_layer_sizes=(deep,), **common),
        "projection": ContractiveAutoencoder(
            hidden_layer_sizes=(deep,), jacobian="projection", **common
        ),
        "exact": ContractiveAutoencoder(
            hidden_layer_sizes=(deep,), jacobian="exact", **common
        ),
    }


PENALTY_LABELS = {
    "kl": ("SparseAutoencoder(sparsity='kl')", "Autoencoder"),
    "l1": ("SparseAutoencoder(sparsity='l1')", "Autoencoder"),
    "closed_form": ("ContractiveAutoencoder(jacobian='closed_form')", "Autoencoder"),
    "projection": (
        "ContractiveAutoencoder((256,), jacobian='projection')",
        "Autoencoder deep",
    ),
}


def section_penalties(ctx):
    from sklearn.base import clone

    cfg = PENALTIES
    n, d, k, deep = ctx.pick(cfg["n"]), cfg["d"], cfg["k"], cfg["deep"]
    epochs, repeats = ctx.pick(cfg["epochs"]), ctx.pick(cfg["repeats"])
    X = make_data(n, d)
    estimators = penalty_estimators(k, epochs, ctx.device, deep)
    exact = estimators.pop("exact")
    ctx.log(
        f"\n[penalties] {n}x{d}->{k}: {epochs} epochs x {repeats} repeats, "
        f"deep encoder ({deep},)"
    )
    warm = {}
    for key, est in estimators.items():
        one_epoch = clone(est).set_params(max_iter=1, n_iter_no_change=2)
        warm[key] = quiet(one_epoch.fit, X[:WARMUP_ROWS])

    def side(est):
        def once():
            fresh = clone(est)
            return timed(lambda: quiet(fresh.fit, X), ctx.device)[0] / epochs

        return once

    times = interleave(
        {key: side(est) for key, est in estimators.items()}, repeats, ctx.log
    )
    med = {key: median(v) for key, v in times.items()}
    rows = []
    for key, (label, base) in PENALTY_LABELS.items():
        ratio = med[key] / med[base]
        base_label = "Autoencoder((256,))" if base == "Autoencoder deep" else base
        rows.append(
            Row(
                "penalties",
                f"{label} s/epoch vs {base_label}",
                fmt_s(med[key]),
                fmt_s(med[base]),
                fmt_ratio(ratio),
                f"<= {PENALTY_TARGETS[key]:.1f}",
                ratio <= PENALTY_TARGETS[key],
            )
        )

    # Per training step: the same 10 batches through each warmed-up net, in
    # many short interleaved chunks (medians), so that load swings between
    # whole fits do not enter the ratio. Info rows.
    batches = [
        (torch.from_numpy(X[i : i + BATCH_SIZE]).to(ctx.device), None)
        for i in range(0, 10 * BATCH_SIZE, BATCH_SIZE)
    ]

    def chunk(net):
        def once():
            return timed(lambda: [net.train_step(b) for b in batches], ctx.device)[
                0
            ] / len(batches)

        return once

    steps = interleave(
        {key: chunk(est.net_) for key, est in warm.items()},
        ctx.pick(PENALTY_STEP_CHUNKS),
        lambda _: None,
    )
    step = {key: median(v) for key, v in steps.items()}
    ctx.log(
        "  per step (median of chunks): "
        + ", ".join(f"{key} {1e3 * v:.2f} ms" for key, v in step.items())
    )
    for key, (label, base) in PENALTY_LABELS.items():
        base_label = "Autoencoder((256,))" if base == "Autoencoder deep" else base
        rows.append(
            Row(
                "penalties",
                f"{label} ms/step (median of chunks) vs {base_label}",
                f"{1e3 * step[key]:.2f} ms",
                f"{1e3 * step[base]:.2f} ms",
                fmt_ratio(step[key] / step[base]),
                "-",
                None,
            )
        )

    # jacobian="exact": one epoch on a subset, scaled to n rows.
    m = ctx.pick(EXACT_ROWS)
    quiet(clone(exact).set_params(max_iter=1, n_iter_no_change=2).fit, X[:BATCH_SIZE])
    fresh = clone(exact).set_params(max_iter=1, n_iter_no_change=2)
    seconds = timed(lambda: quiet(fresh.fit, X[:m]), ctx.device)[0]
    per_epoch = seconds * n / m
    ctx.log(f"  exact: {seconds:.3f} s for one epoch of {m} rows")
    rows.append(
        Row(
            "penalties",
            f"ContractiveAutoencoder((256,), jacobian='exact') s/epoch "
            f"(1 epoch of {m} rows, x{n // m}) vs Autoencoder((256,))",
            fmt_s(per_epoch),
            fmt_s(med["Autoencoder deep"]),
            fmt_ratio(per_epoch / med["Autoencoder deep"]),
            "-",
            None,
        )
    )
    return rows


# ------------------------------------------------------------- transform


def section_transform(ctx):
    cfg = TRANSFORM
    n, d, k, repeats = cfg["n"], cfg["d"], cfg["k"], ctx.pick(cfg["repeats"])
    X = make_data(n, d)
    ae = skae_fit(X, k, 1, ctx.device)
    pca_seconds, pca = timed(lambda: PCA(k, random_state=0).fit(X), ctx.device)
    codes, pca_codes = ae.transform(X), pca.transform(X)  # warm-ups
    ae.inverse_transform(codes)
    pca.inverse_transform(pca_codes)
    assert codes.dtype == np.float32 and pca_codes.dtype == np.float32
    ctx.log(
        f"\n[transform] {n}x{d}->{k}, NumPy float32 in and out, {repeats} "
        f"repeats; PCA fit {pca_seconds:.2f} s (not timed below)"
    )

    def side(fn, arg):
        return lambda: timed(lambda: fn(arg), ctx.device)[0]

    sides = {
        "skae transform": side(ae.transform, X),
        "PCA transform": side(pca.transform, X),
        "skae inverse": side(ae.inverse_transform, codes),
        "PCA inverse": side(pca.inverse_transform, pca_codes),
    }
    if not ctx.cuda:
        # The same encoder through torch's products (the route transform
        # takes on other devices), block by block as transform does.
        sides["torch route"] = side(torch_route(ae), X)
    times = interleave(sides, repeats, ctx.log)
    rate = {key: n / median(v) for key, v in times.items()}
    target = cfg["gpu"] if ctx.cuda else cfg["cpu"]
    ratio = rate["skae transform"] / rate["PCA transform"]
    inverse = rate["skae inverse"] / rate["PCA inverse"]
    rows = []
    if not ctx.cuda:
        rows.append(
            Row(
                "transform",
                "transform's encoder: NumPy's products (CPU route) rows/s vs torch's",
                fmt_rate(rate["skae transform"]),
                fmt_rate(rate["torch route"]),
                fmt_ratio(rate["skae transform"] / rate["torch route"]),
                "-",
                None,
            )
        )
    return rows + [
        Row(
            "transform",
            f"transform rows/s vs PCA({k}), {n}x{d}",
            fmt_rate(rate["skae transform"]),
            fmt_rate(rate["PCA transform"]),
            fmt_ratio(ratio),
            f">= {target:.1f}" + (" (GPU)" if ctx.cuda else ""),
            ratio >= target,
        ),
        Row(
            "transform",
            f"inverse_transform rows/s vs PCA({k})",
            fmt_rate(rate["skae inverse"]),
            fmt_rate(rate["PCA inverse"]),
            fmt_ratio(inverse),
            "-",
            None,
        ),
    ]


def torch_route(ae):
    """``X -> codes`` through the fitted encoder's torch products, in
    1024-row blocks written into one result (transform's route off the CPU)."""
    module = ae.net_.module_

    def encode(X):
        fn = module.inference_encoder()
        out = torch.empty((len(X), ae.n_components))
        with torch.inference_mode():
            for start in range(0, len(X), 1024):
                rows = torch.from_numpy(X[start : start + 1024])
                fn(rows, out[start : start + len(rows)])
        return out.numpy()

    return encode


# ---------------------------------------------------------------- memory


def memory_child(which, n_rows, threads):
    """Run _memory_child.py in a fresh interpreter; return its JSON."""
    script = REPO_ROOT / "benchmarks" / "_memory_child.py"
    done = subprocess.run(
        [sys.executable, str(script), which, str(n_rows), str(threads)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"memory child ({which}) exited {done.returncode}:\n{done.stderr}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def section_memory(ctx):
    n = ctx.pick(MEMORY["n"])
    target = MEMORY["target"]
    ctx.log(f"\n[memory] {n}x100 float32 -> 16, fresh interpreter each, CPU")
    out = {}
    for which in ("skae", "pca"):
        res = memory_child(which, n, ctx.threads)
        res["added"] = res["peak_after"] - res["peak_before"]
        out[which] = res
        ctx.log(
            f"  {which}: peak RSS {res['peak_before'] / 2**20:.0f} MiB before, "
            f"{res['peak_after'] / 2**20:.0f} MiB after fit + transform"
        )
    x_bytes = out["skae"]["x_bytes"]
    codes_bytes = out["skae"]["codes_bytes"]

    def mib(b):
        return f"{b / 2**20:.0f} MiB"

    skae_ratio = out["skae"]["added"] / x_bytes
    pca_ratio = out["pca"]["added"] / x_bytes
    return [
        Row(
            "memory",
            f"peak RSS added by fit + transform, {n}x100, / X.nbytes",
            f"+{mib(out['skae']['added'])}",
            f"X {mib(x_bytes)}, codes {mib(codes_bytes)} "
            f"({codes_bytes / x_bytes:.2f}x X)",
            fmt_ratio(skae_ratio),
            f"<= {target:.1f}",
            skae_ratio <= target,
        ),
        Row(
            "memory",
            f"PCA(16) peak RSS added by fit + transform, {n}x100, / X.nbytes",
            "-",
            f"+{mib(out['pca']['added'])}",
            fmt_ratio(pca_ratio),
            "-",
            None,
        ),
    ]


# --------------------------------------------------------------- scaling


def section_scaling(ctx):
    cfg = SCALING
    k, epochs, repeats = cfg["k"], ctx.pick(cfg["epochs"]), ctx.pick(cfg["repeats"])
    lo, hi = cfg["slope"]
    X_wide = make_data(max(cfg["n_sizes"]), cfg["n_width"])
    sweeps = {
        "n_samples": {
            n: X_wide[:n] for n in cfg["n_sizes"]
        },  # same distribution, first n rows
        "n_features": {d: make_data(cfg["d_rows"], d) for d in cfg["d_sizes"]},
    }
    rows = []
    for sweep, data in sweeps.items():
        ctx.log(f"\n[scaling] {sweep} in {list(data)}: {epochs} epochs x {repeats}")
        for X in data.values():
            skae_fit(X[:WARMUP_ROWS], k, 1, ctx.device)

        times = interleave(
            {
                f"{sweep}={size}": per_epoch(skae_fit, X, k, epochs, ctx.device)
                for size, X in data.items()
            },
            repeats,
            ctx.log,
        )
        sizes = np.array(list(data), dtype=float)
        seconds = np.array([median(v) for v in times.values()])
        slope = np.polyfit(np.log(sizes), np.log(seconds), 1)[0]
        if sweep == "n_samples":
            shape = f"n in {'/'.join(str(s) for s in data)} at {cfg['n_width']}->{k}"
            target, passed = f"slope in [{lo}, {hi}]", bool(lo <= slope <= hi)
        else:
            shape = f"n_features in {'/'.join(str(s) for s in data)} at "
            shape += f"{cfg['d_rows']} rows ->{k}"
            target, passed = "- (overhead-bound)", None
        rows.append(
            Row(
                "scaling",
                f"s/epoch vs {shape}",
                " / ".join(fmt_s(t) for t in seconds),
                "slope 1 (linear)",
                f"slope {slope:.2f}",
                target,
                passed,
            )
        )
    return rows


SECTION_FUNCS = {
    "fit": section_fit,
    "step": section_step,
    "penalties": section_penalties,
    "transform": section_transform,
    "memory": section_memory,
    "scaling": section_scaling,
}


# ------------------------------------------------------------------ main


def header(ctx):
    return (
        f"skae {skae.__version__}, torch {torch.__version__}, skorch "
        f"{skorch.__version__}, scikit-learn {sklearn.__version__}, numpy "
        f"{np.__version__}, python {sys.version.split()[0]} | device "
        f"{ctx.device} | threads {ctx.threads} (torch and BLAS) | load average "
        f"{load_average()} on {os.cpu_count()} CPUs"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer epochs, repeats and rows"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="device of skae, the bare loop and skorch (default: cpu)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"run these sections only ({', '.join(SECTIONS)})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch and BLAS threads (default: torch's default here, %(default)s)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print the table only"
    )
    args = parser.parse_args(argv)

    notes = []
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        notes.append(
            "CUDA was requested but is not available: running on the CPU; "
            "GPU-only targets are not measured."
        )
        device = torch.device("cpu")
    torch.set_num_threads(args.threads)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    ctx = Context(device, args.quick, args.threads, log, notes)
    selected = [s for s in SECTIONS if args.only is None or s in args.only]

    start_header = header(ctx)
    print(start_header, flush=True)
    for note in notes:
        print(f"NOTE: {note}", flush=True)
    busy, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if args.threads > 1 and busy + args.threads > cpus + 0.5:
        print(
            f"WARNING: load average {busy:.1f} plus {args.threads} threads "
            f"exceeds {cpus} CPUs; torch's spin-waiting threads slow down "
            "many-fold under oversubscription (try --threads 1).",
            flush=True,
        )
    elif busy > cpus - 0.5:
        print(
            f"WARNING: load average {busy:.1f} on {cpus} CPUs; other "
            "processes make these timings noisy.",
            flush=True,
        )

    rows, timings = [], []
    total_start = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        for name in selected:
            section_start = time.perf_counter()
            try:
                rows.extend(SECTION_FUNCS[name](ctx))
            except Exception as exc:  # report, keep going, fail the run
                traceback.print_exc()
                rows.append(
                    Row(
                        name,
                        f"raised {type(exc).__name__}: {exc}"[:100],
                        "-",
                        "-",
                        "-",
                        "-",
                        False,
                        "ERROR",
                    )
                )
            timings.append(f"{name} {time.perf_counter() - section_start:.0f} s")
            sync(device)

    print()
    print(start_header)
    print(f"load average at the end: {load_average()}")
    for note in notes:
        print(f"NOTE: {note}")
    print(
        "ratios: skae / peer for times (lower is better), skae / peer for "
        "rows/s (higher is better), added peak RSS / X.nbytes for memory"
    )
    print(format_table(rows))
    print()
    print(
        f"Fixed-epoch fits that reached max_iter (by design): "
        f"{BUDGET_WARNINGS['count']} ConvergenceWarnings counted"
    )
    print(
        "Timings: "
        + "; ".join(timings)
        + f"; total {time.perf_counter() - total_start:.0f} s"
    )
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
