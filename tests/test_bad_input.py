"""Bad inputs and parameters: each gets a ValueError or TypeError saying what
is wrong and what to do, and inputs are never modified."""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    generate_invalid_param_val,
    make_constraint,
)
from sklearn.utils._testing import create_memmap_backed_data
from skorch.callbacks import Callback, Checkpoint, LoadInitState, TrainEndCheckpoint

from skae import (
    Autoencoder,
    AutoencoderImputer,
    AutoencoderOutlierDetector,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # NumPy's cast of values beyond float32, before check_array refuses them.
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]

ESTIMATORS = [
    Autoencoder,
    SparseAutoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
]
FAST = dict(
    n_components=2,
    hidden_layer_sizes=(),
    max_iter=2,
    batch_size=8,
    device="cpu",
    random_state=0,
)
N_SAMPLES, N_FEATURES = 12, 4
FIT_METHODS = ["fit", "partial_fit"]
INFERENCE_METHODS = ["transform", "score", "score_samples", "inverse_transform"]


def _make(Estimator, **params):
    return Estimator(**{**FAST, **params})


def _data(dtype=np.float64, n_samples=N_SAMPLES):
    X = np.random.RandomState(0).normal(size=(n_samples, N_FEATURES))
    return X.astype(dtype)


def _n_columns(method):
    """The width a method takes: codes for inverse_transform, else features."""
    return FAST["n_components"] if method == "inverse_transform" else N_FEATURES


@pytest.fixture(scope="module")
def fitted():
    """Each estimator class fitted once on ``_data()``; do not modify."""
    cache = {}

    def get(Estimator):
        if Estimator not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                cache[Estimator] = _make(Estimator).fit(_data())
        return cache[Estimator]

    return get


# ------------------------------------------------------------- bad data


def _with_value(value, dtype=np.float64):
    def make(n_columns):
        A = _data(n_samples=5)[:, :n_columns].astype(dtype)
        A[1, 0] = value
        return A

    return make


def _object_with(value):
    def make(n_columns):
        A = _data(n_samples=5)[:, :n_columns].astype(object)
        A[1, 0] = value
        return A

    return make


def _sparse(fmt):
    return lambda n_columns: sp.random(
        5, n_columns, density=0.5, format=fmt, random_state=0
    )


_STRINGS = (ValueError, r"needs numeric data, but X contains strings.*OneHotEncoder")
_SPARSE = (
    TypeError,
    r"Sparse data was passed.*dense data is required.*toarray\(\)",
)
_OVERFLOW = (ValueError, r"exceed the float32 range .*Rescale X")

# kind: (make(n_columns) -> data, expected exception, message pattern)
BAD_DATA = {
    "nan": (_with_value(np.nan), ValueError, "contains NaN"),
    "nan-float32": (_with_value(np.nan, np.float32), ValueError, "contains NaN"),
    "+inf": (_with_value(np.inf), ValueError, "contains infinity"),
    "-inf": (_with_value(-np.inf), ValueError, "contains infinity"),
    "object-None": (_object_with(None), ValueError, "contains NaN"),
    "float32-overflow": (_with_value(1e39), *_OVERFLOW),
    "float32-overflow-negative": (_with_value(-1e39), *_OVERFLOW),
    # Object arrays and lists are cast to float32 directly, so check_array
    # sees the infinity.
    "object-overflow": (
        _object_with(10**40),
        ValueError,
        r"contains infinity or a value too large for dtype\('float32'\)",
    ),
    "0-samples": (
        lambda n: np.empty((0, n)),
        ValueError,
        r"Found array with 0 sample\(s\) .* a minimum of 1 is required",
    ),
    "0-features": (
        lambda n: np.empty((5, 0)),
        ValueError,
        r"Found array with 0 feature\(s\) .* a minimum of 1 is required",
    ),
    "1d": (
        lambda n: np.arange(n, dtype=float),
        ValueError,
        r"(?s)Expected 2D array, got 1D array instead.*Reshape your data",
    ),
    "3d": (
        lambda n: np.zeros((5, n, 2)),
        ValueError,
        r"Found array with dim 3.* dim <= 2 is required",
    ),
    "strings": (lambda n: np.full((5, n), "a"), *_STRINGS),
    "bytes": (lambda n: np.full((5, n), b"a"), *_STRINGS),
    "object-strings": (_object_with("a"), *_STRINGS),
    "object-dict": (
        _object_with({"a": 1}),
        TypeError,
        "argument must be a string or a real number",
    ),
    "complex": (
        lambda n: np.ones((5, n)) + 1j,
        ValueError,
        "Complex data not supported",
    ),
    "sparse-csr": (_sparse("csr"), *_SPARSE),
    "sparse-csc": (_sparse("csc"), *_SPARSE),
    "sparse-coo": (_sparse("coo"), *_SPARSE),
    "sparse-array": (lambda n: sp.csr_array(np.eye(5, n)), *_SPARSE),
}


