"""skae's quality oracles, each measured beside its scikit-learn reference.

One run measures every figure below on the same data as its reference and
prints one table (item, figure, skae value, reference, target, PASS/FAIL),
then the time each item took. The exit status is 1 when a target is missed.

Data: scikit-learn's digits, pixels scaled to [0, 1] (``X / 16``), split by
``train_test_split(test_size=0.25, random_state=0)`` where an item needs a
held-out part; item 3 uses the nudged digits of scikit-learn's gallery
example "Restricted Boltzmann Machine features for digit classification".
Every estimator gets ``random_state=0``. skae estimators run with their
DEFAULT parameters except those an item names: the point is to measure the
defaults, so none other is set here.

"Reconstruction MSE" is the mean over samples and features of
``(inverse_transform(transform(X_in)) - X_target) ** 2``; for
``loss="squared_error"`` and ``X_in = X_target`` it equals ``-est.score(X)``.

Items:

1. Linear oracle: ``Autoencoder(n_components=k, activation="identity",
   hidden_layer_sizes=())``, training MSE on all of digits vs PCA(k)'s;
   target ratio <= 1.02.
2. Nonlinear beats linear: ``Autoencoder(n_components=k)``, test MSE vs
   PCA(k)'s test MSE; target ratio < 1.
3. Features for classifiers (nudged digits, gallery protocol): pipelines
   ``SparseAutoencoder(n_components=100 | 400)`` + ``LogisticRegression(
   C=6000, max_iter=1000)`` vs ``BernoulliRBM(100, learning_rate=0.06,
   n_iter=10)`` + the same logistic, and vs the raw-pixel logistic
   (C=100, as in the example); then, informational, a GridSearchCV over
   sparsity_weight x sparsity_target of the 100-unit pipeline.
4. Sparsity does what it says: KL codes' mean activation on held-out digits
   within [rho/2, 2 rho]; L1 codes' near-zero fraction (``|h| <= 1e-3 *
   max |h|`` over the held-out code matrix, exact zeros included)
   non-decreasing in lambda and larger at the largest lambda than at the
   smallest.
5. Denoising: ``DenoisingAutoencoder(noise="gaussian", noise_level=0.25)``
   trained on the clean train split; MSE of its reconstruction of the noisy
   test split (test + N(0, 0.25^2), fixed seed) against the clean test split,
   vs PCA(16), PCA(k tuned) and KernelPCA(rbf, tuned); the references are
   tuned on a noisy validation split carved from the TRAIN split, then
   refitted on the whole train split.
6. Contraction: default ``ContractiveAutoencoder`` vs an ``Autoencoder`` of
   the same shape (n_components, hidden_layer_sizes, activation; same loss):
   mean Frobenius norm of the exact encoder Jacobian on the test split
   (``vmap(jacrev(module.encode))``, float32, CPU), smaller for the CAE, at
   a test MSE of at most 1.25 x the autoencoder's.

Usage::

    python benchmarks/bench_quality.py                  # everything
    python benchmarks/bench_quality.py --skip-search    # no grid search (slow)
    python benchmarks/bench_quality.py --quick          # fewer k, smaller grids
    python benchmarks/bench_quality.py --items 1 5 --device cuda

``--quick`` keeps every protocol and shrinks only what is repeated: items 1
and 2 use k = 16 only, the KernelPCA tuning grid (n_components x gamma x
alpha) is 2 x 2 x 2 instead of 4 x 3 x 3, and the grid search is 2 x 2 with
cv=3 instead of 4 x 3 with cv=5.
"""

import argparse
import copy
import sys
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy.ndimage import convolve
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, KernelPCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, ParameterGrid, train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import minmax_scale

# Run from a checkout without installing: put the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import skae  # noqa: E402
from skae import (  # noqa: E402
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)

SEED = 0
LINEAR_RATIO_TARGET = 1.02
SAE400_ACCURACY_TARGET = 0.96
NOISE_LEVEL = 0.25
NEAR_ZERO = 1e-3
COMPARABLE_MSE = 1.25

