"""Scaling out on Dask: searches through joblib's dask backend, blockwise
training with dask-ml's Incremental, torch threads and GPUs in workers."""

import json
import os
import site
import uuid
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback
from threadpoolctl import threadpool_info

from skae import Autoencoder, SparseAutoencoder
from skae._engine.parallel import blas_within_share, limit_threads

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from distributed import Client, LocalCluster  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # The scheduler's HTTP server moves to a free port when 8787 is taken.
    pytest.mark.filterwarnings("ignore:Port 8787 is already in use"),
]

FAST = dict(max_iter=5, batch_size=64, device="cpu", random_state=0)


class Recorder(Callback):
    """Write where a fit trains to a file of its own in ``directory``.

    Module-level, so the workers unpickle it by importing this module.
    """

    def __init__(self, directory):
        self.directory = directory

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.threads_ = []

    def on_epoch_end(self, net, **kwargs):
        self.threads_.append(torch.get_num_threads())

    def on_train_end(self, net, X=None, y=None, **kwargs):
        try:
            worker = distributed.get_worker()
        except ValueError:
            worker = None
        record = {
            "pid": os.getpid(),
            "worker": None if worker is None else worker.address,
            "worker_nthreads": None if worker is None else worker.state.nthreads,
            "torch_threads": max(self.threads_),
            "n_rows": len(X),
            "device": str(net.device),
        }
        if torch.device(net.device).type == "cuda":
            index = torch.cuda.current_device()
            record["current_device"] = index
            record["gpu_uuid"] = str(torch.cuda.get_device_properties(index).uuid)
            record["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        path = Path(self.directory) / f"{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(record))


def _records(directory):
    return [json.loads(p.read_text()) for p in Path(directory).glob("*.json")]


def _import_here(client):
    """Let the workers import this module (its callbacks pickle by reference)."""
    root = Path(__file__).resolve().parents[__name__.count(".")]
    client.run(site.addsitedir, str(root))


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, and a client to them."""
    # The nanny sets its pre-spawn variables (OMP_NUM_THREADS=1, ...) in this
    # process too: put them back afterwards.
    environ = dict(os.environ)
    try:
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            _import_here(client)
            yield client
    finally:
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread here, as in the workers, for equal results."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16.0).astype(np.float32), y[:300]


def _search_scores(search):
    return {
        key: value
        for key, value in search.cv_results_.items()
        if key.startswith(("split", "mean_test", "std_test", "rank_test"))
    }


@pytest.mark.parametrize("kind", ["autoencoder", "pipeline"])
def test_grid_search_on_dask_matches_sequential(
    kind, client, digits, tmp_path, one_torch_thread
):
    """Check that GridSearchCV on Dask workers equals the sequential search."""
    X, y = digits
    if kind == "autoencoder":
        estimator = Autoencoder(n_components=2, **FAST)
        grid = {"n_components": [2, 8], "learning_rate_init": [1e-3, 1e-2]}
        prefix = ""
    else:
        estimator = make_pipeline(
            SparseAutoencoder(n_components=8, **FAST), LogisticRegression(max_iter=200)
        )
        grid = {"sparseautoencoder__sparsity_weight": [0.01, 0.1, 1.0]}
        prefix = "sparseautoencoder__"
    n_fits = np.prod([len(v) for v in grid.values()]) * 2

    searches = {}
    for where in ("local", "dask"):
        directory = tmp_path / where
        directory.mkdir()
        estimator.set_params(**{f"{prefix}callbacks": [Recorder(str(directory))]})
        search = GridSearchCV(estimator, grid, cv=2, refit=False)
        if where == "local":
            search.set_params(n_jobs=1).fit(X, y)
        else:
            with joblib.parallel_config(backend="dask"):
                search.set_params(n_jobs=-1).fit(X, y)
        searches[where] = search

    local, remote = searches["local"], searches["dask"]
    assert remote.best_params_ == local.best_params_
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    expected = _search_scores(local)
    for key, value in _search_scores(remote).items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-6, err_msg=key)

    # Every fit of the Dask search ran in a worker process, none here.
    worker_pids = set(client.run(os.getpid).values())
    records = _records(tmp_path / "dask")
    assert len(records) == n_fits
    assert {r["pid"] for r in records} <= worker_pids
    assert all(r["worker"] in client.scheduler_info()["workers"] for r in records)
    assert {r["pid"] for r in _records(tmp_path / "local")} == {os.getpid()}


def test_batched_search_on_dask_trains_nothing_ahead(
    client, digits, monkeypatch, one_torch_thread
):
    """Check that BatchedGridSearchCV under the Dask backend trains nothing
    batched in this process (the fits run in the workers, which could not
    adopt it: the grid was trained twice), says so, and equals the search
    run here."""
    import skae.model_selection as model_selection
    from skae.model_selection import BatchedGridSearchCV

    calls = []
    pretrain = model_selection.pretrain
    monkeypatch.setattr(
        model_selection, "pretrain", lambda *a: calls.append(1) or pretrain(*a)
    )
    X, _ = digits
    estimator = Autoencoder(n_components=2, **FAST)
    grid = {"learning_rate_init": [1e-3, 1e-2]}
    with joblib.parallel_config(backend="dask"):
        search = BatchedGridSearchCV(estimator, grid, cv=2, n_jobs=-1)
        with pytest.warns(UserWarning, match="joblib backend the caller chose"):
            search.fit(X)
    assert not calls and not search.batched_.any()
    local = BatchedGridSearchCV(estimator, grid, cv=2).fit(X)
    assert calls and local.batched_.all()
    expected = _search_scores(local)
    for key, value in _search_scores(search).items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-5, err_msg=key)


@pytest.mark.parametrize("shuffle_blocks", [False, True])
def test_incremental_trains_blockwise(
    shuffle_blocks, client, tmp_path, one_torch_thread
):
    """Check that Incremental equals partial_fit on the same blocks in order."""
    wrappers = pytest.importorskip("dask_ml.wrappers")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 16)).astype(np.float32)
    dX = da.from_array(X, chunks=(250, 16))
    n_blocks = dX.numblocks[0]
    estimator = Autoencoder(
        n_components=4, hidden_layer_sizes=(8,), callbacks=[Recorder(str(tmp_path))]
    ).set_params(**FAST)

    incremental = wrappers.Incremental(
        estimator, shuffle_blocks=shuffle_blocks, random_state=0
    )
    incremental.fit(dX)
    fitted = incremental.estimator_
    check_is_fitted(fitted)
    assert fitted is not estimator and not hasattr(estimator, "net_")
    assert fitted.n_iter_ == incremental.n_iter_ == n_blocks
    assert fitted.n_features_in_ == 16

    # Incremental shuffles the block order with random_state's RandomState.
    order = list(range(n_blocks))
    if shuffle_blocks:
        np.random.RandomState(0).shuffle(order)
    local = clone(estimator).set_params(callbacks=None)
    for i in order:
        local.partial_fit(X[250 * i : 250 * (i + 1)])
    assert local.n_iter_ == n_blocks
    np.testing.assert_allclose(local.loss_curve_, fitted.loss_curve_, rtol=1e-5)
    remote_state = fitted.net_.module_.state_dict()
    for name, value in local.net_.module_.state_dict().items():
        torch.testing.assert_close(remote_state[name], value, rtol=1e-5, atol=1e-6)

    # One partial_fit per block, each on its own block, in the workers.
    records = _records(tmp_path)
    assert len(records) == n_blocks
    assert {r["n_rows"] for r in records} == {250}
    assert {r["pid"] for r in records} <= set(client.run(os.getpid).values())

    # Another fit starts again from a clone; partial_fit continues.
    assert incremental.fit(dX).n_iter_ == n_blocks
    assert incremental.partial_fit(dX).n_iter_ == 2 * n_blocks

    # transform maps the blocks through the fitted estimator in the workers.
    incremental.fit(dX)
    expected = incremental.estimator_.transform(X)
    np.testing.assert_allclose(expected, local.transform(X), rtol=1e-5, atol=1e-6)
    # Each block is transformed on its own: its rows' codes are those of the
    # whole array to float32 rounding (BLAS may round a row by its position).
    tolerance = dict(rtol=1e-6, atol=1e-6 * float(np.abs(expected).max()))
    codes = incremental.transform(dX)
    # dask-ml declares the input's chunks, (16,) columns, for the codes: the
    # values are right, the dask array's shape is not.
    np.testing.assert_allclose(np.asarray(codes.compute()), expected, **tolerance)
    # Mapping the blocks with the codes' chunks gives the right shape too.
    codes = dX.map_blocks(
        incremental.estimator_.transform,
        chunks=(dX.chunks[0], (estimator.n_components,)),
        dtype=dX.dtype,
    )
    assert codes.shape == expected.shape
    np.testing.assert_allclose(codes.compute(), expected, **tolerance)


def test_torch_threads_within_process_workers(client, digits, tmp_path):
    """Check that torch uses no more threads than a worker process has."""
    X, _ = digits
    estimator = Autoencoder(n_components=4, callbacks=[Recorder(str(tmp_path))])
    estimator.set_params(**FAST)
    workers = sorted(client.scheduler_info()["workers"])
    futures = [
        client.submit(clone(estimator).fit, X, workers=[w], pure=False) for w in workers
    ]
    client.gather(futures)
    records = _records(tmp_path)
    assert sorted(r["worker"] for r in records) == workers
    for record in records:
        assert record["worker_nthreads"] == 1
        assert 1 <= record["torch_threads"] <= record["worker_nthreads"]


def _blas_pools():
    return [p for p in threadpool_info() if p["user_api"] == "blas"]


def test_torch_threads_within_thread_workers(digits, tmp_path):
    """Check the thread cap in workers that share this process (no nanny)."""
    X, _ = digits
    before = torch.get_num_threads()
    estimator = Autoencoder(n_components=4, callbacks=[Recorder(str(tmp_path))])
    estimator.set_params(**FAST)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        workers = sorted(client.scheduler_info()["workers"])
        futures = [
            client.submit(clone(estimator).fit, X, workers=[w], pure=False)
            for w in workers
        ]
        client.gather(futures)

        def threads_inside():
            with limit_threads():
                return torch.get_num_threads(), blas_within_share()

        inside = client.gather(
            [client.submit(threads_inside, workers=[w], pure=False) for w in workers]
        )
    assert [torch_threads for torch_threads, _ in inside] == [1, 1]
    # NumPy's BLAS (transform's products on the CPU) is not used where it
    # would run more threads than the worker's one.
    blas_threads = max(p["num_threads"] for p in _blas_pools())
    assert [within for _, within in inside] == [blas_threads <= 1] * 2
    assert blas_within_share()  # outside the workers
    records = _records(tmp_path)
    assert sorted(r["worker"] for r in records) == workers
    assert {r["pid"] for r in records} == {os.getpid()}
    for record in records:
        assert record["torch_threads"] <= record["worker_nthreads"] == 1
    # The cap ends with the tasks: this process has its threads back.
    assert torch.get_num_threads() == before


def test_limit_threads_outside_workers():
    """Check that limit_threads leaves torch alone outside a Dask worker."""
    before = torch.get_num_threads()
    with limit_threads():
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before


@pytest.mark.cuda
def test_gpu_workers_each_use_their_own_gpu(digits, tmp_path):
    """Check that device='auto' in each dask-cuda worker picks its own GPU."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs at least two CUDA devices")
    dask_cuda = pytest.importorskip("dask_cuda")
    X, _ = digits
    estimator = Autoencoder(
        n_components=4, device="auto", callbacks=[Recorder(str(tmp_path))]
    ).set_params(max_iter=5, batch_size=64, random_state=0)
    with (
        dask_cuda.LocalCUDACluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        _import_here(client)
        workers = sorted(client.scheduler_info()["workers"])
        futures = [
            client.submit(clone(estimator).fit, X, workers=[w], pure=False)
            for w in workers
        ]
        client.gather(futures)
    records = _records(tmp_path)
    assert sorted(r["worker"] for r in records) == workers
    # Each worker sees its own GPU first, as cuda:0.
    for record in records:
        assert record["device"] in ("cuda", "cuda:0")
        assert record["current_device"] == 0
    first_visible = [r["CUDA_VISIBLE_DEVICES"].split(",")[0] for r in records]
    assert len(set(first_visible)) == 2
    assert len({r["gpu_uuid"] for r in records}) == 2
