"""skae files of the estimators built around an autoencoder.

A fitted ``AutoencoderOutlierDetector`` or ``AutoencoderImputer`` is saved
as the file of its fitted autoencoder (``estimator_``), whose document
gains the key ``"wrapper"``: the wrapper's class (from a fixed table), its
parameters but ``estimator``, whether ``estimator`` was given and, when it
was, that estimator's own parameters as they are now (``estimator_params``;
it is restored as an unfitted estimator of ``estimator_``'s class with
them; files written before the key was kept restore an unfitted copy of
``estimator_``), its fitted
attributes but ``estimator_``, and, for the imputer, the columns of its
``MissingIndicator`` (``indicator_features``; None without one), and its
``set_output`` configuration (``output_config``; absent from files written
before it was kept). Nothing else changes in the format: the digest covers
the key with the rest.
"""

import numbers
from contextlib import contextmanager

import numpy as np
from sklearn.base import clone
from sklearn.impute import MissingIndicator
from sklearn.utils._missing import is_scalar_nan
from sklearn.utils.validation import check_is_fitted

from ._archive import _FITTED_NAME, _decode, _invalid
from ._base import _BaseAutoencoder
from ._codec import _attribute_to_json, _param_to_json, _to_json
from ._impute import AutoencoderImputer
from ._outlier import AutoencoderOutlierDetector
from ._restore import _make_estimator, _restore_output_config

WRAPPERS = {
    "AutoencoderImputer": AutoencoderImputer,
    "AutoencoderOutlierDetector": AutoencoderOutlierDetector,
}

# Fitted attributes restored from elsewhere than the "fitted" entry.
_RESTORED = ("estimator_", "indicator_")


def is_wrapper(estimator):
    return WRAPPERS.get(type(estimator).__name__) is type(estimator)


def wrapper_to_json(wrapper):
    """The ``"wrapper"`` entry of a fitted wrapper's document."""
    check_is_fitted(wrapper, "estimator_")
    if not isinstance(wrapper.estimator_, _BaseAutoencoder):
        raise TypeError(
            f"skae.io.save saves an {type(wrapper).__name__} around a skae "
            "autoencoder; this one's estimator_ is a "
            f"{type(wrapper.estimator_).__name__}. Save it with pickle or "
            "joblib instead, which must only be used to load files from "
            "trusted sources."
        )
    params = wrapper.get_params(deep=False)
    estimator = params.pop("estimator")
    given = estimator is not None
    if given and type(estimator) is not type(wrapper.estimator_):
        raise ValueError(
            f"The {type(wrapper).__name__}'s estimator parameter is an "
            f"instance of {type(estimator).__name__}, but its fitted "
            f"autoencoder (estimator_) is one of "
            f"{type(wrapper.estimator_).__name__}: the "
            "parameter changed since fit. Fit it again before saving, or set "
            "the parameter back."
        )
    fitted = {
        name: _attribute_to_json(name, value)
        for name, value in vars(wrapper).items()
        if name.endswith("_") and not name.startswith("_") and name not in _RESTORED
    }
    indicator = getattr(wrapper, "indicator_", None)
    return {
        "class": type(wrapper).__name__,
        "params": {name: _param_to_json(name, v) for name, v in params.items()},
        "estimator_given": given,
        # The given estimator's parameters as they are now: set_params after
        # fit may have changed them, as the next fit would read them.
        "estimator_params": {
            name: _param_to_json(name, v)
            for name, v in estimator.get_params(deep=False).items()
        }
        if given
        else None,
        "fitted": fitted,
        "indicator_features": None
        if indicator is None
        else [int(i) for i in indicator.features_],
        "output_config": _to_json(dict(getattr(wrapper, "_sklearn_output_config", {}))),
    }


@contextmanager
def fit_settings(file, spec, inner):
    """While the block runs, ``inner`` has the settings the wrapper that
    ``spec`` describes gave it for its fit: an imputer reading missing
    indicators sets ``_n_values``, the value columns (before the
    indicators), which its corruption leaves the indicators out by and whose
    shape the saved corruption has. ``spec`` is checked in
    :func:`wrapper_from_json`."""
    width = None
    if isinstance(spec, dict) and spec.get("class") == "AutoencoderImputer":
        params, fitted = _decode(file, spec, "params"), _decode(file, spec, "fitted")
        if isinstance(params, dict) and params.get("indicate_missing", False):
            width = fitted.get("n_features_in_") if isinstance(fitted, dict) else None
    if type(width) is int:
        inner._n_values = width
    try:
        yield
    finally:
        inner.__dict__.pop("_n_values", None)


