"""Save and load fitted skae estimators without pickle.

:func:`save` writes a fitted estimator to a single file and :func:`load`
reads it back. Unlike pickle or joblib, loading never runs code from the
file: the estimator is rebuilt from plain data, so a skae file from an
untrusted source can at worst fail to load.

A SHA-256 digest over the whole file makes :func:`load` refuse a file that
was damaged or edited after it was saved: any change to a parameter, a
fitted attribute or a weight, and any entry added or removed. The digest is
a checksum, not a signature: whoever edits a file can also write the digest
that matches the edit, and such a file loads. What holds for every file,
forged or not, is that loading never runs code from it: the parameters and
attributes are read as JSON, the weights with
``torch.load(..., weights_only=True)``.

Notes
-----
A skae file is a zip archive holding exactly three entries, each once:

``skae.json``
    A UTF-8 JSON object with the format name ``"skae"`` (key ``format``)
    and its integer version (``format_version``, currently 2), the skae and
    torch versions that wrote the file (``skae_version``,
    ``torch_version``), the estimator's class name (``class``), its
    parameters as given by ``get_params(deep=False)`` (``params``), its
    fitted attributes, every attribute whose name ends with an underscore
    except ``net_`` (``fitted``), its ``set_output`` configuration
    (``output_config``), the state of its training engine (``net``: the
    seed of its random streams, its training history, and the tensors that
    the corruption or penalty took from the training data). Values that
    JSON lacks are objects tagged by a ``"__type__"`` key: ``"tuple"`` (with
    ``"items"``), and ``"ndarray"`` or ``"numpy_scalar"`` (with ``"dtype"``,
    ``"shape"``, and ``"data"``: the base64 of the C-ordered bytes for
    numbers, a list of strings for strings).

``weights.pt``
    ``torch.save`` of ``{"module": ..., "optimizer": ...}``, the state
    dicts of the torch module and of its optimizer, every tensor on the
    CPU. It is read with ``torch.load(..., weights_only=True)``, which
    only rebuilds tensors and plain containers.

``skae.sha256``
    The SHA-256 digest of every other entry, as 64 lowercase hexadecimal
    ASCII digits. It is computed over the entries sorted by name (as UTF-8
    bytes); each contributes, in order, the length in bytes of its UTF-8
    name as an 8-byte big-endian unsigned integer, the name, the length of
    its (uncompressed) contents in the same form, and the contents. The
    zip archive's own metadata (timestamps, compression) is not covered.

Files of format version 1, the previous format, are still read, with a
warning: they have no ``skae.sha256`` entry, and the digest in their
``skae.json`` (key ``weights_sha256``) covers ``weights.pt`` only, so it
does not detect an edit to their ``skae.json``. Save the estimator again to
write the current version.

Only the four skae estimator classes can be loaded; their names are looked
up in a fixed table, never imported from the file.

Parameters that are Python objects, such as a list of skorch ``callbacks``
or a ``RandomState`` instance as ``random_state``, cannot be saved this way:
replace them before saving, or use pickle or joblib, which store any object
but must only be used to load files from trusted sources.
"""

import base64
import hashlib
import io
import json
import math
import os
import pickle
import re
import warnings
import zipfile
from collections import Counter
from functools import partial

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from . import __version__
from ._autoencoder import Autoencoder
from ._contractive import ContractiveAutoencoder
from ._denoising import DenoisingAutoencoder
from ._engine.net import resolve_device
from ._sparse import SparseAutoencoder

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load", "save"]

FORMAT_NAME = "skae"
FORMAT_VERSION = 2

_JSON_ENTRY = "skae.json"
_WEIGHTS_ENTRY = "weights.pt"
_DIGEST_ENTRY = "skae.sha256"

# The entries of a file of each format version. Version 1 kept the digest of
# the weights only, in skae.json; version 2's skae.sha256 covers the rest.
_ENTRIES = {
    1: {_JSON_ENTRY, _WEIGHTS_ENTRY},
    2: {_JSON_ENTRY, _WEIGHTS_ENTRY, _DIGEST_ENTRY},
}

# The only classes a file can name.
_CLASSES = {
    "Autoencoder": Autoencoder,
    "ContractiveAutoencoder": ContractiveAutoencoder,
    "DenoisingAutoencoder": DenoisingAutoencoder,
    "SparseAutoencoder": SparseAutoencoder,
}

