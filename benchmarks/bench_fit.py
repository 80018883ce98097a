"""skae's fit time against a bare torch training loop, side by side.

For each problem size, the same one-layer autoencoder is trained by

* ``skae.Autoencoder(...).fit(X)`` -- the full call a user pays for
  (validation, net construction, skorch's fit loop, fitted attributes), and
* a bare torch loop doing the same work: ``torch.from_numpy`` of the data,
  the same ``AutoencoderModule``, the same ``Adam(fused=True)`` with the
  same two parameter groups (weights: ``weight_decay=alpha``; biases: 0),
  one ``torch.randperm`` per epoch and ``X.index_select`` per batch,
  squared error summed over features then averaged over the batch (skae's
  training objective),
  ``zero_grad`` / ``backward`` / ``step``.

Loss bookkeeping differs on purpose and is stated in the output: skorch
calls ``loss.item()`` once per batch (a host sync per batch, which is free
on the CPU but not on a GPU); the bare loop sums ``loss.detach()`` on the
device and calls ``.item()`` once per epoch.

Runs are interleaved (bare, skae, then skae, bare, ...) so that drifts in
machine load hit both alike; each side is warmed up by one short fit first.
The table shows the median seconds per epoch (total fit time / epochs) of
each side and their ratio; the exit status is 1 when a ratio misses its
target.

Full fits on a shared machine swing by +-20% with other processes' load;
``--per-step`` adds a measurement that does not: the fastest of many short
interleaved chunks of training steps, skorch's per-batch sequence against the
bare step (fit-level one-off costs excluded).

Usage::

    python benchmarks/bench_fit.py               # ~1.5 min idle, 2 cores
    python benchmarks/bench_fit.py --quick       # fewer repeats and epochs
    python benchmarks/bench_fit.py --per-step    # plus per-step overhead
    python benchmarks/bench_fit.py --threads 1 --device cuda
"""

import argparse
import gc
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

# Run from a checkout without installing: put the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import skae  # noqa: E402
from skae import Autoencoder  # noqa: E402
from skae._modules import AutoencoderModule  # noqa: E402

BATCH_SIZE = 256
LR = 1e-3
ALPHA = 1e-4
ACTIVATION = "tanh"

# name, n_samples, n_features, n_components, epochs, repeats, target ratio
PROBLEMS = {
    "digits": dict(n=20_000, d=64, k=32, epochs=20, repeats=7, target=1.35),
    "mnist": dict(n=60_000, d=784, k=128, epochs=2, repeats=7, target=1.10),
}
QUICK = {"digits": dict(epochs=10, repeats=3), "mnist": dict(epochs=2, repeats=2)}
# --per-step: steps per timed chunk and chunks per side
PER_STEP = {"digits": dict(chunk=10, chunks=300), "mnist": dict(chunk=4, chunks=60)}