# (full, quick) settings: quick shrinks only what is repeated.
LINEAR_KS = ((8, 16, 32), (16,))
NONLINEAR_KS = ((16, 32), (16,))
KL_TARGETS = (0.01, 0.05, 0.1)
L1_WEIGHTS = (0.01, 0.1, 1.0)
PCA_DENOISE_KS = (4, 8, 12, 16, 24, 32, 48)
KPCA_GRID = (
    {
        "n_components": [32, 64, 128, 256],
        "gamma": [0.01, 0.02, 0.05],
        "alpha": [1e-2, 1e-1, 1.0],
    },
    {"n_components": [32, 128], "gamma": [0.01, 0.02], "alpha": [1e-2, 1e-1]},
)
SEARCH_GRID = (
    (
        {
            "sae__sparsity_weight": [1, 5],
            "sae__sparsity_target": [0.02, 0.05, 0.1],
        },
        5,
    ),
    ({"sae__sparsity_weight": [1, 5], "sae__sparsity_target": [0.02, 0.05]}, 3),
)


@dataclass
class Row:
    item: str
    figure: str
    value: str
    reference: str
    target: str
    passed: bool | None  # None: informational, no target

    @property
    def verdict(self):
        return {True: "PASS", False: "FAIL", None: "-"}[self.passed]


@dataclass
class Config:
    device: str
    quick: bool
    skip_search: bool

    def pick(self, setting):
        """The full or quick variant of a (full, quick) setting."""
        return setting[1] if self.quick else setting[0]


# ---------------------------------------------------------------- helpers


def log(message):
    print(message, flush=True)


def digits01():
    """All of digits, pixels scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def digits01_split():
    """(X_train, X_test) of digits in [0, 1], test_size=0.25."""
    X, _ = digits01()
    return train_test_split(X, test_size=0.25, random_state=SEED)


def mse(A, B):
    return float(np.mean((np.asarray(A, dtype=np.float64) - B) ** 2))


def reconstruction_mse(est, X_in, X_target):
    """MSE of the reconstruction of X_in against X_target (skae or PCA)."""
    return mse(est.inverse_transform(est.transform(X_in)), X_target)


def fit_skae(est, X, label):
    """Fit a skae estimator and log its resolved settings and fit time."""
    start = time.perf_counter()
    est.fit(X)
    elapsed = time.perf_counter() - start
    log(
        f"    {label}: {type(est).__name__}(n_components={est.n_components}, "
        f"hidden_layer_sizes={est.hidden_layer_sizes!r}, "
        f"activation={est.net_.module_.activation}, loss={est.loss_}) "
        f"n_iter_={est.n_iter_}/{est.max_iter}, fit {elapsed:.1f} s"
    )
    return est


def ratio_value(value, ratio):
    return f"{value:.5f} ({ratio:.3f}x ref)"


# ------------------------------------------------------------------ items


def item_linear_oracle(cfg):
    """1. A linear autoencoder reaches PCA's training error."""
    X, _ = digits01()
    rows = []
    for k in cfg.pick(LINEAR_KS):
        ae = Autoencoder(
            n_components=k,
            activation="identity",
            hidden_layer_sizes=(),
            random_state=SEED,
            device=cfg.device,
        )
        fit_skae(ae, X, f"k={k}")
        ae_mse = reconstruction_mse(ae, X, X)
        log(f"    k={k}: -score(X)={-ae.score(X):.6f}, reconstruction MSE={ae_mse:.6f}")
        pca = PCA(n_components=k, random_state=SEED).fit(X)
        pca_mse = reconstruction_mse(pca, X, X)
        ratio = ae_mse / pca_mse
        rows.append(
            Row(
                "1 linear oracle",
                f"train MSE, linear AE k={k}",
                ratio_value(ae_mse, ratio),
                f"PCA({k}) {pca_mse:.5f}",
                f"ratio <= {LINEAR_RATIO_TARGET}",
                ratio <= LINEAR_RATIO_TARGET,
            )
        )
    return rows