_REQUIRED_KEYS = (
    "format",
    "format_version",
    "skae_version",
    "class",
    "params",
    "fitted",
    "net",
    "output_config",
)
# Format version 1 held the digest of weights.pt in skae.json.
_V1_DIGEST_KEY = "weights_sha256"
_NET_KEYS = ("seed", "history", "hook_tensors")
_LOSSES = ("squared_error", "binary_cross_entropy")

# The engine's hooks. Those built with functools.partial may hold tensors
# computed from the training data (the per-feature range of salt-and-pepper
# noise): the rebuilt estimator never sees that data, so they are saved.
_HOOKS = ("corrupt", "penalty")

# Keys of an optimizer's param_groups that are set for the device it runs on.
_DEVICE_DEPENDENT = ("params", "fused", "foreach", "capturable", "differentiable")

_TAG = "__type__"
_FITTED_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*_")

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


# --------------------------------------------------------------------- JSON


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


# --------------------------------------------------------------------- save


def _to_cpu(obj):
    """obj with every tensor in it moved to the CPU and detached."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _hook_tensors(net):
    """The tensor arguments of the net's hooks, as NumPy arrays."""
    saved = {}
    for name in _HOOKS:
        hook = getattr(net, name, None)
        if isinstance(hook, partial):
            tensors = {
                key: value.detach().cpu().numpy()
                for key, value in hook.keywords.items()
                if isinstance(value, torch.Tensor)
            }
            if tensors:
                saved[name] = tensors
    return saved


def _check_estimator(estimator):
    name = type(estimator).__name__
    if _CLASSES.get(name) is not type(estimator):
        raise TypeError(
            f"skae.io.save saves instances of {', '.join(_CLASSES)}, got "
            f"{type(estimator).__qualname__}. Use pickle or joblib for other "
            "objects."
        )
    check_is_fitted(estimator, "net_")
    return name


def _serialize(estimator):
    """The JSON document and the weights bytes of a fitted estimator."""
    class_name = _check_estimator(estimator)
    params = {
        name: _param_to_json(name, value)
        for name, value in estimator.get_params(deep=False).items()
    }
    fitted = {
        name: _attribute_to_json(name, value)
        for name, value in vars(estimator).items()
        if name.endswith("_") and not name.startswith("_") and name != "net_"
    }
    net = estimator.net_
    try:
        history = _to_json(list(net.history))
        hook_tensors = _to_json(_hook_tensors(net))
    except _NotStorable as exc:
        raise ValueError(
            "The training history of the estimator holds a "
            f"{type(exc.value).__name__}, which a skae file cannot store. Save "
            "it with pickle or joblib instead, which must only be used to load "
            "files from trusted sources."
        ) from None

    buffer = io.BytesIO()
    torch.save(
        {
            "module": _to_cpu(net.module_.state_dict()),
            "optimizer": _to_cpu(net.optimizer_.state_dict()),
        },
        buffer,
    )
    weights = buffer.getvalue()

    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "skae_version": __version__,
        "torch_version": torch.__version__,
        "class": class_name,
        "params": params,
        "fitted": fitted,
        "net": {
            "seed": int(net.seed),
            "history": history,
            "hook_tensors": hook_tensors,
        },
        "output_config": _to_json(
            dict(getattr(estimator, "_sklearn_output_config", {}))
        ),
    }
    return document, weights


def _archive_digest(entries):
    """The SHA-256 digest, in hexadecimal, of a file's entries.

    ``entries`` maps each entry's name to its contents; the digest entry
    itself, if there, is left out. The entries are taken in the order of
    their UTF-8 names, each as the 8-byte big-endian length of its name, the
    name, the 8-byte big-endian length of its contents and the contents, so
    that the digest is the same whatever the order or compression in the
    archive, and no two sets of entries share an encoding.
    """
    digest = hashlib.sha256()
    names = sorted(name.encode("utf-8") for name in entries if name != _DIGEST_ENTRY)
    for name in names:
        contents = entries[name.decode("utf-8")]
        for part in (name, contents):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def _entry(name, compress_type):
    # A fixed timestamp: saving the same estimator twice gives the same bytes.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress_type
    return info


