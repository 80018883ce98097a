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
    seed of its random streams, its history, the tensors the corruption or
    penalty took from the training data, the steps trained, the moving
    average of the mean activations, the float64 shift of data far from
    zero, and what a continued fit reads from the network rather than the
    parameters: its step size, the outlier detector's trimmed fraction and
    the noise its corruption was built with). Values that JSON lacks are
    objects tagged by a ``"__type__"`` key: ``"tuple"`` (with ``"items"``), and
    ``"ndarray"`` or ``"numpy_scalar"`` (with ``"dtype"``, ``"shape"``, and
    ``"data"``: the base64 of the C-ordered bytes for numbers, a list of
    strings for strings).

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
``skae.json`` (key ``weights_sha256``) covers ``weights.pt`` only, missing
an edit to their ``skae.json``. Save the estimator again to update them.

Only the four skae estimator classes can be loaded; their names are looked
up in a fixed table, never imported from the file. An
:class:`~skae.AutoencoderOutlierDetector` or
:class:`~skae.AutoencoderImputer` is saved as the file of its fitted
autoencoder whose ``skae.json`` has one more key, ``wrapper`` (the
wrapper's class, from a second fixed table, parameters, fitted attributes
and output configuration); :func:`load` returns the wrapper around it.

Parameters that are Python objects (skorch ``callbacks``, a ``RandomState``
as ``random_state``) cannot be saved this way, nor network parameters
(``n_components``, say) set to other values since ``fit``: replace them,
or use pickle or joblib, which must only load files from trusted sources.
"""

import json
import warnings
import zipfile

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import __version__

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load", "save"]

from ._archive import (
    _CLASSES,
    _DIGEST_ENTRY,
    _JSON_ENTRY,
    _WEIGHTS_ENTRY,
    FORMAT_NAME,
    FORMAT_VERSION,
    _archive_digest,
    _check_digest,
    _check_document,
    _decode,
    _describe,
    _entry,
    _hook_tensors,
    _invalid,
    _read_archive,
    _read_weights,
    _weights_entry,
)
from ._codec import _attribute_to_json, _NotStorable, _param_to_json, _to_json
from ._continued import built_as_saved, continue_as_saved, settings_to_json
from ._restore import (
    _check_fitted_attributes,
    _input_shift,
    _load_module_state,
    _load_optimizer_state,
    _make_estimator,
    _restore_history,
    _restore_hook_tensors,
    _restore_output_config,
    _restore_training_state,
    _training_state,
)
from ._wrapped import (
    WRAPPERS,
    fit_settings,
    is_wrapper,
    wrapper_from_json,
    wrapper_to_json,
)


def _check_estimator(estimator):
    name = type(estimator).__name__
    if _CLASSES.get(name) is not type(estimator):
        raise TypeError(
            f"skae.io.save saves instances of {', '.join([*_CLASSES, *WRAPPERS])}"
            f", got {type(estimator).__qualname__}. Use pickle or joblib for "
            "other objects."
        )
    check_is_fitted(estimator, "net_")
    return name


def _serialize(estimator):
    """The JSON document and the weights bytes of a fitted estimator."""
    if is_wrapper(estimator):
        wrapper = wrapper_to_json(estimator)
        document, weights = _serialize(estimator.estimator_)
        document["wrapper"] = wrapper
        return document, weights
    class_name = _check_estimator(estimator)
    estimator._check_same_model(estimator.net_, doing="save")
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

    weights = _weights_entry(net)

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
            "training_state": _to_json(_training_state(net.module_)),
            "input_shift": _to_json(getattr(estimator, "_input_shift", None)),
            "settings": settings_to_json(estimator),
        },
        "output_config": _to_json(
            dict(getattr(estimator, "_sklearn_output_config", {}))
        ),
    }
    return document, weights


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
        The fitted Autoencoder, SparseAutoencoder, ContractiveAutoencoder,
        DenoisingAutoencoder, AutoencoderOutlierDetector or
        AutoencoderImputer to save.

    file : str, path-like or binary file object
        Where to write. A path is created or overwritten; a file object must
        be open for writing in binary mode.

    Raises
    ------
    TypeError
        If ``estimator``'s class is not one of skae's six (a subclass is
        refused too: ``load`` rebuilds only the classes themselves).

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
    # Masking noise fills with the shift's zero: set before the hooks.
    estimator._input_shift = _input_shift(file, net_info, n_features)
    with fit_settings(file, document.get("wrapper"), estimator):
        with built_as_saved(file, net_info, estimator, n_features) as settings:
            net = estimator._build_net(placeholder, seed, fitted["loss_"])
    net.initialize()
    _load_module_state(file, net.module_, module_state)
    _load_optimizer_state(file, net.optimizer_, optimizer_state)
    _restore_hook_tensors(file, net, net_info["hook_tensors"])
    _restore_training_state(file, net.module_, net_info.get("training_state"))
    _restore_history(file, net, net_info["history"])
    _restore_output_config(file, estimator, output_config)

    continue_as_saved(settings, estimator, net)
    estimator.net_ = net
    for name, value in fitted.items():
        setattr(estimator, name, value)
    # What the weights say (files of earlier versions lack some of it).
    estimator._describe_net(net)
    if "wrapper" in document:
        return wrapper_from_json(file, document["wrapper"], estimator, device)
    return estimator