def item_nonlinear(cfg):
    """2. The default autoencoder beats PCA's test error."""
    X_train, X_test = digits01_split()
    rows = []
    for k in cfg.pick(NONLINEAR_KS):
        ae = Autoencoder(n_components=k, random_state=SEED, device=cfg.device)
        fit_skae(ae, X_train, f"k={k}")
        ae_mse = reconstruction_mse(ae, X_test, X_test)
        pca = PCA(n_components=k, random_state=SEED).fit(X_train)
        pca_mse = reconstruction_mse(pca, X_test, X_test)
        ratio = ae_mse / pca_mse
        rows.append(
            Row(
                "2 nonlinear > linear",
                f"test MSE, default AE k={k}",
                ratio_value(ae_mse, ratio),
                f"PCA({k}) {pca_mse:.5f}",
                "ratio < 1",
                ratio < 1,
            )
        )
    return rows


def nudge_dataset(X, Y):
    """The gallery example's data: X plus its four one-pixel shifts."""
    direction_vectors = [
        [[0, 1, 0], [0, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [1, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 1], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 0], [0, 1, 0]],
    ]

    def shift(x, w):
        return convolve(x.reshape((8, 8)), mode="constant", weights=w).ravel()

    X = np.concatenate(
        [X] + [np.apply_along_axis(shift, 1, X, vector) for vector in direction_vectors]
    )
    Y = np.concatenate([Y for _ in range(5)], axis=0)
    return X, Y


def nudged_digits_split():
    """The gallery example's split: nudged, float32, min-max scaled, 80/20."""
    X, y = load_digits(return_X_y=True)
    X = np.asarray(X, "float32")
    X, Y = nudge_dataset(X, y)
    X = minmax_scale(X, feature_range=(0, 1))
    return train_test_split(X, Y, test_size=0.2, random_state=SEED)


def fit_accuracy(model, data, label):
    X_train, X_test, y_train, y_test = data
    start = time.perf_counter()
    model.fit(X_train, y_train)
    accuracy = float(model.score(X_test, y_test))
    elapsed = time.perf_counter() - start
    log(f"    {label}: test accuracy {accuracy:.4f}, {elapsed:.1f} s")
    return accuracy


def item_features(cfg):
    """3. Sparse codes as classifier features, against BernoulliRBM's."""
    data = nudged_digits_split()
    logistic = LogisticRegression(C=6000, max_iter=1000)

    rbm = BernoulliRBM(
        n_components=100, learning_rate=0.06, n_iter=10, random_state=SEED
    )
    rbm_acc = fit_accuracy(
        Pipeline([("rbm", rbm), ("logistic", clone(logistic))]), data, "RBM(100)"
    )
    raw_acc = fit_accuracy(
        LogisticRegression(C=100.0, max_iter=1000), data, "raw pixels (C=100)"
    )

    def sae_pipeline(n_components):
        sae = SparseAutoencoder(
            n_components=n_components, random_state=SEED, device=cfg.device
        )
        return Pipeline([("sae", sae), ("logistic", clone(logistic))])

    sae100 = sae_pipeline(100)
    sae100_acc = fit_accuracy(sae100, data, "SAE(100)")
    est = sae100.named_steps["sae"]
    log(
        f"      SAE(100): sparsity={est.sparsity}, loss={est.loss_}, "
        f"activation={est.net_.module_.activation}, "
        f"n_iter_={est.n_iter_}/{est.max_iter}"
    )
    sae400 = sae_pipeline(400)
    sae400_acc = fit_accuracy(sae400, data, "SAE(400)")
    est = sae400.named_steps["sae"]
    log(f"      SAE(400): n_iter_={est.n_iter_}/{est.max_iter}")

    rbm_ref = f"BernoulliRBM(100) {rbm_acc:.4f}"
    rows = [
        Row(
            "3 features",
            "test acc., SAE(100)+logistic",
            f"{sae100_acc:.4f}",
            rbm_ref,
            ">= RBM",
            sae100_acc >= rbm_acc,
        ),
        Row(
            "3 features",
            "test acc., SAE(100)+logistic",
            f"{sae100_acc:.4f}",
            f"raw-pixel logistic {raw_acc:.4f}",
            ">= raw pixels",
            sae100_acc >= raw_acc,
        ),
        Row(
            "3 features",
            "test acc., SAE(400)+logistic",
            f"{sae400_acc:.4f}",
            rbm_ref,
            f">= {SAE400_ACCURACY_TARGET}",
            sae400_acc >= SAE400_ACCURACY_TARGET,
        ),
    ]
    if cfg.skip_search:
        log("    grid search skipped (--skip-search)")
        return rows

    grid, cv = cfg.pick(SEARCH_GRID)
    X_train, X_test, y_train, y_test = data
    search = GridSearchCV(sae_pipeline(100), grid, cv=cv)
    start = time.perf_counter()
    search.fit(X_train, y_train)
    test_acc = float(search.score(X_test, y_test))
    best = ", ".join(f"{k.split('__')[1]}={v}" for k, v in search.best_params_.items())
    n_candidates = len(search.cv_results_["params"])
    log(
        f"    grid search ({n_candidates} candidates x {cv} folds): best {best}, "
        f"CV {search.best_score_:.4f}, test {test_acc:.4f}, "
        f"{time.perf_counter() - start:.1f} s"
    )
    rows.append(
        Row(
            "3 features",
            f"SAE(100) search {n_candidates}x cv={cv}: {best}",
            f"test {test_acc:.4f} (CV {search.best_score_:.4f})",
            rbm_ref,
            "none (info)",
            None,
        )
    )
    return rows