def save(estimator, file):
    """Save a fitted skae estimator to a file that loads without pickle.

    The file holds the estimator's parameters, its fitted attributes, the
    weights and optimizer state of its network and its training history, so
    that the estimator returned by :func:`load` transforms, scores and
    continues training (``partial_fit``, or ``fit`` with ``warm_start=True``)
    exactly as this one does. See the module documentation for the format.

    The file ends with a SHA-256 digest of all its entries, so that
    :func:`load` refuses it if it is damaged or edited afterwards. The
    digest guards against accidents and edits, not against a forger, who
    can rewrite it to match an edit; what makes any file safe to load is
    that :func:`load` never runs code from it.

    Parameters
    ----------
    estimator : skae estimator
        The fitted Autoencoder, SparseAutoencoder, ContractiveAutoencoder or
        DenoisingAutoencoder to save.

    file : str, path-like or binary file object
        Where to write. A path is created or overwritten; a file object must
        be open for writing in binary mode.

    Raises
    ------
    TypeError
        If ``estimator`` is not an instance of one of the four skae
        estimator classes (subclasses included).

    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.

    ValueError
        If a parameter or fitted attribute cannot be stored as JSON, such
        as a list of ``callbacks`` or a ``RandomState`` instance as
        ``random_state``. Nothing is written then.

    See Also
    --------
    load : Load an estimator saved with this function.

    Examples
    --------
    >>> from io import BytesIO
    >>> import numpy as np
    >>> from skae import Autoencoder
    >>> from skae.io import load, save
    >>> X = np.random.RandomState(0).normal(size=(40, 6))
    >>> ae = Autoencoder(n_components=2, hidden_layer_sizes=(4,), max_iter=200,
    ...                  tol=1.0, n_iter_no_change=1, random_state=0,
    ...                  device="cpu").fit(X)
    >>> buffer = BytesIO()
    >>> save(ae, buffer)
    >>> restored = load(BytesIO(buffer.getvalue()))
    >>> np.array_equal(restored.transform(X), ae.transform(X))
    True
    """
    document, weights = _serialize(estimator)
    text = json.dumps(document, ensure_ascii=False).encode("utf-8")
    digest = _archive_digest({_JSON_ENTRY: text, _WEIGHTS_ENTRY: weights})
    with zipfile.ZipFile(file, "w") as archive:
        archive.writestr(_entry(_JSON_ENTRY, zipfile.ZIP_DEFLATED), text)
        archive.writestr(_entry(_WEIGHTS_ENTRY, zipfile.ZIP_STORED), weights)
        archive.writestr(
            _entry(_DIGEST_ENTRY, zipfile.ZIP_STORED), digest.encode("ascii")
        )


# --------------------------------------------------------------------- load


def _describe(file):
    if isinstance(file, (str, bytes, os.PathLike)):
        return repr(os.fsdecode(file))
    name = getattr(file, "name", None)
    return repr(name) if isinstance(name, str) else "the given file object"


def _invalid(file, reason):
    return ValueError(
        f"Cannot load {_describe(file)}: {reason.rstrip('.')}. skae.io.load "
        "reads files written by skae.io.save only."
    )


def _damaged(file, reason):
    return ValueError(
        f"Cannot load {_describe(file)}: {reason}, so the file was modified or "
        "damaged after it was saved. Save the estimator again."
    )


def _read_entry(file, archive, name):
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
        raise _damaged(file, f"its zip archive cannot be read ({exc})") from None


def _read_archive(file):
    """A skae file's JSON document, its format version and its entries.

    Only the document's format and version are checked here; the entries
    (a dict of each one's contents) are read once their names are known to
    be those of a skae file of that version.
    """
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise _invalid(file, "it is not a skae file (not a zip archive)") from None
    with archive:
        names = archive.namelist()
        if _JSON_ENTRY not in names:
            hint = (
                " (it looks like a torch.save file)"
                if any(n.endswith("/data.pkl") for n in names)
                else ""
            )
            raise _invalid(
                file, f"it is not a skae file: it has no {_JSON_ENTRY} entry{hint}"
            )
        repeated = sorted(name for name, n in Counter(names).items() if n > 1)
        if repeated:
            raise _damaged(file, f"it holds the entries {repeated} more than once")
        document, version = _parse_header(file, _read_entry(file, archive, _JSON_ENTRY))
        expected = _ENTRIES[version]
        unexpected = sorted(set(names) - expected)
        if unexpected:
            raise _damaged(
                file,
                f"it holds the entries {unexpected}, which a skae file of "
                f"format version {version} does not have",
            )
        missing = sorted(expected - set(names))
        if missing:
            raise _damaged(file, f"it has no {' and no '.join(missing)} entry")
        entries = {name: _read_entry(file, archive, name) for name in names}
    return document, version, entries