def wrapper_from_json(file, spec, inner, device=None):
    """The wrapper that ``spec`` (a ``"wrapper"`` entry) describes, around
    the loaded autoencoder ``inner``; ``device`` is :func:`skae.io.load`'s,
    for the given estimator's parameters as for ``inner``'s."""
    if not isinstance(spec, dict) or not {
        "class",
        "params",
        "estimator_given",
        "fitted",
        "indicator_features",
    } <= set(spec):
        raise _invalid(file, "its 'wrapper' entry lacks the keys skae writes")
    cls = WRAPPERS.get(spec["class"]) if isinstance(spec["class"], str) else None
    if cls is None:
        raise _invalid(
            file,
            f"it names the unknown wrapper class {spec['class']!r}; a skae file "
            f"wraps its autoencoder in one of {', '.join(WRAPPERS)}",
        )
    params = _decode(file, spec, "params")
    fitted = _decode(file, spec, "fitted")
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise _invalid(file, "the wrapper's 'params' and 'fitted' must be objects")
    if cls is AutoencoderImputer and "indicate_missing" not in params:
        # Written before the parameter existed: the autoencoder read no
        # indicators.
        params["indicate_missing"] = False
    estimator = None
    if spec["estimator_given"] is True:
        saved = spec.get("estimator_params")
        if saved is None:
            estimator = clone(inner)  # a file written before the key was kept
        else:
            saved = _decode(file, spec, "estimator_params")
            if not isinstance(saved, dict):
                raise _invalid(
                    file, "the wrapper's 'estimator_params' must be an object"
                )
            estimator = _make_estimator(file, type(inner).__name__, saved, device)
    try:
        wrapper = cls(estimator=estimator, **params)
        wrapper._validate_params()
    except (TypeError, ValueError) as exc:
        raise _invalid(file, f"its wrapper parameters are invalid ({exc})") from None
    for name, value in fitted.items():
        if not _FITTED_NAME.fullmatch(name) or name in _RESTORED or hasattr(cls, name):
            raise _invalid(file, f"it holds the invalid fitted attribute {name!r}")
        setattr(wrapper, name, value)
    # The imputer's autoencoder reads the missing indicators after the data.
    inner_width = fitted.get("n_features_in_")
    if cls is AutoencoderImputer and params.get("indicate_missing", False):
        inner_width = 2 * inner_width if isinstance(inner_width, int) else None
    if inner_width != inner.n_features_in_:
        raise _invalid(file, "its wrapper and autoencoder disagree on n_features_in_")
    wrapper.estimator_ = inner
    if cls is AutoencoderImputer:
        wrapper.indicator_ = _indicator(file, wrapper, spec["indicator_features"])
    if "output_config" in spec:
        _restore_output_config(file, wrapper, _decode(file, spec, "output_config"))
    return wrapper


def _indicator(file, imputer, features):
    """The imputer's MissingIndicator, fitted to flag ``features`` (refitted
    on one row missing exactly there: its public way to learn them)."""
    if features is None:
        return None
    n = imputer.n_features_in_
    if (
        not isinstance(features, list)
        or not all(type(i) is int and 0 <= i < n for i in features)
        or not imputer.add_indicator
    ):
        raise _invalid(file, "its imputer's indicator_features are not valid")
    missing = imputer.missing_values
    # A value other than the marker (missing + 1 is the marker itself from
    # 2**53 on), of the marker's kind (a float rounds large int markers).
    other = 1 if not is_scalar_nan(missing) and missing == 0 else 0
    kind = np.int64 if isinstance(missing, numbers.Integral) else np.float64
    row = np.full((1, n), other, dtype=kind)
    row[0, features] = missing
    indicator = MissingIndicator(missing_values=missing, error_on_new=False)
    return indicator.fit(row)
