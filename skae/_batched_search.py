"""Batched evaluation of a grid: the machinery behind BatchedGridSearchCV.

``_Evaluation.run`` groups the candidate-fold fits that can train as one
batched model, trains each group (in chunks that fit the device's memory),
finishes and scores every fit as scikit-learn's ``_fit_and_score`` would,
and fits the rest one by one, ``n_jobs`` at a time.
"""

import numbers
import time
import traceback
import warnings
from collections import defaultdict
from itertools import product

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection._validation import (
    _fit_and_score,
    _score,
)
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params

from ._base import (
    _BaseAutoencoder,
    _budget_note,
    _constant_loss,
    _OutOfMemoryError,
)
from ._engine.batched import fit_nets
from ._engine.inference import as_tensor as _as_tensor
from ._engine.net import resolve_device
from ._engine.stacked import StackedPenalty, member_bytes

# Memory for one batched model when psutil cannot tell what the CPU has.
_DEFAULT_CPU_BUDGET = 2 * 2**30


def _autoencoder(estimator):
    """The autoencoder that trains batched and its position in a pipeline.

    The estimator itself (position None), or a pipeline's first skae
    autoencoder (the steps before it are fitted once per fold); (None,
    None) when there is none.
    """
    if isinstance(estimator, _BaseAutoencoder):
        return None, estimator
    if isinstance(estimator, Pipeline):
        for position, (_, step) in enumerate(estimator.steps):
            if isinstance(step, _BaseAutoencoder):
                return position, step
    return None, None


class _Task:
    """One candidate on one fold."""

    def __init__(self, candidate, parameters, split, train, test):
        self.candidate = candidate
        self.parameters = parameters
        self.split = split
        self.train = train
        self.test = test
        self.result = None
        self.reason = None  # why it is not batched, if it is not
        self.position = None  # the autoencoder's position in a pipeline
        self.fit_positions = None  # its training rows within the fold, if split


