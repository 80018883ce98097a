"""Rebuilding a saved estimator: device, parameters, fitted state.

What ``skae.io.load`` does once ``skae._archive`` has checked the file:
make the estimator, build its net and load the module and optimizer
state, the hooks' tensors, the history and the output configuration.
"""

import warnings
from functools import partial

import numpy as np
import torch
from skorch.history import History

from ._archive import (
    _CLASSES,
    _DERIVED,
    _DEVICE_DEPENDENT,
    _FITTED_NAME,
    _HOOKS,
    _LOSSES,
    _invalid,
)
from ._engine.data import resolve_device


def _choose_device(saved, device):
    """The device to load on: the given one, else the saved one if present."""
    if isinstance(device, torch.device):
        device = str(device)
    if device is not None and not isinstance(device, str):
        raise TypeError(
            "skae.io.load takes device as a str ('auto', 'cpu', 'cuda', "
            f"'cuda:N' or 'mps') or None, got {device!r}."
        )
    if device is not None:
        resolve_device(device)
        return device
    try:
        resolve_device(saved)
    except ValueError as exc:
        warnings.warn(
            f"The estimator was saved with device={saved!r}, which is not "
            f"usable here ({exc}). It is loaded on the CPU, with device='cpu'.",
            UserWarning,
            stacklevel=3,
        )
        return "cpu"
    return saved


def _make_estimator(file, class_name, params, device):
    cls = _CLASSES[class_name]
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise _invalid(
            file, f"its parameters do not fit {class_name} ({exc})"
        ) from None
    estimator.set_params(device=_choose_device(estimator.device, device))
    try:
        estimator._validate_params()
    except ValueError as exc:
        raise _invalid(file, f"its parameters are invalid: {exc}") from None
    return estimator


def _check_fitted_attributes(file, estimator, fitted):
    for name in fitted:
        if (
            not _FITTED_NAME.fullmatch(name)
            or name == "net_"
            or hasattr(type(estimator), name)
        ):
            raise _invalid(file, f"it holds the invalid fitted attribute {name!r}")
    n_features = fitted.get("n_features_in_")
    if type(n_features) is not int or n_features < 1:
        raise _invalid(file, f"its n_features_in_ ({n_features!r}) is not valid")
    if fitted.get("loss_") not in _LOSSES:
        raise _invalid(file, f"its loss_ ({fitted.get('loss_')!r}) is not valid")


def _load_module_state(file, module, state):
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise _invalid(
            file,
            f"its weights do not fit the estimator it describes (missing: "
            f"{missing}, unexpected: {unexpected})",
        )
    for key, tensor in expected.items():
        got = state[key]
        if got.shape != tensor.shape or got.dtype != tensor.dtype:
            raise _invalid(
                file,
                f"its weight {key!r} has shape {tuple(got.shape)} and dtype "
                f"{got.dtype}, but the estimator it describes needs shape "
                f"{tuple(tensor.shape)} and dtype {tensor.dtype}",
            )
    module.load_state_dict(state, strict=True)


def _merge_param_group(fresh, saved):
    """The rebuilt group with the saved hyperparameters, e.g. a lowered lr."""
    kept = {
        key: value
        for key, value in saved.items()
        if key in fresh and key not in _DEVICE_DEPENDENT
    }
    return {**fresh, **kept}


def _load_optimizer_state(file, optimizer, saved):
    """Put the saved optimizer state back: Adam's moments, the learning rate.

    Flags that depend on the device (e.g. ``fused``) stay as the rebuilt
    optimizer set them.
    """
    fresh = optimizer.state_dict()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = saved.get("param_groups")
    state = saved.get("state")
    if (
        not isinstance(groups, list)
        or [g.get("params") if isinstance(g, dict) else None for g in groups]
        != [g["params"] for g in fresh["param_groups"]]
        or not isinstance(state, dict)
        or any(type(i) is not int or not 0 <= i < len(params) for i in state)
    ):
        raise _invalid(file, "its optimizer state does not fit its weights")
    for i, values in state.items():
        if not isinstance(values, dict) or any(
            isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != params[i].shape
            for v in values.values()
        ):
            raise _invalid(file, "its optimizer state does not fit its weights")
    groups = [
        _merge_param_group(fresh_group, group)
        for fresh_group, group in zip(fresh["param_groups"], groups)
    ]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise _invalid(file, f"its optimizer state cannot be loaded ({exc})") from None