def _parse_header(file, text):
    """The JSON document of a skae file and its format version."""
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _invalid(file, f"{_JSON_ENTRY} is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise _invalid(file, f"{_JSON_ENTRY} does not describe a skae estimator")
    version = document.get("format_version")
    if type(version) is not int or version < 1:
        raise _invalid(file, f"its format version {version!r} is not valid")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"Cannot load {_describe(file)}: it has format version {version}, "
            f"newer than version {FORMAT_VERSION} read by skae {__version__}. "
            "Upgrade skae to load it."
        )
    return document, version


def _check_digest(file, document, version, entries):
    """Refuse a file whose entries do not match their recorded digest."""
    if version == 1:
        # The digest of the weights only, in the JSON document.
        recorded = document.get(_V1_DIGEST_KEY)
        if hashlib.sha256(entries[_WEIGHTS_ENTRY]).hexdigest() != recorded:
            raise _damaged(
                file,
                f"its {_WEIGHTS_ENTRY} entry does not match the SHA-256 digest "
                f"recorded in its {_JSON_ENTRY}",
            )
        return
    if _archive_digest(entries).encode("ascii") != entries[_DIGEST_ENTRY]:
        raise _damaged(
            file,
            f"its entries do not match the SHA-256 digest in its {_DIGEST_ENTRY} entry",
        )


def _check_document(file, document, version):
    """Refuse a JSON document that lacks the structure skae writes."""
    required = _REQUIRED_KEYS + ((_V1_DIGEST_KEY,) if version == 1 else ())
    missing = [key for key in required if key not in document]
    if missing:
        raise _invalid(file, f"{_JSON_ENTRY} lacks the keys {missing}")
    net = document["net"]
    if not isinstance(net, dict) or any(key not in net for key in _NET_KEYS):
        raise _invalid(file, f"the 'net' entry must hold the keys {list(_NET_KEYS)}")
    if not isinstance(document["params"], dict) or not isinstance(
        document["fitted"], dict
    ):
        raise _invalid(file, "the 'params' and 'fitted' entries must be objects")
    class_name = document["class"]
    if not isinstance(class_name, str) or class_name not in _CLASSES:
        raise _invalid(
            file,
            f"it names the unknown estimator class {class_name!r}; a skae file "
            f"holds one of {', '.join(_CLASSES)}",
        )


def _read_weights(file, weights):
    """The module and optimizer state dicts."""
    try:
        payload = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # weights_only=True refuses anything but tensors and plain containers.
        raise _invalid(
            file,
            f"its {_WEIGHTS_ENTRY} entry holds objects other than tensors; they "
            "were refused and nothing in it was run",
        ) from None
    except Exception as exc:
        summary = str(exc).strip().split("\n")[0]
        raise _invalid(
            file,
            f"its {_WEIGHTS_ENTRY} entry cannot be read as tensors "
            f"({type(exc).__name__}: {summary}); nothing in it was run",
        ) from None
    if not (
        type(payload) is dict
        and set(payload) == {"module", "optimizer"}
        and isinstance(payload["module"], dict)
        and all(
            isinstance(key, str) and isinstance(value, torch.Tensor)
            for key, value in payload["module"].items()
        )
        and isinstance(payload["optimizer"], dict)
    ):
        raise _invalid(
            file,
            f"its {_WEIGHTS_ENTRY} entry does not hold the module and optimizer "
            "state dicts",
        )
    return payload["module"], payload["optimizer"]


def _decode(file, document, key):
    try:
        return _from_json(document[key])
    except (_Malformed, TypeError, ValueError, RecursionError) as exc:
        raise _invalid(file, f"its '{key}' entry is malformed: {exc}") from None


def _choose_device(saved, device):
    """The device to load on: the given one, else the saved one if present."""
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
                if isinstance(value, torch.Tensor)
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