@pytest.mark.parametrize("kind", list(BAD_DATA))
@pytest.mark.parametrize("method", FIT_METHODS + INFERENCE_METHODS)
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_bad_data_is_refused(Estimator, method, kind, fitted):
    """Check that bad data is refused with an error saying what is wrong."""
    make, error, match = BAD_DATA[kind]
    A = make(_n_columns(method))
    estimator = _make(Estimator) if method in FIT_METHODS else fitted(Estimator)
    with pytest.raises(error, match=match):
        getattr(estimator, method)(A)


ACCEPTED_DATA = {
    "bool": lambda X: X > 0,
    "int64": lambda X: np.round(10 * X).astype(np.int64),
    "int32": lambda X: np.round(10 * X).astype(np.int32),
    "uint8": lambda X: np.round(10 * np.abs(X)).astype(np.uint8),
    "float16": lambda X: X.astype(np.float16),
    "object": lambda X: X.astype(object),
    "list": lambda X: X.tolist(),
}


@pytest.mark.parametrize("kind", list(ACCEPTED_DATA))
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_numeric_data_is_cast_to_float32(Estimator, kind):
    """Check that numeric non-float data is accepted and computed in float32."""
    A = ACCEPTED_DATA[kind](_data())
    estimator = _make(Estimator).fit(A)
    codes = estimator.transform(A)
    assert codes.dtype == np.float32
    assert codes.shape == (N_SAMPLES, FAST["n_components"])
    assert np.isfinite(codes).all()
    scores = estimator.score_samples(A)
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    assert np.isfinite(estimator.score(A))
    reconstruction = estimator.inverse_transform(codes.astype(np.int64))
    assert reconstruction.dtype == np.float32
    assert reconstruction.shape == (N_SAMPLES, N_FEATURES)
    assert np.isfinite(reconstruction).all()


