"""Tests of the displays in skae.plotting."""

import doctest
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from skorch.callbacks import Callback

import skae
from skae import Autoencoder, SparseAutoencoder
from skae.plotting import FiltersDisplay, TrainingCurveDisplay

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X = np.random.RandomState(0).uniform(size=(24, 16))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def shallow():
    """A one-layer encoder: its filters are components_."""
    params = dict(hidden_layer_sizes=(), max_iter=2, random_state=0, device="cpu")
    return Autoencoder(n_components=6, **params).fit(X)


@pytest.fixture(scope="module")
def early_stopped():
    """An autoencoder fitted with a validation set."""
    return Autoencoder(
        n_components=2,
        hidden_layer_sizes=(),
        max_iter=4,
        early_stopping=True,
        validation_fraction=0.25,
        random_state=0,
        device="cpu",
    ).fit(X)


def _weights(estimator):
    return estimator.net_.module_.input_weight.detach().cpu().numpy()


def test_filters_are_components_of_one_layer_encoder(shallow):
    """Check that the tiles are the rows of components_ reshaped to images."""
    display = FiltersDisplay.from_estimator(shallow)

    assert display.image_shape == (4, 4)
    np.testing.assert_array_equal(display.filters, shallow.components_)
    assert display.ax_.shape == (2, 3)
    assert display.images_.shape == (6,)
    for image, component in zip(display.images_, shallow.components_):
        np.testing.assert_array_equal(image.get_array(), component.reshape(4, 4))


def test_filters_of_deep_encoder_are_first_layer_weights():
    """Check that a deep encoder's tiles are its first layer's input weights."""
    ae = Autoencoder(
        n_components=2, hidden_layer_sizes=(5,), max_iter=2, random_state=0
    ).fit(X)

    display = FiltersDisplay.from_estimator(ae, image_shape=(2, 8))

    weights = _weights(ae)
    assert weights.shape == (5, 16)
    assert display.images_.shape == (5,)
    for image, weight in zip(display.images_, weights):
        assert image.get_array().shape == (2, 8)
        np.testing.assert_array_equal(image.get_array(), weight.reshape(2, 8))


def test_filters_colour_limits_are_symmetric_per_tile(shallow):
    """Check that each tile's colour limits are minus and plus its largest |w|."""
    display = FiltersDisplay.from_estimator(shallow, cmap="gray")

    for image, component in zip(display.images_, shallow.components_):
        limit = np.abs(component).max()
        np.testing.assert_allclose(image.get_clim(), (-limit, limit))
        assert image.get_cmap().name == "gray"


def test_filters_imshow_kwargs_replace_colour_limits(shallow):
    """Check that vmin and vmax in imshow_kwargs apply to every tile."""
    display = FiltersDisplay.from_estimator(
        shallow, imshow_kwargs={"vmin": -2.0, "vmax": 3.0}
    )

    assert all(image.get_clim() == (-2.0, 3.0) for image in display.images_)


def test_filters_n_filters_and_n_cols(shallow):
    """Check that n_filters selects the first units and n_cols sets the grid."""
    display = FiltersDisplay.from_estimator(shallow, n_filters=4, n_cols=4)

    assert display.ax_.shape == (1, 4)
    np.testing.assert_array_equal(display.filters, shallow.components_[:4])

    display = FiltersDisplay.from_estimator(shallow, n_filters=5, n_cols=2)
    assert display.ax_.shape == (3, 2)
    # The grid's last tile has no filter: its axes are switched off.
    assert not display.ax_[2, 1].axison
    assert display.ax_[2, 0].axison


def test_filters_default_number_is_capped():
    """Check that without n_filters at most 100 filters are drawn."""
    ae = Autoencoder(
        n_components=2, hidden_layer_sizes=(120,), max_iter=2, random_state=0
    ).fit(X[:, :4])

    display = FiltersDisplay.from_estimator(ae)

    assert display.images_.shape == (100,)
    assert display.ax_.shape == (10, 10)
    assert FiltersDisplay.from_estimator(ae, n_filters=120).images_.shape == (120,)


