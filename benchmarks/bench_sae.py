"""Sparse dictionary recovery: skae's TopK, BatchTopK and L1 sparse
autoencoders on data with known atoms, beside SAELens when installed.

Protocol (``make_sparse_superposition``): 20000 x 64 samples of 256
ground-truth unit-norm atoms, on average 5 active with U(0, 1) magnitudes;
256 latents; 2000 optimizer steps of 512 rows (51 epochs; ``--quick``: 500
steps); squared error, Adam at 3e-3 (the best MMCS for TopK over 3e-4,
1e-3, 2e-3, 3e-3, 5e-3 and 1e-2 on this budget: 0.818, 0.925, 0.949, 0.968,
0.970 with 2.7% dead units, 0.958), the L1 penalty at weight 1.0 (L0 near
the TopK models'; 0.1, the default, leaves L0 over 100). The target rows
("lr decayed", seeds 0, 1 and 2) start Adam at 1e-2 and decay it linearly
to zero over the budget with skorch's ``LRScheduler`` (seed 0 against
constant rates: 0.984 against 0.969 at 3e-3, 0.958 at 1e-2; the seed
moves MMCS by about 0.01, hence three). Each model is fitted for exactly
that step budget (``tol=0``) and measured on the training data: FVU (fraction
of variance unexplained), L0 (mean non-zero codes per row), dead fraction
(units never active), MMCS (mean over the true atoms of their best cosine
similarity with the learned ``dictionary_``), the one-to-one matched
cosine (Hungarian), wall and CPU seconds (``time.process_time``, all
threads), after a short warm-up fit of each library. A larger protocol
(100000 x 256, 2048 latents, ``--large``) and a correlated one (Gaussian
copula, correlation 0.5) run beside it.

SAELens is an optional peer: when ``sae_lens`` imports, its TopK and
standard SAEs train on the same data and step budget; otherwise its rows
say it was skipped.

Targets (protocol one, skae TopK at k=5, each decayed-lr seed): MMCS >=
0.98, FVU <= 0.18, dead units <= 1%, and at least 3x less CPU time than
SAELens TopK (when measured).

    python benchmarks/bench_sae.py --quick --threads 1
    python benchmarks/bench_sae.py --threads 2 --large
    python benchmarks/bench_sae.py --threads 2 --large-only
    python benchmarks/bench_sae.py --device cuda --large   # skae on a GPU
    python benchmarks/bench_sae.py --threads 2 --sweep --quick
    python benchmarks/bench_sae.py --threads 2 --scaling --quick
    python benchmarks/bench_sae.py --threads 1 --schedules   # MMCS, 5 seeds
    python benchmarks/bench_sae.py --threads 1 --misses      # what they miss

``--device cuda`` trains skae's models (and the sweep) on the GPU, timed
with the device synchronised; the SAELens rows stay a CPU comparison and
are not run then.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from skorch.callbacks import LRScheduler  # noqa: E402

from benchmarks._harness import text_table, use_threads  # noqa: E402
from benchmarks._saelens import saelens_rows  # noqa: E402
from skae import SparseAutoencoder  # noqa: E402
from skae.datasets import make_sparse_superposition  # noqa: E402
from skae.metrics import (  # noqa: E402
    fraction_of_variance_unexplained,
    matched_cosine_similarity,
    mean_max_cosine_similarity,
    sparsity_summary,
)
from skae.model_selection import BatchedGridSearchCV  # noqa: E402

BATCH = 512


def protocols(args):
    steps = 500 if args.quick else 2000
    if args.large_only:
        yield from _large(steps)
        return
    yield (
        "20000x64, 256 atoms, 256 latents",
        dict(n_samples=20000, n_features=64, n_atoms=256, n_latents=256, steps=steps),
    )
    yield (
        "20000x64, correlated 0.5",
        dict(
            n_samples=20000,
            n_features=64,
            n_atoms=256,
            n_latents=256,
            steps=steps,
            correlation=0.5,
        ),
    )
    if args.large:
        yield from _large(steps)


def _large(steps):
    yield (
        "100000x256, 2048 atoms, 2048 latents",
        dict(
            n_samples=100000,
            n_features=256,
            n_atoms=2048,
            n_latents=2048,
            steps=steps,
        ),
    )


def linear_decay(steps):
    """skorch's per-batch scheduler decaying the learning rate linearly to
    zero over ``steps`` optimizer steps."""
    return LRScheduler(
        policy="LambdaLR",
        lr_lambda=lambda step: max(0.0, 1 - step / steps),
        step_every="batch",
    )


def skae_models(n_latents, epochs, steps=None, seeds=(0,), device="cpu"):
    common = dict(
        hidden_layer_sizes=(),
        loss="squared_error",
        batch_size=BATCH,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        learning_rate="constant",
        learning_rate_init=3e-3,
        random_state=0,
        device=device,
    )
    models = {}
    if steps is not None:
        # The target rows: Adam from 1e-2 decayed linearly to zero (the
        # schedule of the large TopK autoencoders), over three seeds.
        for seed in seeds:
            decayed = dict(common, learning_rate_init=1e-2, random_state=seed)
            models[f"skae TopK k=5, lr decayed, seed {seed}"] = SparseAutoencoder(
                n_latents,
                sparsity="topk",
                n_nonzero_coefs=5,
                callbacks=[linear_decay(steps)],
                **decayed,
            )
    return models | {
        "skae TopK k=5": SparseAutoencoder(
            n_latents, sparsity="topk", n_nonzero_coefs=5, **common
        ),
        "skae TopK k=5, no AuxK": SparseAutoencoder(
            n_latents, sparsity="topk", n_nonzero_coefs=5, revival_weight=0, **common
        ),
        "skae TopK k=5, unit-norm decoder": SparseAutoencoder(
            n_latents,
            sparsity="topk",
            n_nonzero_coefs=5,
            unit_norm_decoder=True,
            **common,
        ),
        "skae BatchTopK k=5": SparseAutoencoder(
            n_latents, sparsity="batch_topk", n_nonzero_coefs=5, **common
        ),
        "skae L1 (weight 1.0)": SparseAutoencoder(
            n_latents, sparsity="l1", sparsity_weight=1.0, **common
        ),
    }


def warm_up(X, atoms, n_latents, device):
    """A short fit of each library before anything is timed, so that no
    measured row pays a process's first-use costs (lazy initialisation,
    the first page faults of its allocations: about 1 s for skae here)."""
    rows = X[:4096]
    model = skae_models(n_latents, 2, device=device)["skae TopK k=5"]
    measure("warm-up", model, rows, atoms)
    if device == "cpu":
        saelens_rows(rows, atoms, n_latents, 16, batch_size=BATCH, lr=3e-3, k=5)


def synchronize(model):
    """Wait for the model's device, so that wall times cover its work."""
    synchronize_device(torch.device(model.net_.device).type)


