"""Tests of output containers (set_output) and output feature names."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
)

pd = pytest.importorskip("pandas")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = [
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
]
N_COMPONENTS = 3
COLUMNS = [f"pixel{i}" for i in range(6)]
X = np.random.RandomState(0).uniform(size=(20, 6))
# A non-default index, to see that it is kept.
X_df = pd.DataFrame(X, columns=COLUMNS, index=np.arange(100, 120)[::-1])


def _make(Estimator, **params):
    """A small, fast instance of ``Estimator``."""
    fast = dict(hidden_layer_sizes=(), max_iter=2, random_state=0, device="cpu")
    return Estimator(N_COMPONENTS, **{**fast, **params})


def _expected_names(Estimator):
    return [f"{Estimator.__name__.lower()}{i}" for i in range(N_COMPONENTS)]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pandas_output_has_names_and_index(Estimator):
    """Check that pandas output has the output names and the input's index."""
    est = _make(Estimator).fit(X_df)
    codes = est.transform(X_df)

    est.set_output(transform="pandas")
    out = est.transform(X_df)

    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(est.get_feature_names_out())
    assert list(out.columns) == _expected_names(Estimator)
    pd.testing.assert_index_equal(out.index, X_df.index)
    assert (out.dtypes == np.float64).all()
    np.testing.assert_array_equal(out.to_numpy(), codes)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pandas_output_of_fit_transform(Estimator):
    """Check that fit_transform gives the same DataFrame as fit then transform."""
    est = _make(Estimator).set_output(transform="pandas")

    out = est.fit_transform(X_df)

    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == _expected_names(Estimator)
    pd.testing.assert_index_equal(out.index, X_df.index)
    pd.testing.assert_frame_equal(out, est.transform(X_df))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pandas_output_keeps_float32(Estimator):
    """Check that float32 columns give float32 codes in pandas output."""
    X32 = X_df.astype(np.float32)
    est = _make(Estimator).set_output(transform="pandas").fit(X32)

    out = est.transform(X32)

    assert (out.dtypes == np.float32).all()
    assert (est.transform(X_df).dtypes == np.float64).all()


def test_pandas_output_of_numpy_input():
    """Check that a NumPy input gives a DataFrame with a default index."""
    est = _make(Autoencoder).set_output(transform="pandas").fit(X)

    out = est.transform(X)

    assert list(out.columns) == _expected_names(Autoencoder)
    pd.testing.assert_index_equal(out.index, pd.RangeIndex(len(X)))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_inverse_transform_returns_ndarray(Estimator):
    """Check that inverse_transform returns an ndarray whatever set_output says.

    scikit-learn's set_output wraps transform and fit_transform only.
    """
    est = _make(Estimator).set_output(transform="pandas").fit(X_df)
    codes = est.transform(X_df)

    reconstructions = est.inverse_transform(codes)

    assert type(reconstructions) is np.ndarray
    assert reconstructions.shape == X_df.shape
    np.testing.assert_array_equal(
        reconstructions, est.inverse_transform(codes.to_numpy())
    )


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_feature_names_are_stable(Estimator):
    """Check that the output names depend on the class and n_components only."""
    expected = _expected_names(Estimator)
    with pytest.raises(NotFittedError):  # as PCA's, before fit
        _make(Estimator).get_feature_names_out()
    est = _make(Estimator).fit(X_df)
    assert list(est.get_feature_names_out()) == expected

    # Another fit, on other data without feature names.
    est.set_params(random_state=1).fit(X[:10, :4])
    assert list(est.get_feature_names_out()) == expected
    assert list(clone(est).fit(X).get_feature_names_out()) == expected

    restored = pickle.loads(pickle.dumps(est.set_output(transform="pandas")))
    assert list(restored.get_feature_names_out()) == expected
    assert list(restored.transform(X[:, :4]).columns) == expected


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_feature_names_out_checks_input_features(Estimator):
    """Check that input_features must match the features seen in fit."""
    est = _make(Estimator).fit(X_df)

    names = est.get_feature_names_out(COLUMNS)
    assert list(names) == _expected_names(Estimator)
    with pytest.raises(ValueError, match="input_features is not equal to"):
        est.get_feature_names_out([f"other{i}" for i in range(6)])

    est = _make(Estimator).fit(X)
    assert list(est.get_feature_names_out([f"x{i}" for i in range(6)])) == list(names)
    with pytest.raises(ValueError, match="input_features should have length"):
        est.get_feature_names_out(["x0", "x1"])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pipeline_passes_names_downstream(Estimator):
    """Check that a downstream step of a pandas-output Pipeline sees the names."""
    pipe = make_pipeline(_make(Estimator), StandardScaler())
    pipe.set_output(transform="pandas")

    out = pipe.fit_transform(X_df)

    expected = _expected_names(Estimator)
    scaler = pipe[-1]
    assert list(scaler.feature_names_in_) == expected
    assert list(pipe.get_feature_names_out()) == expected
    assert list(out.columns) == expected
    pd.testing.assert_index_equal(out.index, X_df.index)
    pd.testing.assert_frame_equal(out, pipe.transform(X_df))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_polars_output(Estimator):
    """Check that polars output has the output names, for pandas or polars input."""
    pl = pytest.importorskip("polars")
    est = _make(Estimator).fit(X_df)
    codes = est.transform(X_df)

    est.set_output(transform="polars")

    for data in (X_df, pl.DataFrame(X, schema=COLUMNS)):
        out = est.transform(data)
        assert isinstance(out, pl.DataFrame)
        assert out.columns == _expected_names(Estimator)
        np.testing.assert_allclose(out.to_numpy(), codes, rtol=1e-6)
    assert out.columns == list(est.get_feature_names_out())
    assert type(est.inverse_transform(out)) is np.ndarray


