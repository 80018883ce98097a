"""Outlier detection: ``AutoencoderOutlierDetector`` beside scikit-learn's
detectors (and PyOD's autoencoder when installed), on the ADBench protocol.

Protocol (after ADBench, Han et al. 2022): for each data set and seed
(1, 2, 3), a 70/30 split stratified by the outlier label, MinMax scaling
fitted on the training part, ROC-AUC and average precision of each
detector's outlier score on the test part. Data sets, all offline:

- ``digits c`` (clean): digit class c as the outliers, the nine others as
  inliers; training on the training inliers only (novelty detection). The
  test part keeps its share of both.
- ``digits c`` (5% contaminated): the same, with training outliers added
  to the training inliers until they are 5% of the training rows.
- ``WDBC``: breast_cancer as ADBench builds it, the 357 benign rows and 10
  malignant ones drawn per seed; training on the training part as it is.
- ``wine 0``: wine's class 0 as the outliers (10 rows drawn per seed)
  against classes 1 and 2.
- ``PyOD generate_data``: 1000 rows of 10 features, 10% outliers, when
  ``pyod`` is installed.

Detectors: ``AutoencoderOutlierDetector()`` (defaults; its own rows with
``--variants``), ``IsolationForest``, ``LocalOutlierFactor(novelty=True)``,
``OneClassSVM`` (gamma="scale", nu=0.1), PCA reconstruction error (the
components keeping 90% of the training variance) and PyOD's
``AutoEncoder`` (optional: skipped with a message when absent). Every
detector but the autoencoder is deterministic given the seed.

Targets: mean ROC-AUC over the data sets above every peer's, no data set
more than 0.05 below ``IsolationForest``, and on the contaminated digits
within 0.05 of the clean figure.

    python benchmarks/bench_outliers.py --threads 2
    python benchmarks/bench_outliers.py --threads 2 --seeds 1
    python benchmarks/bench_outliers.py --quick   # digits 0, 3, 8; seed 1
    python benchmarks/bench_outliers.py --variants --datasets WDBC "wine 0" --seeds 5
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import OneClassSVM

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._harness import text_table, use_threads  # noqa: E402
from skae import Autoencoder, AutoencoderOutlierDetector  # noqa: E402

CONTAMINATION = 0.05


class PCAReconstruction:
    """PCA reconstruction error as an outlier score (higher is more
    abnormal), with the components keeping 90% of the variance."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X):
        self.pca_ = PCA(n_components=0.9, random_state=self.random_state).fit(X)
        return self

    def score_samples(self, X):
        X_hat = self.pca_.inverse_transform(self.pca_.transform(X))
        return -((X - X_hat) ** 2).sum(axis=1)


def detectors(seed, variants):
    found = {
        "skae AutoencoderOutlierDetector": AutoencoderOutlierDetector(
            Autoencoder(random_state=seed)
        ),
    }
    for name, params in variants.items():
        found[f"skae {name}"] = AutoencoderOutlierDetector(
            Autoencoder(random_state=seed, **params.get("estimator", {})),
            **params.get("detector", {}),
        )
    found |= {
        "IsolationForest": IsolationForest(random_state=seed),
        "LocalOutlierFactor": LocalOutlierFactor(novelty=True),
        "OneClassSVM": OneClassSVM(gamma="scale", nu=0.1),
        "PCA reconstruction": PCAReconstruction(random_state=seed),
    }
    try:
        from pyod.models.auto_encoder import AutoEncoder
    except ImportError:
        found["PyOD AutoEncoder"] = None
    else:
        found["PyOD AutoEncoder"] = _PyOD(AutoEncoder(random_state=seed, verbose=0))
    return found


class _PyOD:
    """PyOD's convention (decision_function: higher is more abnormal)
    turned into scikit-learn's score_samples (higher is more normal)."""

    def __init__(self, model):
        self.model = model

    def fit(self, X):
        self.model.fit(X)
        return self

    def score_samples(self, X):
        return -self.model.decision_function(X)


def datasets(quick, seed):
    """``(name, group, X_train, X_test, y_test)`` per data set (y: 1 for an
    outlier), already scaled."""
    rng = np.random.RandomState(seed)
    digits = load_digits()
    classes = (0, 3, 8) if quick else range(10)
    for c in classes:
        outlier = (digits.target == c).astype(int)
        X_in, X_out = digits.data[outlier == 0], digits.data[outlier == 1]
        in_train, in_test = train_test_split(X_in, test_size=0.3, random_state=seed)
        out_train, out_test = train_test_split(X_out, test_size=0.3, random_state=seed)
        X_test = np.vstack([in_test, out_test])
        y_test = np.r_[np.zeros(len(in_test)), np.ones(len(out_test))].astype(int)
        n_out = int(round(CONTAMINATION / (1 - CONTAMINATION) * len(in_train)))
        for group, X_train in (
            ("clean", in_train),
            ("5% contaminated", np.vstack([in_train, out_train[:n_out]])),
        ):
            yield (f"digits {c}", group, *_scaled(X_train, X_test), y_test)
    cancer = load_breast_cancer()
    benign = np.flatnonzero(cancer.target == 1)
    malignant = rng.choice(np.flatnonzero(cancer.target == 0), 10, replace=False)
    rows = np.r_[benign, malignant]
    yield (
        "WDBC",
        "ADBench",
        *_split(cancer.data[rows], cancer.target[rows] == 0, seed),
    )
    if not quick:
        wine = load_wine()
        inliers = np.flatnonzero(wine.target != 0)
        outliers = rng.choice(np.flatnonzero(wine.target == 0), 10, replace=False)
        rows = np.r_[inliers, outliers]
        yield (
            "wine 0",
            "one class out",
            *_split(wine.data[rows], wine.target[rows] == 0, seed),
        )
    try:
        from pyod.utils.data import generate_data
    except ImportError:
        return
    X_train, X_test, y_train, y_test = generate_data(
        n_train=700, n_test=300, n_features=10, contamination=0.1, random_state=seed
    )
    yield (
        "PyOD generate_data",
        "synthetic",
        *_scaled(X_train, X_test),
        y_test.astype(int),
    )


