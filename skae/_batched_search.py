"""Batched training of a grid ahead of the search: BatchedGridSearchCV's
machinery.

``pretrain`` plans every candidate-fold fit as the estimator's own ``fit``
plans it (``_plan``, see ``skae/_plan.py``), groups the fits that can train
as one batched model, trains each group (in chunks that fit the device's
memory) with ``skae._engine.batched.fit_nets``, and returns the trained
nets in a :class:`~skae._pretrained.Pretrained` store. scikit-learn's own
search machinery then fits and scores every candidate on every fold; each
fit that matches a stored one adopts its net instead of training.
"""

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import _safe_split

from ._base import _BaseAutoencoder, _OutOfMemoryError
from ._engine.batched import fit_nets
from ._engine.data import resolve_device
from ._engine.inference import as_tensor
from ._engine.stacked import StackedPenalty, member_bytes
from ._impute import AutoencoderImputer
from ._outlier import AutoencoderOutlierDetector
from ._plan import Outcome
from ._pretrained import Pretrained, digest, same

__all__ = ["Pretraining", "pretrain"]

# Memory for one batched model when psutil cannot tell what the CPU has.
_DEFAULT_CPU_BUDGET = 2 * 2**30


def _autoencoder(estimator):
    """The autoencoder that trains batched and its position in a pipeline.

    The estimator itself (position None), or a pipeline's first step that
    is or wraps a skae autoencoder; (None, None) when there is none.
    """
    ae = _trained(estimator)
    if ae is not None:
        return None, ae
    if isinstance(estimator, Pipeline):
        for position, (_, step) in enumerate(estimator.steps):
            ae = _trained(step)
            if ae is not None:
                return position, ae
    return None, None


def _trained(step):
    """The skae autoencoder that ``step`` fits: itself, or an outlier
    detector's, which fits a clone of its autoencoder on X as it is given
    (the pretrained fit it adopts is that autoencoder's); else None."""
    if isinstance(step, _BaseAutoencoder):
        return step
    if isinstance(step, AutoencoderOutlierDetector):
        inner = step._base_estimator()
        if isinstance(inner, _BaseAutoencoder):
            return inner
    return None


@dataclass
class _Task:
    """One candidate on one fold."""

    candidate: int
    split: int
    ae: object = None
    plan: object = None
    rows: object = None  # the plan's rows, as rows of the training tensor
    valid: object = None
    leading: bool = False
    prepare_time: float = 0.0
    digest: str = None  # of the plan's validated training data


@dataclass
class Pretraining:
    """What ``pretrain`` did: the store, and per fit why it was not batched
    (None if it was) and the seconds its batched training took."""

    store: Pretrained
    reasons: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


def pretrain(search, base_estimator, X, y, candidates, splits, fit_params):
    """Train the fits of ``candidates`` x ``splits`` that can train batched."""
    done = Pretraining(Pretrained())
    folds, tensors, groups = {}, {}, defaultdict(list)
    for c, parameters in enumerate(candidates):
        for s, (train, _) in enumerate(splits):
            task = _Task(c, s)
            try:
                key = _prepare(task, base_estimator, parameters, X, y, train, folds)
            except Exception as exc:
                # The search's own fit fails the same way, and reports it.
                key = f"setting up failed ({type(exc).__name__}: {exc})"
            if fit_params:
                key = "fit parameters were given"
            if isinstance(key, str):
                done.reasons[c, s] = key
            else:
                groups[key].append(task)
    for key, members in groups.items():
        device = torch.device(key[-1])
        X_tensor = _tensor(members[0], X, tensors, device)
        _train_group(search, members, X_tensor, device, done)
    for members in groups.values():
        for task in members:
            if (task.candidate, task.split) not in done.seconds:
                done.reasons.setdefault(
                    (task.candidate, task.split), "batched training failed"
                )
    return done


