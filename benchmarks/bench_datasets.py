"""skae's DEFAULT estimators on data sets they were not tuned on, beside PCA.

The defaults were chosen on digits in [0, 1] (``bench_quality.py``). This
benchmark fits each skae estimator as ``Cls(n_components=k, random_state=0)``,
nothing else set, on other data and other scales, and prints one table.

Data: scikit-learn's digits (raw pixels 0..16), wine, breast_cancer and iris,
and MNIST-1D (``mnist1d.data.make_dataset(get_dataset_args())``, train and
test concatenated; skipped when ``mnist1d`` is not installed). Each data set
twice: "raw" (as loaded, float64) and "std" (``StandardScaler``). Code sizes
k: digits 16, 32; wine 4, 8; breast_cancer 8, 16; iris 2, 3; mnist1d 16, 32.

For each (data set, scaling, k) row group: the four skae estimators,
``PCA(k, random_state=0)`` and "raw features" (accuracy only). Columns:

* ``rec/PCA``: held-out reconstruction MSE (mean over samples and features of
  ``(inverse_transform(transform(X_test)) - X_test) ** 2``, in the units the
  estimator was given) over PCA(k)'s, split by ``train_test_split(
  test_size=0.25, random_state=0)``; for "std" the scaler is fit on the
  training split only.
* ``R2``: ``1 - SSE / sum((X_test - mean(X_train)) ** 2)``; ~0 for a model
  that reconstructs the training mean.
* ``acc``: ``StratifiedKFold(5, shuffle=True, random_state=0)`` accuracy of
  ``[StandardScaler (std rows)], method, StandardScaler(),
  LogisticRegression(max_iter=2000)``; "raw features" omits the method.
* ``fit s`` and ``n_iter``: wall time and ``n_iter_`` of the held-out fit
  (one short untimed skae fit runs first, so no row pays torch's warm-up).
* ``warned``: how many of the estimator's fits in the row group (1 held-out
  fit + one per fold) emitted a ``ConvergenceWarning``. Each pipeline step is
  fitted in its own ``catch_warnings(record=True)`` so that the skae step's
  warnings are told apart from ``LogisticRegression``'s (counted in a
  footnote): skae warns with ``stacklevel=3``, which names scikit-learn's
  ``base.py`` as the warning's file, not skae's. The footnote also says how
  many skae warnings carry a filename inside the skae package.
* ``mean?``: "MEAN" when R2 < 0.05 (the fit ended at the mean reconstruction).

Targets per row group, summarised after the table:
(a) default Autoencoder rec/PCA <= 1.0; (b) best skae accuracy >= PCA's;
(c) SparseAutoencoder accuracy >= best skae accuracy - 0.01; (d) no skae fit
warned; (e) no skae row is MEAN. The exit status is 0 (the table is the
result) unless ``--strict`` is given; then 1 when any target fails.

Usage::

    python benchmarks/bench_datasets.py                 # everything
    python benchmarks/bench_datasets.py --quick         # 3 folds, larger k only
    python benchmarks/bench_datasets.py --datasets wine iris --estimators Autoencoder

``--quick``: 3 folds instead of 5, only the larger k of each data set, and
MNIST-1D subsampled (stratified) to 2000 rows.
"""

import argparse
import platform
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn import datasets
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

# Run from a checkout without installing: put the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import skae  # noqa: E402