def measure(name, model, X, atoms):
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        # A fixed step budget: reaching max_iter is the protocol.
        warnings.filterwarnings("default", message="Maximum iterations")
        warnings.simplefilter("ignore", UserWarning)
        model.fit(X)
    synchronize(model)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    summary = sparsity_summary(model, X)
    return dict(
        name=name,
        fvu=fraction_of_variance_unexplained(model, X),
        l0=summary.mean_active_units,
        dead=summary.dead_fraction,
        mmcs=mean_max_cosine_similarity(atoms, model.dictionary_),
        matched=matched_cosine_similarity(atoms, model.dictionary_),
        wall=wall,
        cpu=cpu,
    )


def sweep(X, steps, device):
    """The 12-point sweep (k x revival weight, 2 folds) batched against the
    same fits one by one; wall seconds of each and their ratio."""
    grid = {"n_nonzero_coefs": [3, 5, 8], "revival_weight": [0.0, 1 / 32, 0.1, 0.3]}
    epochs = max(1, round(steps * BATCH / (X.shape[0] / 2)))
    model = skae_models(256, epochs, device=device)["skae TopK k=5"]
    # Warm-up (first-use costs of the process), on both sides, untimed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        short = clone(model).set_params(max_iter=1)
        BatchedGridSearchCV(short, grid, cv=2).fit(X[:4096])
        GridSearchCV(short, {"n_nonzero_coefs": [3]}, cv=2).fit(X[:4096])
    times = {}
    for name, search in (
        ("BatchedGridSearchCV", BatchedGridSearchCV(model, grid, cv=2)),
        ("GridSearchCV(n_jobs=1)", GridSearchCV(model, grid, cv=2, n_jobs=1)),
    ):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            # A fixed step budget: every fit reaches max_iter, by design.
            warnings.simplefilter("always")
            search.fit(X)
        synchronize_device(device)
        times[name] = time.perf_counter() - start
        n_warned = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        print(f"  ({n_warned} ConvergenceWarnings: fits at their step budget)")
        if name == "BatchedGridSearchCV":
            assert search.batched_.all(), "every fit trains batched"
        print(f"  {name}: {times[name]:.1f} s", flush=True)
    ratio = times["GridSearchCV(n_jobs=1)"] / times["BatchedGridSearchCV"]
    print(
        f"\n[sweep] 12 candidates x 2 folds, {epochs} epochs of {BATCH} rows: "
        f"batched {times['BatchedGridSearchCV']:.1f} s, sequential "
        f"{times['GridSearchCV(n_jobs=1)']:.1f} s, {ratio:.2f}x faster on "
        f"{device} "
        f"({'PASS' if ratio >= 3 else 'FAIL'}: target >= 3x)"
    )