def _prepare(task, base_estimator, parameters, X, y, train, folds):
    """Plan a task; its group key, or the reason it cannot train batched."""
    estimator = clone(base_estimator).set_params(**clone(parameters, safe=False))
    position, ae = _autoencoder(estimator)
    if ae is None:
        steps = estimator.steps if isinstance(estimator, Pipeline) else [(0, estimator)]
        if any(isinstance(step, AutoencoderImputer) for _, step in steps):
            return "AutoencoderImputer's masked fit has no batched form"
        return "the estimator is not, or has no, skae autoencoder"
    step = estimator if position is None else estimator.steps[position][1]
    if getattr(step, "trim_fraction", 0):
        return "a trimmed loss has no batched form"
    if ae.callbacks:
        return "the autoencoder has callbacks"
    if isinstance(ae.random_state, np.random.RandomState):
        return (
            "random_state is a RandomState instance, by which no fit can be "
            "matched to a batched one (pass an int)"
        )
    leading = estimator.steps[:position] if position else []
    names = {name for name, _ in leading}
    if any(key.split("__")[0] in names for key in parameters):
        return "the grid sets parameters of steps before the autoencoder"
    start = time.time()
    # Steps before the autoencoder: fitted once per fold and steps (a grid
    # over the pipeline's steps gives candidates other leading steps).
    variants = folds.setdefault(task.split, [])
    fold = next((f for f in variants if same(f["leading"], leading)), None)
    if fold is None:
        X_train, y_train = _safe_split(estimator, X, y, train)
        for _, step in leading:
            if step is not None and step != "passthrough":
                X_train = clone(step).fit_transform(X_train, y_train)
        fold = {"X": X_train, "train": np.asarray(train), "leading": leading}
        fold["id"] = (task.split, len(variants))
        variants.append(fold)
    ae._validate_params()
    plan = ae._plan(fold["X"], incremental=False)
    # One digest per fold (and dtype), shared by its candidates.
    digests = fold.setdefault("digests", {})
    if plan.X.dtype.str not in digests:
        digests[plan.X.dtype.str] = digest(plan.X)
    task.digest = digests[plan.X.dtype.str]
    if ae._input_shift is not None:
        # Its nets would share one float32 copy of X with fits that are not.
        return "X is centred in float64 before float32 (far from zero)"
    net = plan.net
    if net.module__code_dropout:
        return "code dropout has no batched form"
    if net.trim_fraction:
        return "a trimmed loss has no batched form"
    if net.unit_norm_decoder:
        return "a unit-norm decoder has no batched form"
    code_kind = None
    if net.module__code_sparsity is not None:
        code_kind = net.module__code_sparsity[0]
        if code_kind != "topk":
            return f"its code layer ({code_kind}) has no batched form"
    penalty = net.penalty
    if penalty is not None and getattr(penalty, "stacked_ndims", None) is None:
        if getattr(ae, "jacobian", None) is not None:
            return f"jacobian={ae.jacobian!r} has no batched form"
        return f"its penalty ({penalty.func.__name__}) has no batched form"
    # Rows of the tensor that the net trains on: of X, or of the fold's
    # transformed training data when steps come first.
    base = np.arange(len(plan.X)) if leading else fold["train"]
    task.rows = base if plan.train_rows is None else base[plan.train_rows]
    task.valid = None if plan.valid_rows is None else base[plan.valid_rows]
    task.ae, task.plan, task.leading = ae, plan, bool(leading)
    task.prepare_time = time.time() - start
    penalty_key = None
    if penalty is not None:
        ndims = penalty.stacked_ndims
        fixed = {k: v for k, v in penalty.keywords.items() if k not in ndims}
        penalty_key = (penalty.func, tuple(penalty.keywords), tuple(fixed.items()))
    stopping = plan.stopping
    return (
        fold["id"] if leading else None,
        type(ae),
        plan.X.shape[1],
        ae.n_components,
        tuple(net.module__hidden_layer_sizes),
        bool(net.module__tied_weights),
        net.module__activation,
        code_kind,
        plan.loss,
        penalty_key,
        None if net.corrupt is None else net.corrupt.func,
        ae.solver,
        net.batch_size,
        net.shuffle,
        plan.epochs,
        stopping["patience"],
        stopping["max_reductions"],
        stopping["load_best"],
        str(resolve_device(ae.device)),
    )