def test_filters_drawn_on_given_figure(shallow):
    """Check that a given Figure or SubFigure receives the tiles."""
    figure = plt.figure()
    display = FiltersDisplay.from_estimator(shallow, ax=figure)

    assert display.figure_ is figure
    assert set(display.ax_.flat) == set(figure.axes)

    left, right = plt.figure().subfigures(1, 2)
    display = FiltersDisplay.from_estimator(shallow, ax=right)
    assert display.figure_ is right
    assert set(display.ax_.flat) == set(right.axes)
    assert not left.axes


def test_filters_drawn_in_given_axes(shallow):
    """Check that a single Axes has its area divided into the tiles."""
    figure, (ax, other) = plt.subplots(1, 2)

    display = FiltersDisplay.from_estimator(shallow, ax=ax)

    assert display.figure_ is figure
    assert not ax.axison
    assert all(tile in ax.child_axes for tile in display.ax_.flat)
    assert not other.child_axes


def test_filters_drawn_on_given_array_of_axes(shallow):
    """Check that an array of Axes gets one tile per axes, in order."""
    figure, axes = plt.subplots(2, 4)

    display = FiltersDisplay.from_estimator(shallow, ax=axes)

    assert display.ax_.shape == (2, 4)
    assert all(a is b for a, b in zip(display.ax_.flat, axes.flat))
    for i, tile_ax in enumerate(axes.flat):
        assert len(tile_ax.images) == (1 if i < 6 else 0)
    np.testing.assert_array_equal(
        axes[1, 1].images[0].get_array(), shallow.components_[5].reshape(4, 4)
    )

    with pytest.raises(ValueError, match="at least 6 Axes"):
        FiltersDisplay.from_estimator(shallow, ax=axes[0])


def test_filters_refuse_unfitted_and_foreign_estimators():
    """Check the errors for an unfitted or a non-skae estimator."""
    with pytest.raises(NotFittedError):
        FiltersDisplay.from_estimator(Autoencoder())
    with pytest.raises(TypeError, match="needs a skae autoencoder.*PCA"):
        FiltersDisplay.from_estimator(PCA(n_components=2).fit(X))


@pytest.mark.parametrize(
    "image_shape, match",
    [
        ((3, 5), r"height \* width equal to the number of features \(16\)"),
        ((16,), "two positive integers"),
        ((0, 16), "two positive integers"),
        ((2.0, 8.0), "two positive integers"),
        (16, "two positive integers"),
        ((True, 16), "two positive integers"),
    ],
)
def test_filters_refuse_bad_image_shape(shallow, image_shape, match):
    """Check that an image_shape not matching the features is refused."""
    with pytest.raises(ValueError, match=match):
        FiltersDisplay.from_estimator(shallow, image_shape=image_shape)


def test_filters_need_image_shape_when_not_square():
    """Check that a non-square number of features asks for image_shape."""
    ae = Autoencoder(
        n_components=2, hidden_layer_sizes=(), max_iter=2, random_state=0
    ).fit(X[:, :15])

    with pytest.raises(ValueError, match="not a perfect square: pass image_shape"):
        FiltersDisplay.from_estimator(ae)
    display = FiltersDisplay.from_estimator(ae, image_shape=(3, 5))
    assert display.images_[0].get_array().shape == (3, 5)


@pytest.mark.parametrize("n_filters", [0, 7, 2.5])
def test_filters_refuse_bad_n_filters(shallow, n_filters):
    """Check that n_filters must be a number of units the layer has."""
    with pytest.raises(ValueError, match="n_filters"):
        FiltersDisplay.from_estimator(shallow, n_filters=n_filters)


def test_filters_display_of_any_weights():
    """Check that the display draws an array given directly."""
    filters = np.arange(12.0).reshape(2, 6)

    display = FiltersDisplay(filters=filters, image_shape=(2, 3)).plot()

    np.testing.assert_array_equal(
        display.images_[1].get_array(), filters[1].reshape(2, 3)
    )
    with pytest.raises(ValueError, match="2-D array"):
        FiltersDisplay(filters=np.zeros(6)).plot()