class _Evaluation:
    """Fit and score every candidate on every fold, batched where possible."""

    def __init__(self, search, base_estimator, X, y, scorers, routed_params):
        self.search = search
        self.base_estimator = base_estimator
        self.X = X
        self.y = y
        self.scorers = scorers
        self.fit_params = routed_params.estimator.fit
        self.score_params = routed_params.scorer.score
        self.error_score = search.error_score
        self._folds = {}
        self._tensors = {}

    def run(self, candidate_params, cv_splits):
        tasks = [
            _Task(c, parameters, s, train, test)
            for (c, parameters), (s, (train, test)) in product(
                enumerate(candidate_params), enumerate(cv_splits)
            )
        ]
        groups = defaultdict(list)
        for task in tasks:
            key = self._prepare(task)
            if key is not None:
                groups[key].append(task)
        for key, members in groups.items():
            self._train_group(key, members)
        batched = np.zeros((len(candidate_params), len(cv_splits)), dtype=bool)
        for task in tasks:
            batched[task.candidate, task.split] = task.result is not None
            if task.result is None and task.reason is None:
                task.reason = "batched training failed; fitted one by one"
        search = self.search
        search.batched_ = np.concatenate([search.batched_, batched])
        search._not_batched_reasons += [t.reason for t in tasks if t.reason]
        # What could not be batched runs as GridSearchCV runs it.
        sequential = [task for task in tasks if task.result is None]
        results = Parallel(n_jobs=search.n_jobs)(
            delayed(_fit_and_score)(
                clone(self.base_estimator), self.X, self.y, **self._sequential(task)
            )
            for task in sequential
        )
        for task, result in zip(sequential, results):
            task.result = result
        return [task.result for task in tasks]

    # ------------------------------------------------------------ one by one

    def _sequential(self, task):
        """``_fit_and_score``'s arguments for one task, as GridSearchCV's."""
        search = self.search
        return dict(
            scorer=self.scorers,
            train=task.train,
            test=task.test,
            verbose=search.verbose,
            parameters=task.parameters,
            fit_params=self.fit_params,
            score_params=self.score_params,
            return_train_score=search.return_train_score,
            return_n_test_samples=True,
            return_times=True,
            error_score=self.error_score,
            split_progress=(task.split, search.n_splits_),
            caller=search,
        )

    # --------------------------------------------------------------- batched

    def _fold(self, task):
        """The fold's training data as split and as validated, cached."""
        if task.split not in self._folds:
            X_train, y_train = _safe_split(task.estimator, self.X, self.y, task.train)
            self._folds[task.split] = [X_train, y_train, None, None]
        return self._folds[task.split]

    @staticmethod
    def _fit_leading(leading, X_train, y_train):
        """Fit the steps before the autoencoder; (fitted steps, output)."""
        fitted, Xt = [], X_train
        for name, step in leading:
            if step is None or step == "passthrough":
                fitted.append((name, step))
                continue
            step = clone(step)
            Xt = step.fit_transform(Xt, y_train)
            fitted.append((name, step))
        return fitted, Xt

    def _prepare(self, task):
        """Set up a task for batched training; its group key, or None.

        None leaves the task to be fitted one by one: what cannot be
        batched, and what fails before training starts (the sequential fit
        then fails the same way, and reports it as scikit-learn does).
        """
        if self.fit_params:
            task.reason = "fit parameters were given"
            return None
        try:
            estimator = clone(self.base_estimator).set_params(
                **clone(task.parameters, safe=False)
            )
            position, ae = _autoencoder(estimator)
            if ae is None:
                task.reason = "the estimator is not, or has no, skae autoencoder"
                return None
            if ae.callbacks:
                task.reason = "the autoencoder has callbacks"
                return None
            leading = estimator.steps[:position] if position else []
            names = {name for name, _ in leading}
            if any(key.split("__")[0] in names for key in task.parameters):
                task.reason = "the grid sets parameters of steps before the autoencoder"
                return None
            task.estimator, task.ae, task.position = estimator, ae, position
            fold = self._fold(task)
            start = time.time()
            ae._validate_params()
            if leading and fold[3] is None:
                # Fitted once per fold, shared by every candidate.
                fold[3] = self._fit_leading(leading, fold[0], fold[1])
            X_in = fold[3][1] if leading else fold[0]
            X_train = ae._validate_X(X_in, reset=True)
            if fold[2] is None:
                fold[2] = X_train
            task.loss = ae._resolve_loss(fold[2], continuing=False)
            sizes = ae._hidden_layer_sizes()
            activation = ae._resolve_activation()
            penalty = ae._penalty()
            corrupt = ae._corruption(fold[2])
            device = resolve_device(ae.device)
            task.seed = ae._draw_seed()
            # Rows of the tensor that the net trains on: of X, or of the
            # fold's transformed training data when steps come first.
            rows = np.arange(len(fold[2])) if leading else np.asarray(task.train)
            task.valid_rows = None
            if ae.early_stopping:
                positions = np.arange(len(rows))[:, None]
                train, valid = ae._split_validation(positions, task.seed)
                # The net is built on the training part, as fit builds it.
                task.fit_positions = train[:, 0]
                rows, task.valid_rows = rows[train[:, 0]], rows[valid[:, 0]]
            task.train_rows = rows
            task.epochs = ae._max_epochs(len(rows))
            task.prepare_time = time.time() - start
        except Exception as exc:
            # The sequential fit fails the same way and reports it.
            task.reason = f"setting up failed ({type(exc).__name__}: {exc})"
            return None
        if penalty is None:
            penalty_key = None
        elif getattr(penalty, "stacked_ndims", None) is not None:
            ndims = penalty.stacked_ndims
            fixed = {k: v for k, v in penalty.keywords.items() if k not in ndims}
            penalty_key = (penalty.func, tuple(penalty.keywords), tuple(fixed.items()))
        else:
            task.reason = f"its penalty ({penalty.func.__name__}) has no batched form"
            return None
        return (
            task.split if leading else None,
            type(ae),
            fold[2].shape[1],
            ae.n_components,
            sizes,
            activation,
            task.loss,
            penalty_key,
            None if corrupt is None else corrupt.func,
            ae.solver,
            ae.batch_size,
            task.epochs,
            ae.tol,
            ae.n_iter_no_change,
            ae.learning_rate,
            ae.early_stopping,
            ae.shuffle,
            str(device),
        )

    def _tensor(self, task, device):
        """X as float32 on the device, validated as the estimator validates it
        (for a pipeline with steps before the autoencoder: the fold's
        transformed training data)."""
        if task.position:
            key = (device, task.split)
            if key not in self._tensors:
                self._tensors[key] = _as_tensor(self._folds[task.split][2], device)
            return self._tensors[key]
        if device not in self._tensors:
            X = clone(task.ae)._validate_X(self.X, reset=True)
            self._tensors[device] = _as_tensor(X, device)
        return self._tensors[device]

    def _chunks(self, members, device, X):
        """Split a group into chunks that fit the memory budget."""
        ae = members[0].ae
        per_member = member_bytes(
            X.shape[1],
            (*ae._hidden_layer_sizes(), ae.n_components),
            ae._effective_batch_size(X.shape[0]),
            ae.early_stopping,
        )
        budget = self.search._memory_budget
        if budget is None:
            budget = _memory_budget(device) - 4 * X.numel()
        n_max = max(1, int(budget // per_member))
        n_chunks = -(-len(members) // n_max)
        size = -(-len(members) // n_chunks)
        return [members[i : i + size] for i in range(0, len(members), size)]

    def _train_group(self, key, members):
        device = torch.device(key[-1])
        try:
            X = self._tensor(members[0], device)
        except Exception:
            return  # left to the sequential fits, which report the error
        pending = self._chunks(members, device, X)
        while pending:
            chunk = pending.pop(0)
            start = time.time()
            try:
                nets, results = self._train_chunk(chunk, X, device)
            except _OutOfMemoryError:
                # The estimate was short: train it in halves (every net is
                # rebuilt from its seed, so nothing of this attempt remains).
                # A single net is left to its sequential fit, which reports
                # the lack of memory as the estimator does.
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(chunk) > 1:
                    half = len(chunk) // 2
                    pending[:0] = [chunk[:half], chunk[half:]]
                continue
            share = (time.time() - start) / len(chunk)
            for task, net, result in zip(chunk, nets, results):
                task.result = self._finish(task, net, result, share + task.prepare_time)
                # Scored: free its model before the next chunk trains.
                task.estimator = task.ae = None

    def _train_chunk(self, chunk, X, device):
        nets = []
        for task in chunk:
            X_fit = self._folds[task.split][2]
            if task.fit_positions is not None:
                X_fit = X_fit[task.fit_positions]
            net = task.ae._build_net(X_fit, task.seed, task.loss)
            net.initialize()
            nets.append(net)
        ae = chunk[0].ae
        penalty = None
        if nets[0].penalty is not None:
            first = nets[0].penalty
            penalties = [net.penalty for net in nets]
            penalty = StackedPenalty(
                penalties, first.stacked_ndims, device, first.stacked
            )
        valid_rows = None
        if ae.early_stopping:
            valid_rows = [torch.as_tensor(t.valid_rows, device=device) for t in chunk]
        results = fit_nets(
            nets,
            X,
            [torch.as_tensor(t.train_rows, device=device) for t in chunk],
            valid_rows,
            penalty=penalty,
            epochs=chunk[0].epochs,
            patience=ae.n_iter_no_change,
            threshold=np.array([ae.tol * _constant_loss(net) for net in nets]),
            max_reductions=2 if ae.learning_rate == "adaptive" else 0,
            load_best=ae.early_stopping,
        )
        return nets, results

    def _finish(self, task, net, result, fit_time):
        """Complete a batched task's fit as ``_fit_and_score`` would, and score it."""
        ae, estimator = task.ae, task.estimator
        start = time.time()
        error = None
        try:
            if result["error"] is not None:
                raise ValueError(
                    f"Training diverged: {result['error']}. "
                    f"{type(ae).__name__} is left unfitted. Lower "
                    f"learning_rate_init (now {ae.learning_rate_init}) or scale "
                    "the input data."
                )
            ae.net_ = net
            ae.loss_ = task.loss
            ae._record(net)
            if not result["stopped"] and ae.n_iter_ == task.epochs:
                warnings.warn(
                    f"Maximum iterations ({task.epochs}) reached and the "
                    "optimization hasn't converged yet." + _budget_note(ae.max_iter),
                    ConvergenceWarning,
                    stacklevel=2,
                )
            ae._warn_if_constant(net, ae.loss_curve_)
            if estimator is not ae:
                X_train, y_train, _, prepped = self._folds[task.split]
                fitted = list(prepped[0]) if prepped else []
                position = task.position or 0
                fitted.append((estimator.steps[position][0], ae))
                # The fitted steps, frozen, so that fit trains only the rest.
                for i, (name, step) in enumerate(fitted):
                    frozen = (
                        step
                        if step in (None, "passthrough")
                        else (FrozenEstimator(step))
                    )
                    estimator.steps[i] = (name, frozen)
                try:
                    estimator.fit(X_train, y_train)
                finally:
                    estimator.steps[: len(fitted)] = fitted
        except Exception as exc:
            if self.error_score == "raise":
                raise
            error = "".join(traceback.format_exception(exc))
        fit_time += time.time() - start
        return self._score(task, estimator, fit_time, error)

    def _score(self, task, estimator, fit_time, error):
        search = self.search
        X_test, y_test = _safe_split(estimator, self.X, self.y, task.test, task.train)
        result = {"fit_error": error}
        if error is not None:
            if isinstance(self.scorers, dict) or hasattr(self.scorers, "_scorers"):
                names = getattr(self.scorers, "_scorers", self.scorers)
                test_scores = {name: self.error_score for name in names}
            else:
                test_scores = self.error_score
            train_scores = test_scores
            score_time = 0.0
        else:
            start = time.time()
            test_scores = _score(
                estimator,
                X_test,
                y_test,
                self.scorers,
                _check_method_params(self.X, self.score_params, indices=task.test),
                self.error_score,
            )
            score_time = time.time() - start
            if search.return_train_score:
                X_train, y_train = self._folds[task.split][:2]
                train_scores = _score(
                    estimator,
                    X_train,
                    y_train,
                    self.scorers,
                    _check_method_params(self.X, self.score_params, indices=task.train),
                    self.error_score,
                )
        if search.verbose > 1:
            print(
                f"[CV {task.split + 1}/{search.n_splits_}] END "
                f"{_describe(task.parameters)}; score={_describe(test_scores)} "
                f"total time={fit_time + score_time:.1f}s"
            )
        result["test_scores"] = test_scores
        if search.return_train_score:
            result["train_scores"] = train_scores
        result["n_test_samples"] = len(task.test)
        result["fit_time"] = fit_time
        result["score_time"] = score_time
        return result


def _describe(value):
    if isinstance(value, dict):
        return ", ".join(f"{k}={_describe(v)}" for k, v in sorted(value.items()))
    if isinstance(value, numbers.Real):
        return f"{value:.3f}"
    return str(value)


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
