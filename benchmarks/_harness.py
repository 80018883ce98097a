"""Shared pieces of ``run.py``: data, timing, the bare loop and the table.

Nothing here knows which section uses it. Every timing helper works in
wall-clock seconds (``time.perf_counter``) and synchronises the device
around the timed call, so that CUDA's asynchronous launches are counted.
"""

import gc
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

# Run from a checkout without installing: the repository root comes first.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from skae._nn.modules import AutoencoderModule  # noqa: E402

BATCH_SIZE = 256
LR = 1e-3
ALPHA = 1e-4
ACTIVATION = "tanh"


# ------------------------------------------------------------------ data


def make_data(n, d, seed=0, rank=None):
    """float32, roughly standard normal, with low-rank structure plus noise.

    Rank ``max(4, d // 8)`` signal with unit-variance latent factors, plus
    isotropic noise.
    """
    rng = np.random.default_rng(seed)
    rank = rank or max(4, d // 8)
    latent = rng.standard_normal((n, rank))
    mixing = rng.standard_normal((rank, d)) / np.sqrt(rank)
    X = 0.9 * latent @ mixing + 0.45 * rng.standard_normal((n, d))
    return X.astype(np.float32)


# ---------------------------------------------------------------- timing


def sync(device):
    """Wait for the device's queued work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    """Run ``fn()``; return (wall seconds, its result), device synchronised."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


# Fits that ended at their fixed epoch budget, counted by ``quiet``.
BUDGET_WARNINGS = {"count": 0}


def quiet(fn, *args, **kwargs):
    """Call a fixed-epoch fit: count its "Maximum iterations" warnings.

    Timing runs train an exact number of epochs, so reaching ``max_iter``
    is their design: those ConvergenceWarnings are counted in
    ``BUDGET_WARNINGS`` (the report prints the count) instead of flooding
    the log. Every other warning, and any other ConvergenceWarning (a fit
    that learned nothing), is passed on.
    """
    with warnings.catch_warnings(record=True) as records:
        # "default": each distinct warning once per call (and once per
        # joblib worker, to which scikit-learn passes the filters on).
        warnings.simplefilter("default")
        result = fn(*args, **kwargs)
    for w in records:
        if issubclass(w.category, ConvergenceWarning) and "Maximum iterations" in str(
            w.message
        ):
            BUDGET_WARNINGS["count"] += 1
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


# Pause before each interleaved measurement (see ``interleave``).
SETTLE_SECONDS = 0.05


def interleave(sides, repeats, log, label=""):
    """Run timed sides in rotating order; return {side: [values]}.

    Parameters
    ----------
    sides : dict of name -> callable
        Each callable runs one measurement and returns a number (seconds,
        seconds per epoch, ...).
    repeats : int or dict of name -> int
        Measurements per side. A side with fewer repeats than the others
        drops out of the later rounds.
    log : callable
        Progress printer.
    label : str
        Prefix of the progress lines.

    The order rotates every round (a, b, c / b, c, a / c, a, b ...), so that
    drifts in machine load hit every side alike. ``gc.collect()`` runs
    before each measurement, outside the timed region; the objects alive at
    the start are frozen (``gc.freeze``) so that it only scans what the
    measurements create (a full collection of torch's object graph takes
    ~0.2 s). Each measurement also starts after a short pause, outside the
    timed region, so that no side inherits the spinning threads of the one
    before it (torch's OpenMP threads spin for milliseconds after a parallel
    region, and a rotating order would always hand them to the same side).
    """
    names = list(sides)
    if isinstance(repeats, int):
        repeats = dict.fromkeys(names, repeats)
    values = {name: [] for name in names}
    gc.collect()
    gc.freeze()
    try:
        for r in range(max(repeats.values())):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                if r >= repeats[name]:
                    continue
                gc.collect()
                time.sleep(SETTLE_SECONDS)
                value = sides[name]()
                values[name].append(value)
                log(f"  {label}round {r + 1}: {name:<14} {value:.4g}")
    finally:
        gc.unfreeze()
    return values


def median(values):
    return statistics.median(values)


# ----------------------------------------------------------- bare loop


def bare_optimizer(model, device):
    """Adam(fused) with weight decay on the weights only, as skae decays them
    (skae adds the term to the gradient itself; the arithmetic is the same)."""
    named = list(model.named_parameters())
    groups = [
        {"params": [p for name, p in named if not name.endswith("bias")]},
        {
            "params": [p for name, p in named if name.endswith("bias")],
            "weight_decay": 0.0,
        },
    ]
    return torch.optim.Adam(
        groups, lr=LR, weight_decay=ALPHA, fused=device.type in ("cpu", "cuda")
    )


def bare_model(d, k, device, seed=0):
    """skae's one-layer AutoencoderModule, seeded without global side effects."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderModule(d, k, (), ACTIVATION).to(device)


def bare_fit(X_np, k, epochs, device, seed=0):
    """A bare torch loop doing skae's training work, gradients by autograd.

    ``torch.from_numpy`` of the whole array (moved to the device once), the
    same module, optimizer and weight decay, one ``torch.randperm`` per
    epoch and ``index_select`` per batch, squared error summed over
    features then averaged over the batch. The loss is summed on the device
    and read once per epoch (skorch reads it every batch). Construction of
    the model and optimizer is inside the call, as skae's fit builds its
    net inside ``fit``. Returns the final epoch's mean loss.
    """
    X = torch.from_numpy(X_np).to(device)
    n = X.shape[0]
    model = bare_model(X.shape[1], k, device, seed)
    optimizer = bare_optimizer(model, device)
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
        epoch_loss = total.item() / n
    return epoch_loss


# ---------------------------------------------------------------- report


@dataclass
class Row:
    """One line of the final table; ``passed`` None means informational."""

    section: str
    figure: str
    skae: str
    peer: str
    ratio: str
    target: str
    passed: bool | None
    verdict_text: str | None = None  # overrides PASS/FAIL/info

    @property
    def verdict(self):
        if self.verdict_text is not None:
            return self.verdict_text
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


def format_table(rows):
    header = ("section", "figure", "skae", "peer/reference", "ratio", "target", "")
    cells = [header] + [
        (r.section, r.figure, r.skae, r.peer, r.ratio, r.target, r.verdict)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt_s(seconds):
    """Seconds with 3 significant digits, in s or ms."""
    if seconds >= 1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1e3:.3g} ms"


def fmt_rate(rows_per_s):
    if rows_per_s >= 1e6:
        return f"{rows_per_s / 1e6:.3g} M rows/s"
    return f"{rows_per_s / 1e3:.3g} k rows/s"


def fmt_ratio(ratio):
    return f"{ratio:.2f}x"


def load_average():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def use_threads(threads):
    """Set torch's thread count (when given) and print the setting: torch's
    version, its threads and the machine's load average."""
    if threads:
        torch.set_num_threads(threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {load_average()}"
    )


def text_table(rows):
    """``rows`` (the header first) as aligned text columns."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