def test_training_curve_lines_are_losses(early_stopped):
    """Check that the lines are loss_curve_ and -validation_scores_ per epoch."""
    display = TrainingCurveDisplay.from_estimator(early_stopped)

    epochs = np.arange(1, early_stopped.n_iter_ + 1)
    training, validation = display.lines_
    np.testing.assert_array_equal(training.get_xdata(), epochs)
    np.testing.assert_allclose(training.get_ydata(), early_stopped.loss_curve_)
    np.testing.assert_array_equal(validation.get_xdata(), epochs)
    np.testing.assert_allclose(
        validation.get_ydata(), -np.asarray(early_stopped.validation_scores_)
    )
    np.testing.assert_allclose(display.loss_curve, early_stopped.loss_curve_)
    np.testing.assert_allclose(
        display.validation_loss, -np.asarray(early_stopped.validation_scores_)
    )
    assert display.ax_.get_xlabel() == "epoch"
    assert display.ax_.get_yscale() == "linear"


def test_training_curve_marks_best_validation_epoch(early_stopped):
    """Check that the marker is at the epoch of the lowest validation loss."""
    display = TrainingCurveDisplay.from_estimator(early_stopped)

    best = int(np.argmax(early_stopped.validation_scores_)) + 1
    assert display.best_epoch_ == best
    np.testing.assert_array_equal(display.best_epoch_line_.get_xdata(), [best, best])

    display = TrainingCurveDisplay(
        loss_curve=[5.0, 3.0, 2.0, 1.0], validation_loss=[5.0, 2.0, 4.0, 3.0]
    ).plot()
    assert display.best_epoch_ == 2
    np.testing.assert_array_equal(display.best_epoch_line_.get_xdata(), [2, 2])


class _WeightsPerEpoch(Callback):
    """Keeps the first layer's weights at the end of every epoch."""

    def initialize(self):
        self.weights = []
        return self

    def on_epoch_end(self, net, **kwargs):
        self.weights.append(net.module_.input_weight.detach().numpy().copy())