def test_polars_float64_input_keeps_float64():
    """Check that float64 polars columns give float64 codes, as pandas ones do."""
    pl = pytest.importorskip("polars")
    X_pl = pl.DataFrame(X, schema=COLUMNS)
    est = _make(Autoencoder).set_output(transform="polars").fit(X_pl)

    out = est.transform(X_pl)

    assert out.dtypes == [pl.Float64] * N_COMPONENTS


def test_pandas_nullable_float64_input_keeps_float64():
    """Check that pandas' nullable Float64 columns give float64 codes and
    scores, as NumPy float64 columns do."""
    X_nullable = X_df.astype("Float64")
    est = _make(Autoencoder).fit(X_nullable)
    assert est.transform(X_nullable).dtype == np.float64
    assert est.score_samples(X_nullable).dtype == np.float64
    np.testing.assert_allclose(est.transform(X_nullable), est.transform(X_df))


FLOAT64_FRAMES = {
    "beside-nullable-Int64": lambda: X_df.assign(k=pd.array([0, 1] * 10, "Int64")),
    "beside-boolean": lambda: X_df.assign(k=pd.array([True, False] * 10, "boolean")),
    "pyarrow-double": lambda: X_df.astype("double[pyarrow]"),
}


@pytest.mark.parametrize("kind", list(FLOAT64_FRAMES))
def test_float64_columns_beside_extension_dtypes_keep_float64(kind):
    """Check that float64 columns keep float64 codes and scores whatever
    sits beside them: check_array makes any frame with an extension dtype
    (a nullable Int64 or boolean column, pyarrow's double) float32, so the
    data lost float64's precision and its centring (at 1e6: a warning
    asking for float64 X, which the user had passed)."""
    if kind == "pyarrow-double":
        pytest.importorskip("pyarrow")
    frame = FLOAT64_FRAMES[kind]()
    far = frame + 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataConversionWarning)
        est = _make(Autoencoder).fit(far)
    assert est._input_shift is not None
    assert est.transform(far).dtype == np.float64
    assert est.score_samples(far).dtype == np.float64
    numpy_columns = frame.astype(np.float64)
    np.testing.assert_allclose(
        _make(Autoencoder).fit(numpy_columns).transform(numpy_columns),
        _make(Autoencoder).fit(frame).transform(frame),
    )