def near_zero_fraction(codes):
    """Fraction of codes with |h| <= 1e-3 * max|h| (exact zeros included)."""
    magnitude = np.abs(codes)
    return float(np.mean(magnitude <= NEAR_ZERO * magnitude.max()))


def item_sparsity(cfg):
    """4. KL codes reach their target rate; L1 codes thin out with lambda."""
    X_train, X_test = digits01_split()
    rows = []
    for rho in KL_TARGETS:
        sae = SparseAutoencoder(
            n_components=100,
            sparsity="kl",
            sparsity_target=rho,
            random_state=SEED,
            device=cfg.device,
        )
        fit_skae(sae, X_train, f"KL rho={rho}")
        unit_means = sae.transform(X_test).mean(axis=0)
        mean_activation = float(unit_means.mean())
        log(
            f"    KL rho={rho}: mean activation {mean_activation:.4f} (per unit "
            f"{unit_means.min():.4f}..{unit_means.max():.4f}), test MSE "
            f"{reconstruction_mse(sae, X_test, X_test):.5f}"
        )
        rows.append(
            Row(
                "4 sparsity",
                f"KL mean test code activation, rho={rho}",
                f"{mean_activation:.4f}",
                f"rho {rho}",
                f"in [{rho / 2:g}, {2 * rho:g}]",
                rho / 2 <= mean_activation <= 2 * rho,
            )
        )

    fractions = []
    for lam in L1_WEIGHTS:
        sae = SparseAutoencoder(
            n_components=100,
            sparsity="l1",
            sparsity_weight=lam,
            random_state=SEED,
            device=cfg.device,
        )
        fit_skae(sae, X_train, f"L1 lambda={lam}")
        fractions.append(near_zero_fraction(sae.transform(X_test)))
        log(
            f"    L1 lambda={lam}: near-zero fraction {fractions[-1]:.4f}, test MSE "
            f"{reconstruction_mse(sae, X_test, X_test):.5f}"
        )
    grows = all(a <= b for a, b in zip(fractions, fractions[1:]))
    grows = grows and fractions[-1] > fractions[0]
    rows.append(
        Row(
            "4 sparsity",
            "L1 |h|<=1e-3*max|h| fraction, lambda="
            + "/".join(f"{lam:g}" for lam in L1_WEIGHTS),
            " / ".join(f"{f:.3f}" for f in fractions),
            "none (no sklearn counterpart)",
            "non-decreasing, last > first",
            grows,
        )
    )
    return rows