def test_training_curve_marks_the_kept_epoch_after_a_warm_start():
    """Check that after a warm_start fit with early stopping, whose kept
    epoch is the best of its own run (worse than an earlier call's here),
    the marked epoch and best_validation_score_ are those of the weights
    the estimator holds: they were the first call's best."""
    X = load_breast_cancer().data
    weights = _WeightsPerEpoch()
    model = Autoencoder(
        n_components=3,
        hidden_layer_sizes=(),
        max_iter=15,
        learning_rate_init=0.01,
        early_stopping=True,
        warm_start=True,
        random_state=0,
        callbacks=[("weights", weights)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
        first = len(model.loss_curve_)
        snapshots = list(dict(model.net_.callbacks_)["weights"].weights)
        model.set_params(learning_rate_init=0.5, max_iter=5).fit(X)
    # The callback starts afresh with each fit.
    snapshots += dict(model.net_.callbacks_)["weights"].weights
    assert len(snapshots) == len(model.loss_curve_)
    held = model.net_.module_.input_weight.detach().numpy()
    kept = [i + 1 for i, w in enumerate(snapshots) if np.array_equal(w, held)]
    assert len(kept) == 1 and kept[0] > first
    display = TrainingCurveDisplay.from_estimator(model)
    assert display.best_epoch_ == kept[0]
    assert model.best_validation_score_ == model.validation_scores_[kept[0] - 1]
    # The second run is worse than the first here: the case that was wrong.
    assert model.best_validation_score_ < max(model.validation_scores_[:first])


def test_training_curve_best_epoch_given_and_refused():
    display = TrainingCurveDisplay(loss_curve=[3.0, 2.0, 1.0], best_epoch=1).plot()
    assert display.best_epoch_ == 1
    for wrong in (0, 4, True, 1.5):
        with pytest.raises(ValueError, match="best_epoch must be an epoch"):
            TrainingCurveDisplay(loss_curve=[3.0, 2.0, 1.0], best_epoch=wrong).plot()


def test_training_curve_without_validation(shallow):
    """Check that without validation one line is drawn, best at its minimum."""
    display = TrainingCurveDisplay.from_estimator(shallow, name="shallow")

    assert display.validation_loss is None
    (training,) = display.lines_
    np.testing.assert_allclose(training.get_ydata(), shallow.loss_curve_)
    assert training.get_label() == "shallow: training loss"
    assert display.best_epoch_ == int(np.argmin(shallow.loss_curve_)) + 1

    display = TrainingCurveDisplay(loss_curve=[3.0, 1.0, 2.0]).plot()
    np.testing.assert_array_equal(display.best_epoch_line_.get_xdata(), [2, 2])


def test_training_curve_validation_gaps_after_partial_fit(early_stopped):
    """Check that epochs trained without validation have no validation value."""
    from sklearn.base import clone

    ae = clone(early_stopped).fit(X)
    ae.partial_fit(X)

    display = TrainingCurveDisplay.from_estimator(ae)

    validation = display.lines_[1].get_ydata()
    assert validation.shape == (ae.n_iter_,)
    assert np.isnan(validation[-1])
    np.testing.assert_allclose(validation[:-1], -np.asarray(ae.validation_scores_))


def test_training_curve_log_scale_and_given_axes(early_stopped):
    """Check that log_scale sets the scale and that a given Axes is used."""
    figure, (ax, other) = plt.subplots(1, 2)

    display = TrainingCurveDisplay.from_estimator(early_stopped, ax=ax, log_scale=True)

    assert display.ax_ is ax
    assert display.figure_ is figure
    assert ax.get_yscale() == "log"
    assert set(ax.lines) == {*display.lines_, display.best_epoch_line_}
    assert not other.lines


def test_training_curve_refuses_unfitted_and_foreign_estimators():
    """Check the errors for an unfitted or a non-skae estimator."""
    with pytest.raises(NotFittedError):
        TrainingCurveDisplay.from_estimator(SparseAutoencoder())
    with pytest.raises(TypeError, match="needs a skae autoencoder.*PCA"):
        TrainingCurveDisplay.from_estimator(PCA(n_components=2).fit(X))


def test_training_curve_refuses_misaligned_validation_loss():
    """Check that a validation loss needs one value per epoch."""
    display = TrainingCurveDisplay(loss_curve=[3.0, 2.0], validation_loss=[1.0])
    with pytest.raises(ValueError, match="one value \\(or NaN\\) per epoch"):
        display.plot()


def test_plotting_imports_without_matplotlib():
    """Check that skae.plotting imports without matplotlib and plot says why."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["matplotlib"] = None
        import numpy as np
        from skae import Autoencoder
        from skae.plotting import FiltersDisplay, TrainingCurveDisplay

        calls = [
            FiltersDisplay(filters=np.zeros((4, 4))).plot,
            TrainingCurveDisplay(loss_curve=[1.0]).plot,
            lambda: FiltersDisplay.from_estimator(Autoencoder()),
            lambda: TrainingCurveDisplay.from_estimator(Autoencoder()),
        ]
        for call in calls:
            try:
                call()
            except ImportError as exc:
                print(exc)
            else:
                raise SystemExit("no ImportError")
        """
    )
    # The child imports the skae that this process imported.
    root = os.path.dirname(os.path.dirname(os.path.abspath(skae.__file__)))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )

    assert result.returncode == 0, result.stderr
    messages = result.stdout.splitlines()
    assert len(messages) == 4
    assert all("pip install matplotlib" in message for message in messages)
    assert messages[0].startswith("FiltersDisplay.plot requires matplotlib")
    assert messages[3].startswith(
        "TrainingCurveDisplay.from_estimator requires matplotlib"
    )


def test_docstring_examples_run():
    """Check that the examples in skae.plotting's docstrings give their output."""
    # The displays are defined in the package's private submodules.
    from skae.plotting import _filters, _loss

    for module in (_filters, _loss):
        results = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)

        assert results.attempted > 0, module.__name__
        assert results.failed == 0, module.__name__


def test_training_curve_of_refit_without_validation(early_stopped):
    """Check that a refit without early stopping draws no validation loss."""
    from sklearn.base import clone

    ae = clone(early_stopped).fit(X)
    ae.set_params(early_stopping=False, max_iter=2).fit(X)

    display = TrainingCurveDisplay.from_estimator(ae)

    assert display.validation_loss is None
    assert len(display.lines_) == 1
    np.testing.assert_allclose(display.lines_[0].get_ydata(), ae.loss_curve_)