def make_data(n, d, seed=0, rank=None):
    """float32, roughly standard normal, with low-rank structure plus noise."""
    rng = np.random.default_rng(seed)
    rank = rank or max(4, d // 8)
    latent = rng.standard_normal((n, rank))
    mixing = rng.standard_normal((rank, d)) / np.sqrt(rank)
    X = 0.9 * latent @ mixing + 0.45 * rng.standard_normal((n, d))
    return X.astype(np.float32)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock():
    return time.perf_counter(), time.process_time()


def _elapsed(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def bare_fit(X_np, k, epochs, device, seed=0):
    """The bare loop; returns ((wall s, cpu s), final epoch loss)."""
    _sync(device)
    start = _clock()
    X = torch.from_numpy(X_np).to(device)
    n = X.shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoencoderModule(X.shape[1], k, (), ACTIVATION).to(device)
    named = list(model.named_parameters())
    groups = [
        {"params": [p for name, p in named if not name.endswith("bias")]},
        {
            "params": [p for name, p in named if name.endswith("bias")],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.Adam(
        groups, lr=LR, weight_decay=ALPHA, fused=device.type in ("cpu", "cuda")
    )
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    model.train()
    epoch_loss = float("nan")
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator, device=device)
        total = torch.zeros((), device=device)
        for i in range(0, n, BATCH_SIZE):
            xb = X.index_select(0, perm[i : i + BATCH_SIZE])
            optimizer.zero_grad()
            _, out = model(xb)
            loss = (out - xb).square().sum(dim=-1).mean()
            loss.backward()
            optimizer.step()
            total += loss.detach() * xb.shape[0]
        epoch_loss = total.item() / n  # one host sync per epoch
    _sync(device)
    return _elapsed(start), epoch_loss


def skae_fit(X_np, k, epochs, device, seed=0):
    """The full ``Autoencoder.fit``; returns ((wall s, cpu s), final loss)."""
    est = Autoencoder(
        n_components=k,
        hidden_layer_sizes=(),
        activation=ACTIVATION,
        learning_rate_init=LR,
        alpha=ALPHA,
        batch_size=BATCH_SIZE,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs,
        device=str(device),
        random_state=seed,
    )
    _sync(device)
    start = _clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_np)
    _sync(device)
    elapsed = _elapsed(start)
    assert est.n_iter_ == epochs, (est.n_iter_, epochs)
    return elapsed, est.loss_curve_[-1]


def run_problem(name, cfg, device, log):
    X = make_data(cfg["n"], cfg["d"])
    k, epochs, repeats = cfg["k"], cfg["epochs"], cfg["repeats"]
    log(
        f"\n[{name}] X {X.shape[0]}x{X.shape[1]} -> {k} codes, "
        f"{epochs} epochs x {repeats} repeats, "
        f"{-(-X.shape[0] // BATCH_SIZE)} batches/epoch"
    )
    # Warm-up: one short fit of each (allocator, kernels, imports, lazy init).
    bare_fit(X, k, 1, device)
    skae_fit(X, k, 1, device)

    runners = {"bare": bare_fit, "skae": skae_fit}
    wall = {"bare": [], "skae": []}
    cpu = {"bare": [], "skae": []}
    losses = {}
    for r in range(repeats):
        order = ("bare", "skae") if r % 2 == 0 else ("skae", "bare")
        for side in order:
            gc.collect()
            (w, c), loss = runners[side](X, k, epochs, device)
            wall[side].append(w / epochs)
            cpu[side].append(c / epochs)
            losses[side] = loss
            log(
                f"  repeat {r + 1}/{repeats} {side:4s}: {w:7.3f} s wall, "
                f"{c:7.3f} s cpu ({w / epochs:.4f} s/epoch, "
                f"last loss {loss:.4f})"
            )
    med = {side: statistics.median(v) for side, v in wall.items()}
    return dict(
        problem=f"{name} {X.shape[0]}x{X.shape[1]}->{k}",
        bare=med["bare"],
        skae=med["skae"],
        ratio=med["skae"] / med["bare"],
        ratio_min=min(wall["skae"]) / min(wall["bare"]),
        ratio_cpu=statistics.median(cpu["skae"]) / statistics.median(cpu["bare"]),
        target=cfg["target"],
        wall=wall,
        losses=losses,
    )


def per_step(name, cfg, device, log):
    """Per-step cost of the two loops, minimum over short interleaved chunks.

    Full fits on a shared machine are at the mercy of other processes; the
    fastest of many short chunks (a few ms each) is not. The skae side runs
    skorch's own per-batch sequence (notify, train_step, loss.item(),
    history.record_batch, notify) on a fitted net, the bare side the bare
    step; both on the same batches. Fit-level one-off costs are excluded.
    """
    from skorch.dataset import get_len

    X_np = make_data(cfg["n"], cfg["d"])
    est = Autoencoder(
        n_components=cfg["k"],
        hidden_layer_sizes=(),
        activation=ACTIVATION,
        learning_rate_init=LR,
        alpha=ALPHA,
        batch_size=BATCH_SIZE,
        max_iter=1,
        device=str(device),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_np)
    net = est.net_
    net.callbacks = None  # skae's own default callbacks only
    net.initialize_callbacks()
    net.history.new_epoch()
    X = torch.from_numpy(X_np).to(device)
    n = X.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(device)
    n_batches = n // BATCH_SIZE

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoencoderModule(cfg["d"], cfg["k"], (), ACTIVATION).to(device)
    named = list(model.named_parameters())
    optimizer = torch.optim.Adam(
        [
            {"params": [p for nm, p in named if not nm.endswith("bias")]},
            {
                "params": [p for nm, p in named if nm.endswith("bias")],
                "weight_decay": 0.0,
            },
        ],
        lr=LR,
        weight_decay=ALPHA,
        fused=device.type in ("cpu", "cuda"),
    )
    model.train()
    chunk = cfg["chunk"]

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
        for i in range(i0, i0 + chunk):
            batch = (batch_at(i), None)
            net.history.new_batch()
            net.notify("on_batch_begin", batch=batch, training=True)
            step = net.train_step(batch)
            net.history.record_batch("train_loss", step["loss"].item())
            net.history.record_batch("train_batch_size", get_len(batch[0]))
            net.notify("on_batch_end", batch=batch, training=True, **step)

    runners = {"bare": bare_chunk, "skae": skae_chunk}
    for run in runners.values():
        run(0)
    times = {side: [] for side in runners}
    for r in range(cfg["chunks"]):
        for side in ("bare", "skae") if r % 2 == 0 else ("skae", "bare"):
            _sync(device)
            start = time.perf_counter()
            runners[side](r * chunk)
            _sync(device)
            times[side].append((time.perf_counter() - start) / chunk * 1e6)
    out = {}
    for side, v in times.items():
        v = sorted(v)
        out[side] = (v[0], v[len(v) // 10], v[len(v) // 2])
    log(f"[{name}] per step, {cfg['chunks']} chunks of {chunk} steps per side")
    return name, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch.set_num_threads (default: torch's default "
        "on this machine, %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument(
        "--problems", nargs="+", choices=sorted(PROBLEMS), default=list(PROBLEMS)
    )
    parser.add_argument("--repeats", type=int, help="override repeats")
    parser.add_argument("--epochs", type=int, help="override epochs")
    parser.add_argument(
        "--per-step",
        action="store_true",
        help="also time single steps (min over short chunks): "
        "skorch's per-batch overhead, robust to other "
        "load on the machine",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print the table only"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    print(
        f"torch {torch.__version__}, skae {getattr(skae, '__version__', '?')}, "
        f"python {sys.version.split()[0]}"
    )
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, "
        f"batch_size {BATCH_SIZE}, activation {ACTIVATION}, Adam(fused) "
        f"lr {LR} alpha {ALPHA}"
    )
    print("loss: squared error summed over features, then mean over the batch")
    print(
        "loss bookkeeping: skae/skorch = loss.item() every batch; "
        "bare = sum of loss.detach() on device, .item() once per epoch"
    )
    print(
        "timed: skae = full est.fit(X_numpy); bare = torch.from_numpy + "
        "model/optimizer construction + loop"
    )

    results = []
    t0 = time.perf_counter()
    for name in args.problems:
        cfg = dict(PROBLEMS[name])
        if args.quick:
            cfg.update(QUICK[name])
        if args.repeats:
            cfg["repeats"] = args.repeats
        if args.epochs:
            cfg["epochs"] = args.epochs
        results.append(run_problem(name, cfg, device, log))

    print()
    header = (
        f"{'problem':<24} {'bare s/epoch':>13} {'skae s/epoch':>13} "
        f"{'ratio':>7} {'target':>7}  result   "
        f"{'min-ratio':>9} {'cpu-ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for res in results:
        verdict = "PASS" if res["ratio"] <= res["target"] else "FAIL"
        print(
            f"{res['problem']:<24} {res['bare']:>13.4f} {res['skae']:>13.4f} "
            f"{res['ratio']:>6.2f}x {res['target']:>6.2f}x  {verdict:<6}   "
            f"{res['ratio_min']:>8.2f}x {res['ratio_cpu']:>8.2f}x"
        )
    print(
        "ratio = median skae s/epoch / median bare s/epoch (wall clock; "
        "decides pass/fail); min-ratio = fastest / fastest; cpu-ratio = "
        "process CPU time, less sensitive to other load on the machine"
    )
    print()
    for res in results:
        spread = "; ".join(
            f"{side} {min(v):.4f}-{max(v):.4f}" for side, v in res["wall"].items()
        )
        print(
            f"{res['problem']}: s/epoch range {spread}; last-epoch loss "
            f"bare {res['losses']['bare']:.4f}, skae {res['losses']['skae']:.4f}"
        )
    if os.getloadavg()[0] > os.cpu_count():
        print(
            f"WARNING: load average {os.getloadavg()[0]:.1f} exceeds "
            f"{os.cpu_count()} CPUs; other processes distort these timings."
        )
    if args.per_step:
        print()
        rows = [
            per_step(name, {**PROBLEMS[name], **PER_STEP[name]}, device, log)
            for name in args.problems
        ]
        print(
            f"{'per step (us)':<14} {'bare min':>9} {'skae min':>9} "
            f"{'overhead':>9} {'ratio':>6}   {'bare p10':>9} {'skae p10':>9} "
            f"{'bare med':>9} {'skae med':>9}"
        )
        for name, out in rows:
            b, s_ = out["bare"], out["skae"]
            print(
                f"{name:<14} {b[0]:>9.1f} {s_[0]:>9.1f} {s_[0] - b[0]:>+9.1f} "
                f"{s_[0] / b[0]:>5.2f}x   {b[1]:>9.1f} {s_[1]:>9.1f} "
                f"{b[2]:>9.1f} {s_[2]:>9.1f}"
            )
    print(f"total wall time {time.perf_counter() - t0:.1f} s")
    return 0 if all(r["ratio"] <= r["target"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