def tune_on_validation(make, grid, X_fit, X_val_noisy, X_val):
    """The grid point whose model, fitted on X_fit, best denoises X_val_noisy."""
    scores = []
    for params in ParameterGrid(grid):
        model = make(**params).fit(X_fit)
        scores.append((reconstruction_mse(model, X_val_noisy, X_val), params))
    best_mse, best_params = min(scores, key=lambda s: s[0])
    return best_params, best_mse


def item_denoising(cfg):
    """5. The denoising autoencoder cleans noisy digits better than (K)PCA."""
    X_train, X_test = digits01_split()
    noisy_test = X_test + np.random.default_rng(SEED).normal(
        0.0, NOISE_LEVEL, X_test.shape
    )
    # Tuning data for the references: carved from the train split only.
    X_fit, X_val = train_test_split(X_train, test_size=0.25, random_state=SEED)
    noisy_val = X_val + np.random.default_rng(SEED + 1).normal(
        0.0, NOISE_LEVEL, X_val.shape
    )
    log(
        "    noisy test vs clean test (no denoising): MSE "
        f"{mse(noisy_test, X_test):.5f}"
    )

    dae = DenoisingAutoencoder(
        noise="gaussian", noise_level=NOISE_LEVEL, random_state=SEED, device=cfg.device
    )
    fit_skae(dae, X_train, "DAE")
    dae_mse = reconstruction_mse(dae, noisy_test, X_test)

    def make_pca(n_components):
        return PCA(n_components=n_components, random_state=SEED)

    def make_kpca(**params):
        return KernelPCA(
            kernel="rbf", fit_inverse_transform=True, random_state=SEED, **params
        )

    references = [("PCA(16)", make_pca(16))]
    start = time.perf_counter()
    pca_params, val_mse = tune_on_validation(
        make_pca, {"n_components": list(PCA_DENOISE_KS)}, X_fit, noisy_val, X_val
    )
    log(
        f"    PCA k tuned over {list(PCA_DENOISE_KS)}: k={pca_params['n_components']}"
        f" (val MSE {val_mse:.5f}), {time.perf_counter() - start:.1f} s"
    )
    references.append(
        (f"PCA(k={pca_params['n_components']}, tuned)", make_pca(**pca_params))
    )
    grid = cfg.pick(KPCA_GRID)
    start = time.perf_counter()
    kpca_params, val_mse = tune_on_validation(make_kpca, grid, X_fit, noisy_val, X_val)
    log(
        f"    KernelPCA tuned over {grid}: {kpca_params} (val MSE {val_mse:.5f}), "
        f"{time.perf_counter() - start:.1f} s"
    )
    kpca_name = (
        "KernelPCA(rbf, "
        + ", ".join(f"{k}={v:g}" for k, v in kpca_params.items())
        + ")"
    )
    references.append((kpca_name, make_kpca(**kpca_params)))

    rows = []
    for name, model in references:
        ref_mse = reconstruction_mse(model.fit(X_train), noisy_test, X_test)
        rows.append(
            Row(
                "5 denoising",
                f"noisy-test MSE vs clean, DAE sigma={NOISE_LEVEL}",
                ratio_value(dae_mse, dae_mse / ref_mse),
                f"{name} {ref_mse:.5f}",
                "< ref",
                dae_mse < ref_mse,
            )
        )
    return rows


def mean_jacobian_norm(est, X):
    """Mean over rows of X of ||d encode / d x||_F, exact, float32 on CPU."""
    module = copy.deepcopy(est.net_.module_).to("cpu").float().eval()
    x = torch.as_tensor(X, dtype=torch.float32)
    jacobians = torch.func.vmap(torch.func.jacrev(module.encode))(x)
    return float(torch.linalg.matrix_norm(jacobians.detach(), ord="fro").mean())