def _restore_hook_tensors(file, net, saved):
    if not isinstance(saved, dict) or any(
        name not in _HOOKS or not isinstance(tensors, dict)
        for name, tensors in saved.items()
    ):
        raise _invalid(file, "its 'hook_tensors' entry is malformed")
    for name in _HOOKS:
        hook = getattr(net, name)
        expected = {}
        if isinstance(hook, partial):
            expected = {
                key: value
                for key, value in hook.keywords.items()
                if isinstance(value, torch.Tensor) and key not in _DERIVED
            }
        arrays = saved.get(name, {})
        if set(arrays) != set(expected):
            raise _invalid(
                file,
                f"its tensors for the {name} hook ({sorted(arrays)}) do not fit "
                f"the estimator it describes ({sorted(expected)})",
            )
        restored = {}
        for key, array in arrays.items():
            like = expected[key]
            if (
                not isinstance(array, np.ndarray)
                or array.dtype.kind not in "biufc"
                or array.shape != tuple(like.shape)
                or torch.from_numpy(array).dtype != like.dtype
            ):
                raise _invalid(
                    file, f"its tensor {key!r} for the {name} hook is malformed"
                )
            restored[key] = torch.from_numpy(array).to(like.device)
        if restored:
            keywords = {**hook.keywords, **restored}
            # A copy of the hook (a Penalty keeps its attributes).
            restored_hook = type(hook)(hook.func, *hook.args, **keywords)
            restored_hook.__dict__.update(getattr(hook, "__dict__", {}))
            setattr(net, name, restored_hook)


def _restore_history(file, net, history):
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise _invalid(file, "its training history is malformed")
    net.history = History(history)


def _restore_output_config(file, estimator, config):
    if not isinstance(config, dict) or not set(config) <= {"transform"}:
        raise _invalid(file, "its 'output_config' entry is malformed")
    if "transform" in config:
        try:
            estimator.set_output(transform=config["transform"])
        except ValueError as exc:
            raise _invalid(
                file, f"its output configuration is invalid: {exc}"
            ) from None


def _training_state(module):
    """What training carries from one call to the next beside the weights:
    the optimizer steps taken (the sparsity warm-up reads them) and the
    moving average of the mean activations (KL with momentum)."""
    average = getattr(module, "rho_hat_average", None)
    if average is not None:
        average = average.detach().cpu().numpy()
    return {"steps_trained": int(module.steps_trained), "rho_hat_average": average}


def _restore_training_state(file, module, saved):
    if saved is None:  # files written before it was saved
        return
    steps, average = saved.get("steps_trained"), saved.get("rho_hat_average")
    if type(steps) is not int or steps < 0:
        raise _invalid(file, f"its steps_trained {steps!r} is not valid")
    module.steps_trained = steps
    if average is None:
        return
    code_layer = [m for m in module.encoder if isinstance(m, torch.nn.Linear)][-1]
    if not isinstance(average, np.ndarray) or average.shape != (
        code_layer.out_features,
    ):
        raise _invalid(file, "its rho_hat_average does not fit the estimator")
    device = module.input_offset.device
    module.rho_hat_average = torch.as_tensor(average, device=device)


def _input_shift(file, net_info, n_features):
    """The fit's float64 shift of X (``_units._float64_shift``); None for
    files written before it was saved, and for fits that had none."""
    shift = net_info.get("input_shift")
    if shift is None:
        return None
    if (
        not isinstance(shift, np.ndarray)
        or shift.dtype != np.float64
        or shift.shape != (n_features,)
        or not np.isfinite(shift).all()
    ):
        raise _invalid(file, "its input_shift does not fit the estimator")
    return shift
