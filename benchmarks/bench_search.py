"""BatchedGridSearchCV against GridSearchCV: wall time and agreement.

Protocol: digits (1797x64, scaled to [0, 1]), ``SparseAutoencoder(
n_components=32, hidden_layer_sizes=(), max_iter=30, tol=0)`` (so every
fit runs the same number of epochs; ``--quick``: 10 epochs), 3-fold
cross-validation, a grid over ``sparsity_weight`` x ``sparsity_target`` of
12 and of 48 candidates, scored with the estimator's ``score`` (negative
reconstruction error), ``refit=False`` (the refit is one ordinary fit on
every side). Three sides per grid, timed in the same run, in rotating
order, median of ``--repeats`` wall times: ``BatchedGridSearchCV``,
``GridSearchCV(n_jobs=1)`` and ``GridSearchCV(n_jobs=-1)`` (joblib's
process pool, one thread per worker, started before timing).

Agreement: the largest absolute difference between the two searches'
``split*_test_score`` over all candidates and folds, and between the
weights of the best candidate on each fold as the batched search trains
them and as a sequential ``fit`` on that fold does.

    python benchmarks/bench_search.py --quick --threads 1
    python benchmarks/bench_search.py --threads 1
    python benchmarks/bench_search.py --device cuda
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
# joblib's worker processes import skae too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
)

from _harness import (  # noqa: E402
    BUDGET_WARNINGS,
    Row,
    fmt_ratio,
    fmt_s,
    format_table,
    interleave,
    load_average,
    median,
    quiet,
)
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

from skae import SparseAutoencoder  # noqa: E402
from skae.model_selection import BatchedGridSearchCV  # noqa: E402

WEIGHTS = {
    12: [0.1, 1.0, 3.0],
    48: [0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
}
TARGETS = {
    12: [0.01, 0.05, 0.1, 0.2],
    48: [0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4],
}
TARGET_SPEEDUP = 3.0


def grid(n_candidates):
    return {
        "sparsity_weight": WEIGHTS[n_candidates],
        "sparsity_target": TARGETS[n_candidates],
    }


def searches(estimator, param_grid, cv):
    """The three sides, each a function returning a fitted search."""

    def batched():
        return BatchedGridSearchCV(estimator, param_grid, cv=cv, refit=False).fit(X)

    def sequential(n_jobs):
        def run():
            search = GridSearchCV(
                estimator, param_grid, cv=cv, refit=False, n_jobs=n_jobs
            )
            return search.fit(X)

        return run

    return {
        "batched": batched,
        "GridSearchCV(1)": sequential(1),
        "GridSearchCV(-1)": sequential(-1),
    }


def weight_difference(estimator, param_grid, cv, best_params):
    """Max |batched - sequential| over the best candidate's weights, every fold."""
    captured = []

    def capture(fitted, X_test, y=None):
        if all(fitted.get_params()[k] == v for k, v in best_params.items()):
            captured.append((fitted, X_test))
        return fitted.score(X_test)

    search = BatchedGridSearchCV(
        estimator, param_grid, cv=cv, refit=False, scoring=capture
    )
    quiet(search.fit, X)
    worst = 0.0
    for fitted, X_test in captured:
        train = next(tr for tr, te in cv.split(X) if np.array_equal(X[te], X_test))
        reference = quiet(clone(estimator).set_params(**best_params).fit, X[train])
        ours = dict(fitted.net_.module_.named_parameters())
        for name, p in reference.net_.module_.named_parameters():
            worst = max(worst, float((ours[name] - p).detach().abs().max()))
    return worst, len(captured)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="10 epochs per fit")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch and BLAS threads of this process (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per side (1 quick, 3)"
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available here")
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    repeats = args.repeats or (1 if args.quick else 3)
    epochs = 10 if args.quick else 30

    global X
    X = (load_digits().data / 16.0).astype(np.float32)
    estimator = SparseAutoencoder(
        n_components=32,
        hidden_layer_sizes=(),
        max_iter=epochs,
        tol=0.0,
        random_state=0,
        device=args.device,
    )
    cv = KFold(3)
    print(
        f"torch {torch.__version__} | device {args.device} | threads "
        f"{args.threads} | {os.cpu_count()} CPUs | load average {load_average()} "
        f"| {epochs} epochs | {repeats} repeat(s)",
        flush=True,
    )
    rows = []
    for n_candidates in (12, 48):
        param_grid = grid(n_candidates)
        sides = searches(estimator, param_grid, cv)
        # Warm-up: imports, the joblib pool, allocator pools.
        warm = {name: side() for name, side in sides.items()}
        times = interleave(
            {name: _timed(side) for name, side in sides.items()},
            repeats,
            lambda *a: print(*a, flush=True),
            label=f"{n_candidates} candidates ",
        )
        t = {name: median(values) for name, values in times.items()}
        batched = warm["batched"].cv_results_
        sequential = warm["GridSearchCV(1)"].cv_results_
        keys = [f"split{i}_test_score" for i in range(3)]
        score_diff = max(
            float(np.max(np.abs(batched[k] - sequential[k]))) for k in keys
        )
        best = sequential["params"][int(np.argmin(sequential["rank_test_score"]))]
        same_best = (
            best == batched["params"][int(np.argmin(batched["rank_test_score"]))]
        )
        weight_diff, n_folds = weight_difference(estimator, param_grid, cv, best)
        fits = f"{n_candidates}x3 fits"
        for peer in ("GridSearchCV(1)", "GridSearchCV(-1)"):
            ratio = t[peer] / t["batched"]
            target = peer == "GridSearchCV(1)" and args.device == "cpu"
            rows.append(
                Row(
                    "search",
                    f"{fits}: batched vs {peer}",
                    fmt_s(t["batched"]),
                    fmt_s(t[peer]),
                    f"{fmt_ratio(ratio)} faster",
                    f">= {TARGET_SPEEDUP:.0f}x" if target else "-",
                    ratio >= TARGET_SPEEDUP if target else None,
                )
            )
        rows.append(
            Row(
                "agreement",
                f"{fits}: max |split test score diff|, same best params: {same_best}",
                f"{score_diff:.2e}",
                "GridSearchCV(1)",
                "-",
                "-",
                None,
            )
        )
        rows.append(
            Row(
                "agreement",
                f"{fits}: best candidate max |weight diff| over {n_folds} folds",
                f"{weight_diff:.2e}",
                "sequential fit",
                "-",
                "<= 1e-4",
                weight_diff <= 1e-4,
            )
        )
    print()
    print(format_table(rows))
    print(
        f"Fixed-epoch fits that reached max_iter (by design): "
        f"{BUDGET_WARNINGS['count']} ConvergenceWarnings counted"
    )
    return 0 if all(r.passed is not False for r in rows) else 1


def _timed(side):
    def run():
        start = time.perf_counter()
        quiet(side)
        return time.perf_counter() - start

    return run


if __name__ == "__main__":
    sys.exit(main())
