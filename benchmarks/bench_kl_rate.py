"""KL sparsity: how close the codes' mean activation comes to its target.

``SparseAutoencoder(64, sparsity="kl", sparsity_target=rho)`` on digits
(``load_digits``, raw 0-16 pixels as a user passes them; 1437 training rows,
360 held out, ``train_test_split(random_state=0)``), for rho = 0.01, 0.05
and 0.1: the mean of ``transform`` on the held-out rows, as a ratio to rho.
Target: within 0.75-1.25 (±25%) at every rho for the defaults. Rows:

- ``auto``: the default ``sparsity_weight``;
- ``beta=5``: the weight fixed at 5 for every rho;
- ``beta=5, momentum 0.9``: with ``sparsity_momentum=0.9``.

    python benchmarks/bench_kl_rate.py --threads 2
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._harness import use_threads  # noqa: E402
from skae import SparseAutoencoder  # noqa: E402

RHOS = (0.01, 0.05, 0.1)
SETTINGS = {
    "auto": {},
    "beta=5": {"sparsity_weight": 5.0},
    "beta=5, momentum 0.9": {"sparsity_weight": 5.0, "sparsity_momentum": 0.9},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    use_threads(args.threads)
    X = load_digits().data
    X_train, X_test = train_test_split(X, random_state=0)
    rows = []
    unconverged = 0
    for name, params in SETTINGS.items():
        for rho in RHOS:
            ratios = []
            for seed in range(args.seeds):
                sae = SparseAutoencoder(
                    64, sparsity_target=rho, random_state=seed, device="cpu", **params
                )
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    sae.fit(X_train)
                unconverged += any(
                    issubclass(w.category, ConvergenceWarning) for w in caught
                )
                ratios.append(sae.transform(X_test).mean() / rho)
            ratio = float(np.mean(ratios))
            ok = 0.75 <= min(ratios) and max(ratios) <= 1.25
            rows.append((name, rho, ratio, min(ratios), max(ratios), ok))
            print(f"  {name}, rho={rho}: {ratio:.3f} rho", flush=True)
    print(f"fits that reached max_iter (ConvergenceWarning): {unconverged}")
    print("\nsetting | rho | mean activation / rho | min | max | within ±25%")
    for name, rho, ratio, low, high, ok in rows:
        verdict = ("PASS" if ok else "FAIL") if name == "auto" else "info"
        print(f"{name} | {rho} | {ratio:.3f} | {low:.3f} | {high:.3f} | {verdict}")


if __name__ == "__main__":
    main()