def test_longdouble_input_computes_as_float64():
    """Check that longdouble X is read as float64, not float32."""
    est = _make(Autoencoder).fit(X.astype(np.longdouble))
    assert est.transform(X.astype(np.longdouble)).dtype == np.float64
    np.testing.assert_allclose(est.transform(X.astype(np.longdouble)), est.transform(X))


def assert_rowwise_close(actual, desired, err_msg=""):
    """Equal to float32 rounding, the promise for a row computed with others.

    A row's result does not depend on the rows passed with it, but BLAS
    matrix products may round it differently by its position within a tile
    of the product (a few float32 ulps): the same row passed with other rows
    or in another order can differ from itself in the last bits, no more.
    """
    scale = float(np.abs(desired).max())
    np.testing.assert_allclose(
        actual, desired, rtol=1e-6, atol=1e-6 * scale, err_msg=err_msg
    )


@pytest.mark.parametrize("hidden", [(), (7,)], ids=["one-layer", "deep"])
def test_inference_is_deterministic_and_rowwise(hidden):
    """Check the inference guarantee of transform, inverse_transform and
    score_samples: the same array gives bit for bit the same result on every
    call, and each row's result does not depend on the rows passed with it,
    on their order, on where the 1024-row blocks fall, or on float32 or
    float64 input, beyond float32 rounding."""
    from skae._engine.inference import INFERENCE_BLOCK as block

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2 * block + 37, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(
            n_components=3,
            hidden_layer_sizes=hidden,
            max_iter=2,
            random_state=0,
            device="cpu",
        ).fit(X)
    codes = ae.transform(X)
    # Single rows, rows inside a block, a whole block, rows across the block
    # boundary (full blocks are written in place, the last one is padded).
    subsets = [
        slice(5, 9),
        slice(0, 1),
        slice(block - 1, block),
        slice(block, block + 1),
        slice(block - 3, block + 5),
        slice(0, block),
        slice(block, None),
        slice(len(X) - 37, None),
    ]
    order = rng.permutation(len(X))
    methods = {
        "transform": (ae.transform, X),
        "inverse_transform": (ae.inverse_transform, codes),
        "score_samples": (ae.score_samples, X),
    }
    for name, (method, A) in methods.items():
        full = method(A)
        assert full.dtype == np.float32, name
        # Deterministic: the same array gives the same bits every call.
        np.testing.assert_array_equal(method(A), full, err_msg=name)
        np.testing.assert_array_equal(method(A[5:9]), method(A[5:9]), err_msg=name)
        # Row by row: the other rows and their order change nothing but
        # the rounding.
        assert_rowwise_close(method(A[::-1])[::-1], full, err_msg=name)
        assert_rowwise_close(method(A[order]), full[order], err_msg=name)
        for rows in subsets:
            assert_rowwise_close(method(A[rows]), full[rows], err_msg=f"{name} {rows}")
        # float64 input is computed in float32.
        wide = method(A.astype(np.float64))
        assert wide.dtype == np.float64, name
        assert_rowwise_close(wide, full, err_msg=name)
        assert_rowwise_close(method(A[5:9].astype(np.float64)), full[5:9], name)
    with torch.inference_mode():
        expected = ae.net_.module_.encode(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)


def test_reversed_and_strided_views_are_accepted():
    """Check that views torch cannot wrap (negative strides) work in every
    method and give what their contiguous copies give."""
    X = np.random.default_rng(0).uniform(size=(60, 5))
    view = X[::-1, ::-1]
    params = dict(n_components=2, max_iter=3, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(**params).fit(view)
        reference = Autoencoder(**params).fit(view.copy())
    np.testing.assert_array_equal(ae.transform(view), reference.transform(view.copy()))
    codes = ae.transform(view)
    np.testing.assert_array_equal(
        ae.inverse_transform(codes[::-1]), ae.inverse_transform(codes[::-1].copy())
    )
    np.testing.assert_array_equal(ae.score_samples(view), ae.score_samples(view.copy()))