SEED = 0
SKAE_DIR = str(Path(skae.__file__).resolve().parent)
ESTIMATORS = (
    "Autoencoder",
    "SparseAutoencoder",
    "ContractiveAutoencoder",
    "DenoisingAutoencoder",
)
KS = {
    "digits": (16, 32),
    "wine": (4, 8),
    "breast_cancer": (8, 16),
    "iris": (2, 3),
    "mnist1d": (16, 32),
}
MEAN_R2 = 0.05
QUICK_MNIST1D_ROWS = 2000
HEADER = ("data", "scaling", "k", "method", "rec/PCA", "R2", "acc", "fit s")
HEADER += ("n_iter", "warned", "mean?")
TARGETS = {
    "a": "Autoencoder rec/PCA <= 1.0",
    "b": "best skae acc >= PCA acc",
    "c": "SparseAutoencoder acc >= best skae acc - 0.01",
    "d": "no skae fit warned",
    "e": "no skae fit MEAN",
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def load(name, quick):
    """(X float64, y) of a data set; None when MNIST-1D is not installed."""
    if name != "mnist1d":
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        return X.astype(np.float64), y
    try:
        import mnist1d  # noqa: F401
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        print("MNIST-1D skipped: pip install mnist1d")
        return None
    data = make_dataset(get_dataset_args())
    X = np.concatenate([data["x"], data["x_test"]]).astype(np.float64)
    y = np.concatenate([data["y"], data["y_test"]])
    if quick:
        X, _, y, _ = train_test_split(
            X, y, train_size=QUICK_MNIST1D_ROWS, stratify=y, random_state=SEED
        )
    return X, y


class Warned:
    """Records the warnings of the calls made through it, sorted by origin."""

    def __init__(self):
        self.lr = 0  # ConvergenceWarnings of the other steps (LogisticRegression)
        self.skae_in_skae = 0  # skae ConvergenceWarnings filed under skae/
        self.skae_total = 0
        self.other = Counter()  # other warnings: (category, message) -> count

    def call(self, fn, *args, skae_step=False):
        """Return (fn(*args), number of ConvergenceWarnings it emitted)."""
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            result = fn(*args)
        convergence = [w for w in records if issubclass(w.category, ConvergenceWarning)]
        for w in records:
            if not issubclass(w.category, ConvergenceWarning):
                self.other[(w.category.__name__, str(w.message)[:100])] += 1
        if skae_step:
            self.skae_total += len(convergence)
            self.skae_in_skae += sum(
                w.filename.startswith(SKAE_DIR) for w in convergence
            )
        else:
            self.lr += len(convergence)
        return result, len(convergence)


def cv_accuracy(method, X, y, std, folds, rec):
    """Mean fold accuracy and how many folds' ``method`` fit warned.

    The pipeline's steps are fitted one by one (what ``Pipeline.fit`` does)
    so that each step's warnings are recorded apart.
    """
    scores, warned = [], 0
    cv = StratifiedKFold(folds, shuffle=True, random_state=SEED)
    for train, test in cv.split(X, y):
        steps = [StandardScaler()] if std else []
        steps += [clone(method)] if method is not None else []
        pipe = make_pipeline(
            *steps, StandardScaler(), LogisticRegression(max_iter=2000)
        )
        Xt = X[train]
        for step in pipe[:-1]:
            is_skae = type(step).__module__.startswith("skae.")
            Xt, n = rec.call(step.fit_transform, Xt, y[train], skae_step=is_skae)
            warned += int(is_skae and n > 0)
        rec.call(pipe[-1].fit, Xt, y[train])
        scores.append(pipe.score(X[test], y[test]))
    return float(np.mean(scores)), warned


def held_out(est, X_train, X_test, rec, skae_step):
    """Reconstruction MSE and R2 on X_test, fit seconds, n_iter, warned."""
    start = time.perf_counter()
    _, n = rec.call(est.fit, X_train, skae_step=skae_step)
    seconds = time.perf_counter() - start
    sse = ((est.inverse_transform(est.transform(X_test)) - X_test) ** 2).sum()
    total = ((X_test - X_train.mean(axis=0)) ** 2).sum()
    return sse / X_test.size, 1 - sse / total, seconds, getattr(est, "n_iter_", None), n


def row_group(name, X, y, std, k, estimators, folds, rec):
    """Table rows and target verdicts {letter: True/False/None} of one group."""
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=SEED)
    if std:
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    methods = {
        c: getattr(skae, c)(n_components=k, random_state=SEED) for c in estimators
    }
    methods["PCA"] = PCA(k, random_state=SEED)
    results = {}
    for label, est in methods.items():
        log(f"  {name} {'std' if std else 'raw'} k={k}: {label}")
        is_skae = label != "PCA"
        mse, r2, sec, n_iter, n = held_out(clone(est), X_train, X_test, rec, is_skae)
        acc, fold_warned = cv_accuracy(est, X, y, std, folds, rec)
        results[label] = dict(mse=mse, r2=r2, sec=sec, n_iter=n_iter, acc=acc)
        results[label]["warned"] = int(bool(n)) + fold_warned if is_skae else None
    raw_acc, _ = cv_accuracy(None, X, y, std, folds, rec)

    base = (name, "std" if std else "raw", str(k))
    rows = []
    for label, r in results.items():
        warned = "-" if r["warned"] is None else f"{r['warned']}/{folds + 1}"
        rows.append(
            base
            + (label, f"{r['mse'] / results['PCA']['mse']:.3f}", f"{r['r2']:.3f}")
            + (f"{r['acc']:.4f}", f"{r['sec']:.2f}", str(r["n_iter"] or "-"), warned)
            + ("MEAN" if r["r2"] < MEAN_R2 else "",)
        )
    rows.append(base + ("raw features", "-", "-", f"{raw_acc:.4f}", "-", "-", "-", ""))

    ours = [results[c] for c in estimators]
    best = max((r["acc"] for r in ours), default=None)
    ae, sae = results.get("Autoencoder"), results.get("SparseAutoencoder")
    verdicts = {
        "a": None if ae is None else bool(ae["mse"] <= results["PCA"]["mse"]),
        "b": None if best is None else bool(best >= results["PCA"]["acc"]),
        "c": None if sae is None else bool(sae["acc"] >= best - 0.01),
        "d": None if not ours else all(r["warned"] == 0 for r in ours),
        "e": None if not ours else all(r["r2"] >= MEAN_R2 for r in ours),
    }
    return rows, base, verdicts