def schedules(X, atoms, steps, device, seeds=(0, 1, 2, 3, 4)):
    """MMCS of TopK k=5 on protocol one over five seeds, for learning-rate
    schedules and settings around the target rows': each one's mean and
    lowest seed, to tell a setting's effect from the seed's."""
    epochs = max(1, round(steps * BATCH / X.shape[0]))
    steps = epochs * -(-X.shape[0] // BATCH)

    def schedule(fraction):
        return [
            LRScheduler(
                policy="LambdaLR",
                lr_lambda=lambda step: fraction(step / steps),
                step_every="batch",
            )
        ]

    def decayed(t):
        return max(0.0, 1 - t)

    settings = {
        "decayed from 1e-2 (the target rows)": dict(callbacks=schedule(decayed)),
        "constant 1e-2": {},
        "constant 7e-3": dict(learning_rate_init=7e-3),
        "decayed from 1.5e-2": dict(
            learning_rate_init=1.5e-2, callbacks=schedule(decayed)
        ),
        "decayed, revival_weight=0.1": dict(
            revival_weight=0.1, callbacks=schedule(decayed)
        ),
        "decayed, alpha=0": dict(alpha=0.0, callbacks=schedule(decayed)),
        "decayed, alpha=1e-3": dict(alpha=1e-3, callbacks=schedule(decayed)),
        "decayed, dead_unit_window=1000": dict(
            dead_unit_window=1000, callbacks=schedule(decayed)
        ),
        "decayed, dead_unit_window=8000": dict(
            dead_unit_window=8000, callbacks=schedule(decayed)
        ),
        "1e-2 for half the steps, then decayed": dict(
            callbacks=schedule(lambda t: min(1.0, max(0.0, 2 * (1 - t))))
        ),
        "BatchTopK, decayed": dict(sparsity="batch_topk", callbacks=schedule(decayed)),
    }
    base = skae_models(256, epochs, device=device)["skae TopK k=5"]
    rows = [["setting", *[f"seed {seed}" for seed in seeds], "mean", "lowest"]]
    for name, setting in settings.items():
        found = []
        for seed in seeds:
            model = clone(base).set_params(
                **{"learning_rate_init": 1e-2, "random_state": seed, **setting}
            )
            found.append(measure(name, model, X, atoms)["mmcs"])
        rows.append(
            [
                name,
                *[f"{m:.4f}" for m in found],
                f"{np.mean(found):.4f}",
                f"{min(found):.4f}",
            ]
        )
        print(f"  {name}: done", flush=True)
    print(f"\n[schedules] TopK k=5, {epochs} epochs of {BATCH} rows: MMCS")
    print(text_table(rows))


def misses(X, codes, atoms, steps, device, seeds=(0, 1, 2, 3, 4)):
    """What the target rows' TopK k=5 misses, per seed: the true atoms
    matched below 0.9 (how many, how often they fire) and the latents that
    are no atom's best match, by how often they fire; for those firing in
    over 5% of the rows, the true number of active atoms in the rows they
    fire on."""
    epochs = max(1, round(steps * BATCH / X.shape[0]))
    steps = epochs * -(-X.shape[0] // BATCH)
    rate = (codes > 0).mean(axis=0)
    true_l0 = (codes > 0).sum(axis=1)
    rows = [
        [
            "seed",
            "MMCS",
            "atoms < 0.9",
            "their firing rates",
            "unmatched latents: dead / < 0.5% / 0.5-5% / > 5%",
            "true L0 where a > 5% one fires",
        ]
    ]
    for seed in seeds:
        name = f"skae TopK k=5, lr decayed, seed {seed}"
        model = skae_models(256, epochs, steps, seeds=(seed,), device=device)[name]
        measured = measure(name, model, X, atoms)
        unit = model.dictionary_ / np.linalg.norm(model.dictionary_, axis=1)[:, None]
        true = atoms / np.linalg.norm(atoms, axis=1)[:, None]
        cosine = true @ unit.T  # true atoms x latents
        bad = np.flatnonzero(cosine.max(axis=1) < 0.9)
        unmatched = np.setdiff1d(np.arange(unit.shape[0]), cosine.argmax(axis=1))
        active = model.transform(X)[:, unmatched] > 0
        fires = active.mean(axis=0)
        dense = fires > 0.05
        l0 = [true_l0[active[:, j]].mean() for j in np.flatnonzero(dense)]
        rows.append(
            [
                str(seed),
                f"{measured['mmcs']:.4f}",
                str(len(bad)),
                f"{rate[bad].min():.4f}-{rate[bad].max():.4f}" if len(bad) else "-",
                f"{(fires == 0).sum()} / {((fires > 0) & (fires < 0.005)).sum()} / "
                f"{((fires >= 0.005) & ~dense).sum()} / {dense.sum()}",
                " ".join(f"{v:.2f}" for v in l0) or "-",
            ]
        )
    print(
        f"\n[misses] TopK k=5, lr decayed, {epochs} epochs of {BATCH} rows; "
        f"true atoms fire at {rate.min():.4f}-{rate.max():.4f}, true L0 "
        f"{true_l0.mean():.2f} on average"
    )
    print(text_table(rows))


def scaling(X, steps, device):
    """Where the sweep's speed-up is bounded: the batched step's time per
    net for 2 to 24 nets trained at once (``BatchedGridSearchCV`` over k,
    2 folds of 10000 rows, ``refit=False``), against one fit's time per
    step, all in this run. A batched net-step can save the training
    loop's overhead (Python, callbacks, per-step small tensors); the
    arithmetic per net is the same."""
    epochs = max(1, round(steps * BATCH / (X.shape[0] / 2)))
    n_steps = epochs * -(-(X.shape[0] // 2) // BATCH)
    model = skae_models(256, epochs, device=device)["skae TopK k=5"]
    ks = [3, 5, 8, 4, 6, 7, 9, 10, 11, 12, 13, 14]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        short = clone(model).set_params(max_iter=1)
        BatchedGridSearchCV(short, {"n_nonzero_coefs": ks[:2]}, cv=2).fit(X[:4096])
        start = time.perf_counter()
        clone(model).fit(X[: X.shape[0] // 2])
        synchronize_device(device)
        single = (time.perf_counter() - start) / n_steps
        rows = [["nets", "per stacked step", "per net-step", "one fit / net-step"]]
        rows.append(["1 (one fit)", f"{1e3 * single:.2f} ms", "", ""])
        for n in (1, 2, 3, 6, 12):
            grid = {"n_nonzero_coefs": ks[:n], "revival_weight": [1 / 32]}
            search = BatchedGridSearchCV(model, grid, cv=2, refit=False)
            start = time.perf_counter()
            search.fit(X)
            synchronize_device(device)
            per_step = (time.perf_counter() - start) / n_steps
            assert search.batched_.all(), "every fit trains batched"
            rows.append(
                [
                    str(2 * n),
                    f"{1e3 * per_step:.2f} ms",
                    f"{1e3 * per_step / (2 * n):.3f} ms",
                    f"{single / (per_step / (2 * n)):.2f}x",
                ]
            )
    print(f"\n[scaling] {epochs} epochs of {BATCH} rows on {device}")
    print(text_table(rows))


def synchronize_device(device):
    """Wait for the device ("cpu" or "cuda") to finish its queued work."""
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 steps")
    parser.add_argument("--large", action="store_true", help="add 100000x256")
    parser.add_argument(
        "--large-only", action="store_true", help="only the 100000x256 protocol"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--sweep", action="store_true", help="only the sweep")
    parser.add_argument(
        "--schedules",
        action="store_true",
        help="only MMCS over five seeds for schedules around the target rows'",
    )
    parser.add_argument(
        "--misses",
        action="store_true",
        help="only what the target rows miss: unmatched atoms and latents",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="only the batched step's time per net against one fit's",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="skae's device; SAELens runs only with cpu (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    use_threads(args.threads)
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    if args.sweep or args.scaling:
        X, _, _ = make_sparse_superposition(
            n_samples=20000, n_features=64, n_atoms=256, n_active=5, random_state=0
        )
        run = sweep if args.sweep else scaling
        run(X.astype(np.float32), 500 if args.quick else 2000, args.device)
        return
    if args.schedules or args.misses:
        X, codes, atoms = make_sparse_superposition(
            n_samples=20000, n_features=64, n_atoms=256, n_active=5, random_state=0
        )
        steps = 500 if args.quick else 2000
        if args.schedules:
            schedules(X.astype(np.float32), atoms, steps, args.device)
        else:
            misses(X.astype(np.float32), codes, atoms, steps, args.device)
        return
    table = []
    for title, p in protocols(args):
        X, _, atoms = make_sparse_superposition(
            n_samples=p["n_samples"],
            n_features=p["n_features"],
            n_atoms=p["n_atoms"],
            n_active=5,
            correlation=p.get("correlation", 0.0),
            random_state=0,
        )
        X = X.astype(np.float32)
        epochs = max(1, round(p["steps"] * BATCH / p["n_samples"]))
        print(f"\n[{title}] {epochs} epochs of {BATCH} rows")
        warm_up(X, atoms, p["n_latents"], args.device)
        results = []
        steps = epochs * -(-p["n_samples"] // BATCH)
        for name, model in skae_models(
            p["n_latents"],
            epochs,
            steps,
            seeds=(0,) if p["n_samples"] > 20000 else (0, 1, 2),
            device=args.device,
        ).items():
            results.append(measure(name, model, X, atoms))
            print(f"  {name}: done in {results[-1]['wall']:.1f} s")
        if args.device == "cpu":
            results += saelens_rows(
                X, atoms, p["n_latents"], p["steps"], batch_size=BATCH, lr=3e-3, k=5
            )
        else:
            results.append(
                dict(name="SAELens", skipped="not run: a CPU peer (--device cpu)")
            )
        for r in results:
            if "skipped" in r:
                table.append([title, r["name"], *["-"] * 7, r["skipped"]])
                continue
            target = ""
            if title.startswith("20000x64, 256") and "lr decayed" in r["name"]:
                ok = r["mmcs"] >= 0.98 and r["fvu"] <= 0.18 and r["dead"] <= 0.01
                target = "PASS" if ok else "FAIL (MMCS>=0.98, FVU<=0.18, dead<=1%)"
            table.append(
                [
                    title,
                    r["name"],
                    f"{r['fvu']:.3f}",
                    f"{r['l0']:.2f}",
                    f"{100 * r['dead']:.1f}%",
                    f"{r['mmcs']:.3f}",
                    f"{r['matched']:.3f}",
                    f"{r['wall']:.1f} s",
                    f"{r['cpu']:.1f} s",
                    target,
                ]
            )
    header = [
        "protocol",
        "model",
        "FVU",
        "L0",
        "dead",
        "MMCS",
        "matched",
        "wall",
        "CPU",
        "target",
    ]
    print()
    print(text_table([header, *table]))


if __name__ == "__main__":
    main()