TENSOR_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("device", TENSOR_DEVICES)
@pytest.mark.parametrize(
    "dtype, expected",
    [
        (torch.float32, np.float32),
        (torch.float64, np.float64),
        (torch.float16, np.float32),
        (torch.bfloat16, np.float32),
        (torch.int64, np.float32),
        (torch.bool, np.float32),
    ],
    ids=str,
)
def test_torch_tensors(dtype, expected, device, requires_grad):
    """Check that tensors of any device and dtype, with gradients or not, work
    as their NumPy counterparts."""
    X = torch.as_tensor(_data(), device=device)
    X = X > 0 if dtype is torch.bool else (10 * X).to(dtype)
    if requires_grad and X.is_floating_point():
        X.requires_grad_()
    estimator = _make(Autoencoder).fit(X)
    codes = estimator.transform(X)
    assert isinstance(codes, np.ndarray) and codes.dtype == expected
    assert np.isfinite(codes).all()
    assert estimator.score_samples(X).dtype == expected
    decoded = estimator.inverse_transform(torch.as_tensor(codes, device=device))
    assert decoded.dtype == expected and np.isfinite(decoded).all()


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str
)
@pytest.mark.parametrize("Wrapper", [AutoencoderImputer, AutoencoderOutlierDetector])
def test_wrappers_take_torch_tensors_as_arrays(Wrapper, dtype, requires_grad):
    """Check that the imputer and the detector read tensors as their NumPy
    counterparts, as the autoencoders do: bfloat16 and tensors requiring
    gradients were errors, and float64 tensors were read as float32 (the
    detector's scores) or float32 ones as float64 (the imputer's fills)."""
    X = torch.as_tensor(10 * _data(n_samples=40)).to(dtype)
    if requires_grad:
        X.requires_grad_()
    as_array = X.detach().float().numpy() if dtype is torch.bfloat16 else None
    if as_array is None:
        as_array = X.detach().numpy()
    estimator = Wrapper(_make(Autoencoder, hidden_layer_sizes=(4,)))
    if Wrapper is AutoencoderImputer:
        out, expected = (
            clone(estimator).fit(data).transform(data) for data in (X, as_array)
        )
    else:
        out, expected = (
            clone(estimator).fit(data).decision_function(data) for data in (X, as_array)
        )
    assert out.dtype == expected.dtype == as_array.dtype
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("Wrapper", [AutoencoderImputer, AutoencoderOutlierDetector])
def test_wrappers_say_strings_need_encoding(Wrapper):
    """Check that the wrappers refuse strings as the autoencoders do, saying
    what to do, in fit and on new rows."""
    X = _data(n_samples=10).astype(object)
    fitted = Wrapper(_make(Autoencoder)).fit(X)
    X[1, 0] = "blue"
    with pytest.raises(_STRINGS[0], match=_STRINGS[1]):
        Wrapper(_make(Autoencoder)).fit(X)
    infer = "transform" if Wrapper is AutoencoderImputer else "predict"
    with pytest.raises(_STRINGS[0], match=_STRINGS[1]) as error:
        getattr(fitted, infer)(X)
    # The imputer adds that strings marking gaps are NaN to it.
    hinted = "If strings mark missing entries, replace them with np.nan" in str(
        error.value
    )
    assert hinted == (Wrapper is AutoencoderImputer)


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_float32_range_boundary(Estimator, fitted):
    """Check that the float32 range check starts right past float32's maximum."""
    largest = float(np.finfo(np.float32).max)
    X = _data()
    X[0, 0], X[1, 1] = largest, -largest
    codes = fitted(Estimator).transform(X)
    assert codes.dtype == np.float64 and np.isfinite(codes).all()
    X[0, 0] = np.nextafter(largest, np.inf)
    with pytest.raises(ValueError, match="exceed the float32 range"):
        fitted(Estimator).transform(X)


# --------------------------------------------------------- sample counts


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_fit_on_a_single_sample(Estimator):
    """Check that one sample is enough to fit, transform, score and decode."""
    X = _data()[:1]
    estimator = _make(Estimator).fit(X)
    codes = estimator.transform(X)
    assert codes.shape == (1, FAST["n_components"]) and np.isfinite(codes).all()
    scores = estimator.score_samples(X)
    assert scores.shape == (1,) and np.isfinite(scores).all()
    reconstruction = estimator.inverse_transform(codes)
    assert reconstruction.shape == (1, N_FEATURES)
    assert np.isfinite(reconstruction).all()


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_early_stopping_needs_enough_samples(Estimator):
    """Check that early stopping on too few samples says how to fix it."""
    estimator = _make(Estimator, early_stopping=True)
    with pytest.raises(
        ValueError, match=r"leaves 1 of 1 samples for validation.*early_stopping"
    ):
        estimator.fit(_data()[:1])
    # Two rows hold one out (ceil(0.1 * 2)), as in MLPRegressor.
    estimator.fit(_data()[:2])
    assert len(estimator.validation_scores_) == estimator.n_iter_
    assert np.isfinite(estimator.transform(_data()[:2])).all()


