"""The JSON codec of the skae file format.

How ``skae.io.save`` encodes parameters and fitted attributes as JSON, and
how ``skae.io.load`` decodes them: tuples and NumPy values are tagged, and
anything else JSON cannot hold is refused with a hint.
"""

import base64
import math

import numpy as np

_TAG = "__type__"

_PARAM_HINTS = {
    "callbacks": (
        "Set callbacks=None before saving (estimator.set_params(callbacks=None))"
        " and set them again after loading"
    ),
    "random_state": (
        "Set random_state to an int or None before saving, e.g. "
        "estimator.set_params(random_state=0), which leaves the fitted model "
        "as it is"
    ),
    "missing_values": (
        "Set missing_values=np.nan before saving, which marks the same "
        "entries as pandas.NA"
    ),
}
_STORABLE = (
    "None, bools, numbers, strings, NumPy arrays of numbers or strings, and "
    "lists, tuples and dicts of them"
)
_PICKLE_HINT = (
    "Otherwise save it with pickle or joblib, which store any object but must "
    "only be used to load files from trusted sources"
)


class _NotStorable(Exception):
    """A value JSON cannot hold; ``value`` is the offending element."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


class _Malformed(Exception):
    """A part of a file that does not have the structure skae writes."""


def _array_to_json(array):
    dtype = array.dtype
    if dtype.kind in "biufc":
        raw = np.ascontiguousarray(array).tobytes()
        data = base64.b64encode(raw).decode("ascii")
    elif dtype.kind == "U" or (
        dtype.kind == "O" and all(type(v) is str for v in array.flat)
    ):
        data = [str(v) for v in array.flat]
    else:
        raise _NotStorable(array)
    return {"dtype": dtype.str, "shape": list(array.shape), "data": data}


def _to_json(value):
    """The JSON form of value, tagging tuples and NumPy values."""
    if isinstance(value, np.generic):
        return {_TAG: "numpy_scalar", **_array_to_json(np.asarray(value))}
    if isinstance(value, np.ndarray):
        return {_TAG: "ndarray", **_array_to_json(value)}
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is tuple:
        return {_TAG: "tuple", "items": [_to_json(v) for v in value]}
    if type(value) is list:
        return [_to_json(v) for v in value]
    if type(value) is dict and all(type(k) is str and k != _TAG for k in value):
        return {k: _to_json(v) for k, v in value.items()}
    raise _NotStorable(value)


def _array_from_json(obj):
    try:
        dtype = np.dtype(obj["dtype"])
        shape = tuple(obj["shape"])
        data = obj["data"]
    except (KeyError, TypeError) as exc:
        raise _Malformed(f"an array entry is malformed ({exc})") from exc
    if not all(type(n) is int and n >= 0 for n in shape):
        raise _Malformed(f"an array has the invalid shape {list(shape)}")
    size = math.prod(shape)
    if dtype.kind in "biufc":
        if not isinstance(data, str):
            raise _Malformed("a numeric array does not hold base64 data")
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError as exc:
            raise _Malformed("a numeric array holds invalid base64 data") from exc
        if len(raw) != size * dtype.itemsize:
            raise _Malformed(
                f"an array of shape {list(shape)} and dtype {dtype} holds "
                f"{len(raw)} bytes instead of {size * dtype.itemsize}"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if dtype.kind in "OU":
        if not (
            isinstance(data, list)
            and len(data) == size
            and all(type(v) is str for v in data)
        ):
            raise _Malformed(f"a string array of shape {list(shape)} is malformed")
        array = np.empty(size, dtype=dtype)
        array[:] = data
        return array.reshape(shape)
    raise _Malformed(f"an array has the unsupported dtype {dtype}")


def _from_json(obj):
    """The inverse of :func:`_to_json`."""
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    tag = obj.get(_TAG)
    if tag is None:
        return {k: _from_json(v) for k, v in obj.items()}
    if tag == "tuple":
        items = obj.get("items")
        if not isinstance(items, list):
            raise _Malformed("a tuple entry has no list of items")
        return tuple(_from_json(v) for v in items)
    if tag == "ndarray":
        return _array_from_json(obj)
    if tag == "numpy_scalar":
        array = _array_from_json(obj)
        if array.ndim != 0:
            raise _Malformed("a NumPy scalar entry has a non-empty shape")
        return array[()]
    raise _Malformed(f"a value has the unknown type tag {tag!r}")


def _param_to_json(name, value):
    try:
        return _to_json(value)
    except _NotStorable as exc:
        hint = _PARAM_HINTS.get(name, "Change it to such a value before saving")
        raise ValueError(
            f"The parameter {name}={value!r} cannot be saved in a skae file, "
            f"which holds {_STORABLE} only; it contains a "
            f"{type(exc.value).__name__}. {hint}. {_PICKLE_HINT}."
        ) from None


def _attribute_to_json(name, value):
    try:
        return _to_json(value)
    except _NotStorable as exc:
        raise ValueError(
            f"The fitted attribute {name} cannot be saved in a skae file, "
            f"which holds {_STORABLE} only; it contains a "
            f"{type(exc.value).__name__}. Delete the attribute before saving. "
            f"{_PICKLE_HINT}."
        ) from None