def _tensor(task, X, tensors, device):
    """The float32 rows the task's group trains on, on the device: X as the
    estimator validates it, or the fold's transformed training data."""
    if task.leading:
        return as_tensor(task.plan.X, device)
    if device not in tensors:
        # Not centred: no batched fit is (see _prepare).
        validated = clone(task.ae)._validate_X(X, reset=True, centre=False)
        tensors[device] = as_tensor(validated, device)
    return tensors[device]


def _chunks(search, members, device, X):
    """Split a group into chunks that fit the memory budget."""
    net, ae = members[0].plan.net, members[0].ae
    per_member = member_bytes(
        X.shape[1],
        (*net.module__hidden_layer_sizes, ae.n_components),
        net.batch_size,
        members[0].plan.stopping["load_best"],
    )
    budget = search._memory_budget
    if budget is None:
        budget = _memory_budget(device) - 4 * X.numel()
    n_max = max(1, int(budget // per_member))
    n_chunks = -(-len(members) // n_max)
    size = -(-len(members) // n_chunks)
    return [members[i : i + size] for i in range(0, len(members), size)]


def _train_group(search, members, X, device, done):
    pending = _chunks(search, members, device, X)
    while pending:
        chunk = pending.pop(0)
        start = time.time()
        try:
            nets, results = _train_chunk(chunk, X, device)
        except _OutOfMemoryError:
            # The estimate was short: train it in halves (every net is
            # rebuilt from its plan, so nothing of this attempt remains).
            # A single net is left to its own fit, which reports the lack
            # of memory as the estimator does.
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if len(chunk) > 1:
                half = len(chunk) // 2
                pending[:0] = [chunk[:half], chunk[half:]]
            continue
        share = (time.time() - start) / len(chunk)
        for task, net, result in zip(chunk, nets, results):
            key = (task.candidate, task.split)
            if result["error"] is not None:
                # The fit diverged: its own fit diverges too, and reports it.
                done.reasons[key] = "its batched training diverged"
                continue
            outcome = Outcome(
                stopped=result["stopped"], best_epoch=result["best_epoch"]
            )
            done.store.add(key, task.ae, task.digest, task.plan, net, outcome)
            done.seconds[key] = share + task.prepare_time
            task.plan = task.ae = None


def _train_chunk(chunk, X, device):
    nets = []
    for task in chunk:
        # Built afresh from its seed: a retried chunk starts the same.
        task.plan.net.initialize()
        nets.append(task.plan.net)
    penalty = None
    if nets[0].penalty is not None:
        first = nets[0].penalty
        penalty = StackedPenalty(
            [net.penalty for net in nets], first.stacked_ndims, device, first.stacked
        )
    stopping = chunk[0].plan.stopping
    valid_rows = None
    if chunk[0].valid is not None:
        valid_rows = [torch.as_tensor(t.valid, device=device) for t in chunk]
    results = fit_nets(
        nets,
        X,
        [torch.as_tensor(t.rows, device=device) for t in chunk],
        valid_rows,
        penalty=penalty,
        epochs=chunk[0].plan.epochs,
        patience=stopping["patience"],
        threshold=np.array([t.plan.stopping["threshold"] for t in chunk]),
        max_reductions=stopping["max_reductions"],
        load_best=stopping["load_best"],
    )
    return nets, results


def _memory_budget(device):
    """Bytes a batched model may take on the device: part of what is free."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        import psutil
    except ImportError:
        return _DEFAULT_CPU_BUDGET
    return psutil.virtual_memory().available // 4