# ------------------------------------------------------- shape mismatches


@pytest.mark.parametrize("n_features", [1, N_FEATURES - 1, N_FEATURES + 1])
@pytest.mark.parametrize("method", ["transform", "score", "score_samples"])
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_wrong_number_of_features(Estimator, method, n_features, fitted):
    """Check that data of another width than the training data is refused."""
    A = np.ones((3, n_features))
    match = (
        rf"X has {n_features} features, but {Estimator.__name__} is expecting "
        rf"{N_FEATURES} features as input"
    )
    with pytest.raises(ValueError, match=match):
        getattr(fitted(Estimator), method)(A)


@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_continued_training_on_other_features(Estimator, how, fitted):
    """Check that training continued on data of another width is refused."""
    estimator = copy.deepcopy(fitted(Estimator))
    A = np.ones((3, N_FEATURES + 1))
    with pytest.raises(ValueError, match=r"X has 5 features, but .* expecting 4"):
        if how == "partial_fit":
            estimator.partial_fit(A)
        else:
            estimator.set_params(warm_start=True).fit(A)


@pytest.mark.parametrize("n_columns", [1, FAST["n_components"] + 1, N_FEATURES])
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_codes_of_wrong_width(Estimator, n_columns, fitted):
    """Check that inverse_transform refuses codes of another width."""
    match = (
        rf"X has {n_columns} columns but {Estimator.__name__} decodes codes of "
        rf"n_components={FAST['n_components']} columns. Pass the output of transform"
    )
    with pytest.raises(ValueError, match=match):
        fitted(Estimator).inverse_transform(np.zeros((3, n_columns)))


@pytest.mark.parametrize("method", INFERENCE_METHODS)
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_not_fitted(Estimator, method):
    """Check that using an unfitted estimator says to call fit first."""
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'"):
        getattr(_make(Estimator), method)(np.zeros((3, _n_columns(method))))


# ------------------------------------------------------------ DataFrames

COLUMNS = [f"f{i}" for i in range(N_FEATURES)]


def _frame(columns=COLUMNS):
    return pd.DataFrame(_data(), columns=columns)


@pytest.mark.parametrize("method", ["transform", "score", "score_samples"])
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_feature_names(Estimator, method):
    """Check scikit-learn's feature-name checks between fit and inference."""
    named = _make(Estimator).fit(_frame())
    np.testing.assert_array_equal(named.feature_names_in_, COLUMNS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(named, method)(_frame())
    with pytest.warns(
        UserWarning,
        match=f"X does not have valid feature names, but {Estimator.__name__} "
        "was fitted with feature names",
    ):
        getattr(named, method)(_data())
    with pytest.raises(
        ValueError,
        match="The feature names should match those that were passed during fit",
    ):
        getattr(named, method)(_frame(COLUMNS[::-1]))

    unnamed = _make(Estimator).fit(_data())
    assert not hasattr(unnamed, "feature_names_in_")
    with pytest.warns(
        UserWarning,
        match=f"X has feature names, but {Estimator.__name__} was fitted "
        "without feature names",
    ):
        getattr(unnamed, method)(_frame())


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_codes_as_a_dataframe(Estimator, fitted):
    """Check that inverse_transform takes codes with any column names."""
    estimator = fitted(Estimator)
    codes = estimator.transform(_data())
    frame = pd.DataFrame(codes, columns=estimator.get_feature_names_out())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            estimator.inverse_transform(frame), estimator.inverse_transform(codes)
        )


