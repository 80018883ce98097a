"""Child process of ``run.py``'s memory section; prints one JSON line.

Usage (run.py does this in a fresh interpreter, so that the parent's memory
does not count)::

    python benchmarks/_memory_child.py {skae,pca} N_ROWS THREADS

Measures, in this process, the peak resident set size (see
``peak_rss_bytes``) before and after ``fit(X)`` then ``transform(X)`` of a float32
``N_ROWS x 100`` standard-normal array, on the CPU:

* skae: ``Autoencoder(n_components=16, hidden_layer_sizes=(), max_iter=1,
  batch_size=256, device="cpu")``;
* pca: ``PCA(16)`` (scikit-learn's default solver).

Libraries are imported and the estimator is fitted and applied once to a
1024-row array before X is built, so that one-off costs (imports, thread
pools, kernel selection) are in the baseline; the figure is what fitting X
itself adds. X is built directly in float32 (no float64 temporary).
"""

import json
import resource
import sys
import warnings
from pathlib import Path

N_FEATURES = 100
N_COMPONENTS = 16


def peak_rss_bytes():
    """This process's peak resident set size, in bytes.

    On Linux, ``VmHWM`` from /proc/self/status: the peak of this address
    space, which starts at exec. ``ru_maxrss`` would do elsewhere, but on
    Linux it also keeps the high-water mark of the address space replaced
    at exec, i.e. the parent's RSS at the time it started this child.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def ru_maxrss_bytes():
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main(which, n_rows, threads):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np
    import torch
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from skae import Autoencoder

    torch.set_num_threads(threads)
    # The child fits one epoch by design; its "Maximum iterations" warning
    # is expected. Only the memory figure goes to the parent.
    warnings.filterwarnings(
        "default", category=ConvergenceWarning, message="Maximum iterations"
    )

    def make_estimator():
        if which == "skae":
            return Autoencoder(
                n_components=N_COMPONENTS,
                hidden_layer_sizes=(),
                max_iter=1,
                batch_size=256,
                device="cpu",
                random_state=0,
            )
        return PCA(N_COMPONENTS)

    with threadpool_limits(threads):
        warm = np.random.default_rng(1).standard_normal(
            (1024, N_FEATURES), dtype=np.float32
        )
        make_estimator().fit(warm).transform(warm)
        del warm

        X = np.random.default_rng(0).standard_normal(
            (n_rows, N_FEATURES), dtype=np.float32
        )
        before, ru_before = peak_rss_bytes(), ru_maxrss_bytes()
        codes = make_estimator().fit(X).transform(X)
        after, ru_after = peak_rss_bytes(), ru_maxrss_bytes()
    print(
        json.dumps(
            {
                "which": which,
                "n_rows": n_rows,
                "x_bytes": X.nbytes,
                "codes_bytes": codes.nbytes,
                "codes_dtype": str(codes.dtype),
                "peak_before": before,
                "peak_after": after,
                "ru_maxrss_before": ru_before,
                "ru_maxrss_after": ru_after,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