def format_table(header, rows, markdown=False):
    cells = [header] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "---|" * len(header))
        return "\n".join(lines)
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 folds, larger k only, MNIST-1D 2000 rows",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=list(KS),
        default=list(KS),
        metavar="NAME",
        help=f"data sets to run (default: all of {', '.join(KS)})",
    )
    parser.add_argument(
        "--estimators",
        nargs="+",
        choices=ESTIMATORS,
        default=list(ESTIMATORS),
        metavar="NAME",
        help=f"skae estimators (default: all of {', '.join(ESTIMATORS)})",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and BLAS threads (default: 1)"
    )
    parser.add_argument("--out", help="also write the tables as Markdown to this file")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target fails"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    folds = 3 if args.quick else 5
    estimators = [c for c in ESTIMATORS if c in args.estimators]
    print(
        f"CPU: {cpu_model()}; torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, skae {skae.__version__}; {args.threads} thread(s); "
        f"{'quick' if args.quick else 'full'} mode, {folds}-fold CV"
    )

    total_start = time.perf_counter()
    rec, rows, summary = Warned(), [], []
    with threadpool_limits(limits=args.threads):
        # Untimed warm-up (torch's first-call costs), its warnings discarded.
        warm = skae.Autoencoder(n_components=2, max_iter=2, random_state=SEED)
        Warned().call(warm.fit, np.random.default_rng(SEED).random((64, 8)))
        for name in args.datasets:
            data = load(name, args.quick)
            if data is None:
                continue
            X, y = data
            log(f"[{name}] {X.shape[0]} x {X.shape[1]}, {len(np.unique(y))} classes")
            for std in (False, True):
                for k in KS[name][-1:] if args.quick else KS[name]:
                    group, base, verdicts = row_group(
                        name, X, y, std, k, estimators, folds, rec
                    )
                    rows += group
                    summary.append((base, verdicts))

    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    target_rows = [base + tuple(verdict[v[t]] for t in TARGETS) for base, v in summary]
    target_header = ("data", "scaling", "k") + tuple(TARGETS)
    failures = {t: sum(v[t] is False for _, v in summary) for t in TARGETS}
    legend = [f"({t}) {text}: {failures[t]} FAIL" for t, text in TARGETS.items()]
    notes = [
        f"LogisticRegression (and other non-skae) ConvergenceWarnings: {rec.lr}",
        f"skae ConvergenceWarnings: {rec.skae_total}, of which {rec.skae_in_skae} "
        "name a file inside the skae package",
    ] + [f"other warning x{n}: {c}: {m}" for (c, m), n in rec.other.items()]

    print()
    print(format_table(HEADER, rows))
    print()
    print("Targets per row group:")
    print(format_table(target_header, target_rows))
    print()
    print("Failures per target:")
    print("\n".join(legend))
    print("\n".join(notes))
    print(f"Total wall time: {time.perf_counter() - total_start:.1f} s")

    if args.out:
        markdown = [
            format_table(HEADER, rows, markdown=True),
            format_table(target_header, target_rows, markdown=True),
            "\n".join(f"* {line}" for line in legend + notes),
        ]
        Path(args.out).write_text("\n\n".join(markdown) + "\n")
    return 1 if args.strict and any(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