BAD_FRAMES = {
    "string-column": (
        lambda: _frame().assign(f0="a"),
        r"needs numeric data, but X contains strings.*OneHotEncoder",
    ),
    "categorical-column": (
        lambda: _frame().assign(f0=pd.Categorical(["a", "b"] * (N_SAMPLES // 2))),
        r"needs numeric data, but X contains strings.*OneHotEncoder",
    ),
    "nullable-with-NA": (
        lambda: _frame().astype("Float64").mask(np.eye(N_SAMPLES, N_FEATURES) > 0),
        "contains NaN",
    ),
    "overflow": (lambda: _frame() * 1e39, r"exceed the float32 range .*Rescale X"),
}


@pytest.mark.parametrize("kind", list(BAD_FRAMES))
@pytest.mark.parametrize("method", ["fit", "transform", "score_samples"])
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_bad_dataframes(Estimator, method, kind):
    """Check that bad DataFrame columns are refused at fit and inference."""
    make, match = BAD_FRAMES[kind]
    estimator = _make(Estimator)
    if method != "fit":
        estimator.fit(_frame())
    with pytest.raises(ValueError, match=match):
        getattr(estimator, method)(make())


# ------------------------------------------------------- loss and sparsity


@pytest.mark.parametrize("low, high", [(-0.5, 1.0), (0.0, 1.5), (-3.0, 3.0)])
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_cross_entropy_needs_unit_interval(Estimator, low, high):
    """Check that cross-entropy on data outside [0, 1] says to scale it."""
    X = np.random.RandomState(0).uniform(low, high, size=(N_SAMPLES, N_FEATURES))
    X[0, 0], X[1, 0] = low, high
    estimator = _make(Estimator, loss="binary_cross_entropy")
    match = (
        r"loss='binary_cross_entropy' needs every input value in \[0, 1\], got "
        r"values in \[.*\]. Scale the data .*MinMaxScaler.* or use "
        r"loss='squared_error'"
    )
    with pytest.raises(ValueError, match=match):
        estimator.fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_cross_entropy_model_on_data_outside_unit_interval(Estimator):
    """Check that a cross-entropy model refuses to train on data outside
    [0, 1], and still scores (finite, lower) and encodes it."""
    X = np.random.RandomState(0).uniform(size=(N_SAMPLES, N_FEATURES))
    estimator = _make(Estimator, loss="auto").fit(X)
    assert estimator.loss_ == "binary_cross_entropy"
    outside = 2 * X - 0.5
    with pytest.raises(ValueError, match=r"needs every input value in \[0, 1\]"):
        estimator.partial_fit(outside)
    scores = estimator.score_samples(outside)
    assert np.isfinite(scores).all()
    assert estimator.score(outside) < estimator.score(X)
    assert np.isfinite(estimator.transform(outside)).all()


@pytest.mark.parametrize("activation", ["relu", "tanh", "identity"])
def test_kl_sparsity_needs_logistic_codes(activation):
    """Check that KL sparsity with codes outside (0, 1) says what to use."""
    estimator = _make(SparseAutoencoder, sparsity="kl", activation=activation)
    match = (
        r"sparsity='kl' needs codes in \(0, 1\), i.e. activation='logistic', got "
        rf"activation='{activation}'. Use activation='logistic' \(or 'auto'\), "
        r"or sparsity='l1'"
    )
    with pytest.raises(ValueError, match=match):
        estimator.fit(_data())


# -------------------------------------------------------------- parameters


class _BadType:
    """An object no constraint accepts."""

    def __repr__(self):
        return "BadType()"


def _invalid_values(constraints):
    """Values that satisfy none of a parameter's constraints."""
    constraints = [make_constraint(c) for c in constraints]
    candidates = [_BadType(), -1, 0, 1.5, "bogus", None, np.nan]
    for constraint in constraints:
        try:
            candidates.append(generate_invalid_param_val(constraint))
        except NotImplementedError:
            pass
        if isinstance(constraint, Interval) and constraint.type is Integral:
            candidates += [2.0, "3"]
        elif isinstance(constraint, Interval) and constraint.type is Real:
            candidates += [-np.inf, np.inf, "0.5"]
        elif isinstance(constraint, StrOptions):
            candidates += [sorted(constraint.options)[0].upper(), 1]
    values = {}
    for value in candidates:
        if not any(c.is_satisfied_by(value) for c in constraints):
            values.setdefault(repr(value), value)
    return list(values.values())


PARAM_CASES = [
    pytest.param(Estimator, name, value, id=f"{Estimator.__name__}-{name}={value!r}")
    for Estimator in ESTIMATORS
    for name, constraints in Estimator._parameter_constraints.items()
    for value in _invalid_values(constraints)
]


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_parameter_has_invalid_cases(Estimator):
    """Check that the cases below cover every parameter of every estimator."""
    covered = {case.values[1] for case in PARAM_CASES if case.values[0] is Estimator}
    assert covered == set(Estimator().get_params())


@pytest.mark.parametrize("Estimator, name, value", PARAM_CASES)
def test_invalid_parameter_values(Estimator, name, value):
    """Check that an invalid parameter value is refused at fit, naming it."""
    estimator = _make(Estimator, **{name: value})
    match = rf"The '{name}' parameter of {Estimator.__name__} must be .* Got .* instead"
    with pytest.raises(InvalidParameterError, match=match):
        estimator.fit(_data())


@pytest.mark.parametrize(
    "hidden_layer_sizes", [(0,), (-1,), (4, 0), (4, -2), ("a",), (1.5,), ((4,),)]
)
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_hidden_layer_sizes_entries(Estimator, hidden_layer_sizes):
    """Check that layer sizes other than positive integers are refused."""
    estimator = _make(Estimator, hidden_layer_sizes=hidden_layer_sizes)
    with pytest.raises(
        ValueError, match="hidden_layer_sizes must contain positive integers only"
    ):
        estimator.fit(_data())


@pytest.mark.parametrize(
    "callbacks", [[1], ["bogus"], [("name", 1)], [("name",)], [(1, Callback())]]
)
def test_callbacks_entries(callbacks):
    """Check that a callbacks list holding no skorch callback is refused early."""
    estimator = _make(Autoencoder, callbacks=callbacks)
    with pytest.raises(
        InvalidParameterError,
        match=r"The 'callbacks' parameter of Autoencoder must be a list of skorch "
        r"callbacks .* Got an item .* instead",
    ):
        estimator.fit(_data())


@pytest.mark.parametrize(
    "make",
    [
        lambda d: Checkpoint(dirname=d),
        lambda d: ("saved", Checkpoint(monitor=None, dirname=d)),
        lambda d: TrainEndCheckpoint(dirname=d),
        lambda d: LoadInitState(Checkpoint(dirname=d)),
        lambda d: Checkpoint,
    ],
)
def test_skorch_checkpoints_are_refused_with_what_to_use(make, tmp_path):
    """Check that skorch's checkpoints, which read per-batch records and
    '*_best' flags that skae's loop does not keep (they crashed mid-fit),
    are refused before training, saying what to use instead."""
    estimator = _make(Autoencoder, callbacks=[make(str(tmp_path))])
    with pytest.raises(ValueError, match="checkpoints.*skae.io.save.*early_stopping"):
        estimator.fit(_data())
    assert not hasattr(estimator, "net_") and not list(tmp_path.iterdir())


def test_callbacks_accepted_forms():
    """Check that skorch's callback forms all pass the callbacks check."""
    named = Callback()
    callbacks = [Callback(), Callback, ("named", named), ("disabled", None)]
    est = _make(Autoencoder, callbacks=callbacks).fit(_data())
    # Each form reached training: the instance given under its name, the
    # class instantiated, the disabled one left out.
    fitted = dict(est.net_.callbacks_)
    assert fitted["named"] is named
    assert fitted.get("disabled") is None
    user = [cb for name, cb in est.net_.callbacks_ if type(cb) is Callback]
    assert len(user) == 3


@pytest.mark.parametrize("device", ["bogus", "", "CPU", "gpu", "cuda:x"])
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_unknown_device(Estimator, device):
    """Check that an unknown device string lists the valid ones."""
    estimator = _make(Estimator, device=device)
    with pytest.raises(
        ValueError, match=r"is not a valid device. Use 'auto', 'cpu', 'cuda'"
    ):
        estimator.fit(_data())


@pytest.mark.parametrize("device", ["meta", "xpu"])
def test_unsupported_device(device):
    """Check that a torch device skae does not support is refused."""
    with pytest.raises(ValueError, match=r"is not supported. Use 'auto', 'cpu'"):
        _make(Autoencoder, device=device).fit(_data())


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda c: c.__name__)
def test_cuda_when_absent(Estimator, device):
    """Check that asking for CUDA without it says to use device='auto'."""
    with pytest.raises(
        ValueError, match="CUDA is not available here. Use device='auto'"
    ):
        _make(Estimator, device=device).fit(_data())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_beyond_devices():
    """Check that a CUDA index past the visible devices is refused."""
    device = f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(ValueError, match=r"only \d+ CUDA device\(s\) are visible"):
        _make(Autoencoder, device=device).fit(_data())


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available here")
def test_mps_when_absent():
    """Check that asking for MPS without it says to use device='auto'."""
    with pytest.raises(ValueError, match="MPS is not available here. Use device="):
        _make(Autoencoder, device="mps").fit(_data())


@pytest.mark.parametrize("noise", ["masking", "salt_and_pepper"])
def test_noise_probability_above_one(noise):
    """Check that a corruption probability above 1 is refused."""
    estimator = _make(DenoisingAutoencoder, noise=noise, noise_level=1.5)
    with pytest.raises(ValueError, match=r"noise_level as a probability in \[0, 1\]"):
        estimator.fit(_data())


def test_closed_form_jacobian_with_hidden_layers():
    """Check that the closed-form Jacobian asks for a single encoder layer."""
    estimator = _make(
        ContractiveAutoencoder, jacobian="closed_form", hidden_layer_sizes=(4,)
    )
    with pytest.raises(ValueError, match=r"single encoder layer only.*'projection'"):
        estimator.fit(_data())


# ------------------------------------------------ inputs are never modified

INSTANCES = [
    _make(Autoencoder, hidden_layer_sizes=(8,)),
    _make(SparseAutoencoder),
    _make(SparseAutoencoder, sparsity="l1"),
    _make(ContractiveAutoencoder),
    _make(ContractiveAutoencoder, hidden_layer_sizes=(8,)),
    _make(DenoisingAutoencoder, noise="gaussian"),
    _make(DenoisingAutoencoder, noise="masking"),
    _make(DenoisingAutoencoder, noise="salt_and_pepper", early_stopping=True),
]
DTYPES = [np.float32, np.float64]


def _instance_id(estimator):
    params = estimator.get_params()
    extra = {
        k: v
        for k, v in params.items()
        if k in ("sparsity", "noise", "hidden_layer_sizes") and v != ()
    }
    return f"{type(estimator).__name__}{extra or ''}"


def _use(estimator, X, codes_input=None):
    """Fit, continue, transform, score and decode; check the outputs."""
    estimator.fit(X)
    estimator.partial_fit(X)
    codes = estimator.transform(X)
    dtype = np.result_type(*X.dtypes) if hasattr(X, "dtypes") else X.dtype
    assert codes.dtype == dtype and np.isfinite(codes).all()
    assert np.isfinite(estimator.score_samples(X)).all()
    assert np.isfinite(estimator.score(X))
    decoded = estimator.inverse_transform(codes if codes_input is None else codes_input)
    assert np.isfinite(decoded).all()
    return codes


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("estimator", INSTANCES, ids=_instance_id)
def test_read_only_input(estimator, dtype):
    """Check that read-only arrays work everywhere."""
    X = _data(dtype)
    X.setflags(write=False)
    codes = clone(estimator).fit(X).transform(X)
    codes.setflags(write=False)
    _use(clone(estimator), X, codes_input=codes)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("estimator", INSTANCES, ids=_instance_id)
def test_input_left_unchanged(estimator, dtype):
    """Check that the input arrays are left bit-identical."""
    X = _data(dtype)
    # More rows than an inference block, so that full blocks are views.
    X_large = _data(dtype, n_samples=1100)
    saved, saved_large = X.copy(), X_large.copy()
    estimator = clone(estimator)
    codes = _use(estimator, X)
    saved_codes = codes.copy()
    estimator.inverse_transform(codes)
    estimator.transform(X_large)
    estimator.score_samples(X_large)
    assert X.tobytes() == saved.tobytes()
    assert X_large.tobytes() == saved_large.tobytes()
    assert codes.tobytes() == saved_codes.tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("estimator", INSTANCES, ids=_instance_id)
def test_dataframe_left_unchanged(estimator, dtype):
    """Check that an input DataFrame is left unchanged."""
    frame = _frame().astype(dtype)
    saved = frame.copy(deep=True)
    _use(clone(estimator), frame)
    pd.testing.assert_frame_equal(frame, saved, check_exact=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("estimator", INSTANCES, ids=_instance_id)
def test_read_only_memmap(estimator, dtype, tmp_path):
    """Check that read-only memory-mapped arrays work at fit and inference."""
    X = _data(dtype)
    path = tmp_path / "X.dat"
    writer = np.memmap(path, dtype=dtype, mode="w+", shape=X.shape)
    writer[:] = X
    writer.flush()
    del writer
    X_mapped = np.memmap(path, dtype=dtype, mode="r", shape=X.shape)
    assert not X_mapped.flags.writeable
    codes = _use(clone(estimator), X_mapped)
    np.testing.assert_array_equal(X_mapped, X)

    X_backed, codes_backed = create_memmap_backed_data([X, codes])
    assert not X_backed.flags.writeable
    _use(clone(estimator), X_backed, codes_input=codes_backed)


def test_auto_loss_on_small_positive_values_is_squared_error():
    """Check that data of small values inside [0, 1] (not intensities)
    train with squared error under loss="auto" and reconstruct well, and
    that a few negative values next to 0 are values, not rounding, in
    float32 as in float64."""
    rng = np.random.RandomState(0)
    X = 1e-5 * np.abs(rng.normal(size=(300, 2)) @ rng.normal(size=(2, 6)))
    sae = SparseAutoencoder(
        n_components=8, sparsity="topk", n_nonzero_coefs=2, max_iter=50, random_state=0
    ).fit(X)
    assert sae.loss_ == "squared_error"
    error = ((sae.inverse_transform(sae.transform(X)) - X) ** 2).sum()
    assert error < 0.5 * ((X - X.mean(axis=0)) ** 2).sum()
    near_zero = rng.uniform(-1e-7, 1e-6, size=(200, 4))
    for dtype in (np.float64, np.float32):
        est = _make(SparseAutoencoder, loss="auto").fit(near_zero.astype(dtype))
        assert est.loss_ == "squared_error", dtype
    # Intensities (MinMaxScaler's output, a rounding past 1) stay cross-entropy.
    unit = rng.uniform(size=(50, 4))
    unit[0, 0], unit[1, 1] = 1 + 2e-16, -1e-17
    assert _make(SparseAutoencoder, loss="auto").fit(unit).loss_ == (
        "binary_cross_entropy"
    )


def test_cross_entropy_starts_from_the_mean_of_small_columns():
    """Check that a cross-entropy model starts from the best constant
    reconstruction, the columns' means, however small they are."""
    rng = np.random.RandomState(0)
    X = np.clip(rng.uniform(size=(200, 4)) * [1.0, 1e-2, 1e-4, 3e-6], 0, 1)
    est = Autoencoder(
        n_components=2,
        loss="binary_cross_entropy",
        learning_rate_init=1e-9,
        max_iter=1,
        random_state=0,
        device="cpu",
    ).fit(X)
    reconstruction = est.inverse_transform(est.transform(X))
    np.testing.assert_allclose(reconstruction.mean(axis=0), X.mean(axis=0), rtol=0.05)