def item_contraction(cfg):
    """6. Contractive codes are flatter at comparable reconstruction."""
    X_train, X_test = digits01_split()
    cae = ContractiveAutoencoder(random_state=SEED, device=cfg.device)
    fit_skae(cae, X_train, "CAE")
    ae = Autoencoder(
        n_components=cae.n_components,
        hidden_layer_sizes=cae.hidden_layer_sizes,
        activation=cae.net_.module_.activation,
        loss=cae.loss,
        random_state=SEED,
        device=cfg.device,
    )
    fit_skae(ae, X_train, "AE, same shape")
    cae_jac, ae_jac = mean_jacobian_norm(cae, X_test), mean_jacobian_norm(ae, X_test)
    cae_mse = reconstruction_mse(cae, X_test, X_test)
    ae_mse = reconstruction_mse(ae, X_test, X_test)
    ref = "Autoencoder same shape"
    return [
        Row(
            "6 contraction",
            "mean ||J_encoder||_F on test",
            ratio_value(cae_jac, cae_jac / ae_jac),
            f"{ref} {ae_jac:.5f}",
            "< ref",
            cae_jac < ae_jac,
        ),
        Row(
            "6 contraction",
            "test MSE (comparable?)",
            ratio_value(cae_mse, cae_mse / ae_mse),
            f"{ref} {ae_mse:.5f}",
            f"<= {COMPARABLE_MSE} x ref",
            cae_mse <= COMPARABLE_MSE * ae_mse,
        ),
    ]


ITEMS = {
    1: ("linear oracle", item_linear_oracle),
    2: ("nonlinear beats linear", item_nonlinear),
    3: ("features for classifiers", item_features),
    4: ("sparsity", item_sparsity),
    5: ("denoising", item_denoising),
    6: ("contraction", item_contraction),
}


# ------------------------------------------------------------------- main


def format_table(rows):
    header = ("item", "figure", "skae value", "reference", "target", "PASS/FAIL")
    cells = [header] + [
        (r.item, r.figure, r.value, r.reference, r.target, r.verdict) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer k values and smaller grids, same protocols",
    )
    parser.add_argument(
        "--skip-search",
        action="store_true",
        help="skip item 3's grid search (the slow part)",
    )
    parser.add_argument(
        "--device", default="cpu", help="device of every skae estimator (default: cpu)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's choice)",
    )
    parser.add_argument(
        "--items",
        type=int,
        nargs="+",
        choices=sorted(ITEMS),
        default=sorted(ITEMS),
        help="items to run (default: all)",
    )
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = Config(device=args.device, quick=args.quick, skip_search=args.skip_search)
    log(
        f"skae {skae.__version__}, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}; device={cfg.device}, torch threads "
        f"{torch.get_num_threads()}, {'quick' if cfg.quick else 'full'} mode"
    )

    rows, timings, warned = [], [], Counter()
    total_start = time.perf_counter()
    for number in args.items:
        name, run_item = ITEMS[number]
        log(f"[{number}] {name}")
        start = time.perf_counter()
        try:
            # Each item's ConvergenceWarnings are counted and reported.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rows += run_item(cfg)
        except Exception as exc:  # report and go on with the other items
            traceback.print_exc()
            rows.append(
                Row(
                    f"{number} {name}",
                    "ERROR",
                    f"{type(exc).__name__}: {exc}",
                    "-",
                    "-",
                    False,
                )
            )
        elapsed = time.perf_counter() - start
        convergence = Counter(
            str(w.message).split(" (")[0][:70]
            for w in caught
            if issubclass(w.category, ConvergenceWarning)
        )
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        timings.append(
            f"{number} {name}: {elapsed:.1f} s, "
            f"{sum(convergence.values())} ConvergenceWarnings"
        )
        warned.update(convergence)
        log(f"[{number}] done in {elapsed:.1f} s")

    print()
    print(format_table(rows))
    print()
    print(
        "Timings: "
        + "; ".join(timings)
        + f"; total {time.perf_counter() - total_start:.1f} s"
    )
    for message, count in warned.items():
        print(f"ConvergenceWarning x{count}: {message}")
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