def load(file, *, device=None):
    """Load an estimator saved with :func:`save`.

    Nothing in the file is run: parameters and fitted attributes are read
    from JSON, the weights with ``torch.load(..., weights_only=True)``, and
    the class from a fixed table of the four skae estimators. This is what
    makes a file from an untrusted source safe to load.

    Before their contents are used, the file's entries are checked against
    the SHA-256 digest that :func:`save` wrote over all of them, so that a
    damaged or edited file (any parameter, fitted attribute or weight
    changed, an entry added or removed) is refused. The digest is a
    checksum, not a signature: it does not stop a forger who rewrites it to
    match an edit. The weights are also checked against the network that
    the saved parameters describe.

    Parameters
    ----------
    file : str, path-like or binary file object
        The file to read. A file object must be open for reading in binary
        mode and seekable.

    device : str, default=None
        Where to put the network: "auto", "cpu", "cuda", "cuda:N" or "mps".
        It replaces the saved ``device`` parameter. When None, the saved
        ``device`` is kept if it is usable here, and "cpu" is used otherwise
        (with a warning), e.g. for a model trained on a GPU loaded on a
        machine without one.

    Returns
    -------
    estimator : skae estimator
        The fitted estimator, of the saved class, with the saved parameters
        (``device`` aside), fitted attributes, weights, optimizer state and
        training history. It transforms and scores as the saved estimator
        did, and continues its training with ``partial_fit`` or ``fit`` with
        ``warm_start=True``.

    Raises
    ------
    ValueError
        If the file is not a skae file (not a zip archive, no ``skae.json``,
        an unknown format version or class), if it was modified or damaged
        (its entries do not match the digest, an entry was added or removed,
        the weights do not fit the estimator described, or they hold
        anything but tensors), or if ``device`` is not available.

    Warns
    -----
    UserWarning
        If the saved ``device`` is not usable here and ``device`` is None
        (the estimator is loaded on the CPU), or if the file has format
        version 1, the previous format, whose digest covers the weights
        only.

    See Also
    --------
    save : Save a fitted estimator.

    Examples
    --------
    >>> from io import BytesIO
    >>> import numpy as np
    >>> from skae import SparseAutoencoder
    >>> from skae.io import load, save
    >>> X = np.random.RandomState(0).uniform(size=(40, 6))
    >>> sae = SparseAutoencoder(n_components=3, max_iter=200, tol=1.0,
    ...                         n_iter_no_change=1, random_state=0,
    ...                         device="cpu").fit(X)
    >>> buffer = BytesIO()
    >>> save(sae, buffer)
    >>> restored = load(BytesIO(buffer.getvalue()), device="cpu")
    >>> restored.n_iter_ == sae.n_iter_
    True
    >>> np.array_equal(restored.components_, sae.components_)
    True
    """
    document, version, entries = _read_archive(file)
    _check_digest(file, document, version, entries)
    _check_document(file, document, version)
    if version == 1:
        warnings.warn(
            f"{_describe(file)} has skae format version 1, whose digest covers "
            f"its weights only, not its {_JSON_ENTRY}. Save the estimator "
            f"again to write format version {FORMAT_VERSION}, whose digest "
            "covers the whole file.",
            UserWarning,
            stacklevel=2,
        )
    module_state, optimizer_state = _read_weights(file, entries[_WEIGHTS_ENTRY])
    params = _decode(file, document, "params")
    fitted = _decode(file, document, "fitted")
    net_info = _decode(file, document, "net")
    output_config = _decode(file, document, "output_config")
    seed = net_info["seed"]
    if type(seed) is not int:
        raise _invalid(file, f"its seed {seed!r} is not an int")

    estimator = _make_estimator(file, document["class"], params, device)
    _check_fitted_attributes(file, estimator, fitted)
    n_features = fitted["n_features_in_"]
    offset = module_state.get("input_offset")
    if offset is None or tuple(offset.shape) != (n_features,):
        raise _invalid(file, f"its weights do not fit n_features_in_={n_features}")
    # The data only sets the module's centring and output bias, which the
    # saved weights replace, and the hooks' tensors, restored below.
    placeholder = np.zeros((2, n_features), dtype=np.float32)
    net = estimator._build_net(placeholder, seed, fitted["loss_"])
    net.initialize()
    _load_module_state(file, net.module_, module_state)
    _load_optimizer_state(file, net.optimizer_, optimizer_state)
    _restore_hook_tensors(file, net, net_info["hook_tensors"])
    _restore_history(file, net, net_info["history"])
    _restore_output_config(file, estimator, output_config)

    estimator.net_ = net
    for name, value in fitted.items():
        setattr(estimator, name, value)
    return estimator
