"""The skae file format: its entries, digest and reading.

What ``skae.io.save`` writes and ``skae.io.load`` checks before anything is
built from a file: the entry names, the digest over every member, and the
checks of the archive, its header, its document and its weights. The JSON
encoding of parameters and fitted attributes is in ``skae._codec``.
"""

import hashlib
import io
import json
import os
import pickle
import re
import zipfile
from collections import Counter
from functools import partial

import torch

from . import __version__
from ._autoencoder import Autoencoder
from ._codec import _from_json, _Malformed
from ._contractive import ContractiveAutoencoder
from ._denoising import DenoisingAutoencoder
from ._sparse import SparseAutoencoder

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
# Hook tensors made from what the file keeps elsewhere, not saved: masking
# noise's fill, from the float64 shift (files written before it had none).
_DERIVED = ("fill",)

# Keys of an optimizer's param_groups that are set for the device it runs on.
_DEVICE_DEPENDENT = ("params", "fused", "foreach", "capturable", "differentiable")

_FITTED_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*_")

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


def _weights_entry(net):
    """The bytes of the weights entry: the module and optimizer state dicts,
    checked to read back as ``load`` reads them, so that ``save`` never
    writes a file that ``load`` refuses."""
    buffer = io.BytesIO()
    torch.save(
        {
            "module": _to_cpu(net.module_.state_dict()),
            "optimizer": _to_cpu(net.optimizer_.state_dict()),
        },
        buffer,
    )
    weights = buffer.getvalue()
    try:
        torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            "The network's or its optimizer's state holds an object other "
            "than tensors and plain numbers, which a skae file cannot store "
            f"({str(exc).strip().splitlines()[-1]}); nothing was written. Save "
            "it with pickle or joblib instead, which must only be used to load "
            "files from trusted sources."
        ) from None
    return weights


def _entry(name, compress_type):
    # A fixed timestamp: saving the same estimator twice gives the same bytes.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress_type
    return info


def _hook_tensors(net):
    """The tensor arguments of the net's hooks, as NumPy arrays."""
    saved = {}
    for name in _HOOKS:
        hook = getattr(net, name, None)
        if isinstance(hook, partial):
            tensors = {
                key: value.detach().cpu().numpy()
                for key, value in hook.keywords.items()
                if isinstance(value, torch.Tensor) and key not in _DERIVED
            }
            if tensors:
                saved[name] = tensors
    return saved


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
    if isinstance(file, io.TextIOBase):
        raise ValueError(
            f"Cannot load {_describe(file)}: it is open in text mode. Open it "
            "in binary mode ('rb'), or pass its path."
        )
    seekable = getattr(file, "seekable", None)
    if seekable is not None and not seekable():
        raise ValueError(
            f"Cannot load {_describe(file)}: it cannot seek, which reading a "
            "zip archive needs. Pass its path, or its contents in io.BytesIO."
        )
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise _invalid(
            file,
            "it is not a skae file (not a zip archive), or a skae file cut "
            "short (an interrupted copy or download)",
        ) from None
    with archive:
        names = archive.namelist()
        if _JSON_ENTRY not in names:
            hint = (
                " (it looks like a torch.save file, or like a skae file cut "
                "short, whose weights entry is a torch.save file)"
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