def _split(X, y, seed):
    X_train, X_test, _, y_test = train_test_split(
        X, y.astype(int), test_size=0.3, stratify=y, random_state=seed
    )
    return (*_scaled(X_train, X_test), y_test)


def _scaled(X_train, X_test):
    scaler = MinMaxScaler().fit(X_train)
    # Test rows may leave [0, 1] a little: clipped, as ADBench's scaling is
    # applied to detectors that expect the training range.
    return (
        scaler.transform(X_train).astype(np.float32),
        np.clip(scaler.transform(X_test), 0, 1).astype(np.float32),
    )


VARIANTS = {
    "8 components": {"estimator": {"n_components": 8}},
    "8 components, trimmed 10%": {
        "estimator": {"n_components": 8},
        "detector": {"trim_fraction": 0.1},
    },
    "trimmed 20%": {"detector": {"trim_fraction": 0.2}},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    parser.add_argument(
        "--datasets", nargs="+", default=None, help="only these (e.g. WDBC 'wine 0')"
    )
    args = parser.parse_args()
    if args.datasets is not None:
        known = {name for name, *_ in datasets(args.quick, 1)}
        unknown = set(args.datasets) - known
        if unknown:
            parser.error(
                f"unknown data sets {sorted(unknown)}; choose from {sorted(known)}"
            )
    use_threads(args.threads)
    seeds = (1,) if args.quick else tuple(range(1, args.seeds + 1))
    results = {}  # (data set, group, detector) -> [(auc, ap, seconds)]
    skipped = set()
    unconverged = 0
    for seed in seeds:
        for name, group, X_train, X_test, y_test in datasets(args.quick, seed):
            if args.datasets is not None and name not in args.datasets:
                continue
            for det_name, det in detectors(
                seed, VARIANTS if args.variants else {}
            ).items():
                if det is None:
                    skipped.add(det_name)
                    continue
                start = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    det.fit(X_train)
                    score = -det.score_samples(X_test)  # higher: more abnormal
                unconverged += sum(
                    issubclass(w.category, ConvergenceWarning) for w in caught
                )
                seconds = time.perf_counter() - start
                results.setdefault((name, group, det_name), []).append(
                    (
                        roc_auc_score(y_test, score),
                        average_precision_score(y_test, score),
                        seconds,
                    )
                )
            print(f"  seed {seed}: {name} ({group}) done", flush=True)
    report(results, skipped, unconverged, len(seeds))


def report(results, skipped, unconverged, n_seeds):
    names = list(dict.fromkeys(d for _, _, d in results))
    sets = list(dict.fromkeys((n, g) for n, g, _ in results))
    mean = {k: np.mean(v, axis=0) for k, v in results.items()}
    header = ["data set", "training"] + names
    rows = [header]
    for n, g in sets:
        rows.append(
            [n, g]
            + [f"{mean[(n, g, d)][0]:.3f} / {mean[(n, g, d)][1]:.3f}" for d in names]
        )
    auc = {d: np.mean([mean[(n, g, d)][0] for n, g in sets]) for d in names}
    rows.append(["mean ROC-AUC", ""] + [f"{auc[d]:.3f}" for d in names])
    seconds = {
        d: np.sum([np.sum(np.array(results[(n, g, d)])[:, 2]) for n, g in sets])
        for d in names
    }
    rows.append(["fit + score, s", "all"] + [f"{seconds[d]:.1f}" for d in names])
    print(f"\nROC-AUC / average precision, mean of {n_seeds} seed(s):\n")
    print(text_table(rows))
    for d in sorted(skipped):
        print(f"\n{d}: skipped (pip install pyod to compare with it)")
    if unconverged:
        print(f"\n{unconverged} ConvergenceWarnings (fits that reached max_iter)")
    ours = names[0]
    peers = [d for d in names if not d.startswith("skae")]
    worst = min(
        mean[(n, g, ours)][0] - mean[(n, g, "IsolationForest")][0] for n, g in sets
    )
    digits = [(n, g) for n, g in sets if n.startswith("digits")]
    drops = [
        mean[(n, "clean", ours)][0] - mean[(n, "5% contaminated", ours)][0]
        for n, g in digits
        if g == "clean"
    ]
    checks = [
        (
            f"mean ROC-AUC above every peer's ({auc[ours]:.3f} vs best peer "
            f"{max(auc[d] for d in peers):.3f})",
            auc[ours] > max(auc[d] for d in peers),
        ),
        (
            f"no data set more than 0.05 below IsolationForest (worst {worst:+.3f})",
            worst >= -0.05,
        ),
    ]
    if drops:  # judged only where the digits were run
        checks.append(
            (
                "contaminated digits within 0.05 of clean "
                f"(largest drop {max(drops):.3f})",
                max(drops) <= 0.05,
            )
        )
    print()
    for text, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")


if __name__ == "__main__":
    main()
