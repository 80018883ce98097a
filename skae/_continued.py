"""The training settings a fitted net carries that no parameter says.

``set_params`` after ``fit`` changes the parameters, and the next call that
continues training (``partial_fit``, a ``warm_start`` fit) reads them; until
then the net keeps what it was built or last continued with. A skae file
saves that beside the parameters (the ``"settings"`` key of its ``"net"``
entry), so that a loaded estimator continues as the saved one would:

* ``lr``: the step size the net last set (a new ``learning_rate_init``
  replaces its optimizer's step size on the next call only when it
  differs from it);
* ``trim_fraction``: the trimmed fraction that ``AutoencoderOutlierDetector``
  gave its autoencoder (a private setting, not a parameter of it);
* ``corruption``: the noise the net's corruption hook was built with (kind,
  level, and the value columns of an imputer's autoencoder), so that its
  saved tensors (salt-and-pepper's range) fit the hook they belong to
  whatever the parameters now say.

Files written before the key was kept are loaded as before: the hooks from
the parameters, the step size from ``learning_rate_init``.
"""

from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np

from ._archive import _invalid
from ._denoising import NOISES

_KEYS = {"lr", "trim_fraction", "corruption"}
_CORRUPTION_KEYS = {"noise", "level", "n_values"}


def settings_to_json(estimator):
    """The ``"settings"`` of a fitted estimator's net (see the module)."""
    net = estimator.net_
    corrupt = net.corrupt
    corruption = None
    if corrupt is not None:
        noise = next(name for name, func in NOISES.items() if func is corrupt.func)
        n_values = corrupt.keywords.get("n_values")
        corruption = {
            "noise": noise,
            "level": float(corrupt.keywords["level"]),
            "n_values": None if n_values is None else int(n_values),
        }
    return {
        "lr": float(net.lr),
        "trim_fraction": float(getattr(estimator, "_trim_fraction", 0.0)),
        "corruption": corruption,
    }


def _number(value, low, high=np.inf):
    return (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and low <= value < high
    )


def checked_settings(file, settings, estimator, n_features):
    """The file's ``"settings"`` (None when absent), checked."""
    if settings is None:
        return None
    if not isinstance(settings, dict) or set(settings) != _KEYS:
        raise _invalid(file, "its net 'settings' lack the keys skae writes")
    if not _number(settings["lr"], 0.0) or settings["lr"] == 0:
        raise _invalid(file, f"its step size {settings['lr']!r} is not valid")
    if not _number(settings["trim_fraction"], 0.0, 1.0):
        raise _invalid(
            file, f"its trim_fraction {settings['trim_fraction']!r} is not valid"
        )
    corruption = settings["corruption"]
    if corruption is None:
        return settings
    if (
        not hasattr(estimator, "noise")
        or not isinstance(corruption, dict)
        or set(corruption) != _CORRUPTION_KEYS
        or corruption["noise"] not in NOISES
        or not _number(corruption["level"], 0.0)
        or corruption["noise"] != "gaussian"
        and corruption["level"] > 1
        or not (
            corruption["n_values"] is None
            or isinstance(corruption["n_values"], Integral)
            and not isinstance(corruption["n_values"], bool)
            and 0 < corruption["n_values"] <= n_features
        )
    ):
        raise _invalid(file, f"its corruption {corruption!r} is not valid")
    return settings


@contextmanager
def built_as_saved(file, net_info, estimator, n_features):
    """While the block builds the net, ``estimator`` has the noise its saved
    net was built with (its attributes are put back after); yields the
    file's checked settings, None for files written before they were kept
    (which changes nothing)."""
    settings = checked_settings(file, net_info.get("settings"), estimator, n_features)
    corruption = None if settings is None else settings["corruption"]
    before = dict(vars(estimator))
    if corruption is not None:
        estimator.noise = corruption["noise"]
        estimator.noise_level = corruption["level"]
        if corruption["n_values"] is not None:
            estimator._n_values = corruption["n_values"]
    try:
        yield settings
    finally:
        vars(estimator).clear()
        vars(estimator).update(before)


def continue_as_saved(settings, estimator, net):
    """Give the loaded net the saved step size, and ``estimator`` the saved
    trimmed fraction (``settings`` None: nothing)."""
    if settings is None:
        return
    net.lr = settings["lr"]
    if settings["trim_fraction"]:
        estimator._trim_fraction = settings["trim_fraction"]
        net.trim_fraction = settings["trim_fraction"]
