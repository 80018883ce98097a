"""Displays of fitted autoencoders: encoder filters and training curves.

The displays follow scikit-learn's visualization API: a display holds the
data to draw, its ``plot`` method draws it and stores the matplotlib objects
in attributes ending in ``_``, and its ``from_estimator`` class method reads
the data off a fitted estimator and plots it. matplotlib is needed only to
plot: it is imported when ``plot`` or ``from_estimator`` is called.
"""

from math import ceil, isqrt
from numbers import Integral

import numpy as np
from sklearn.utils._optional_dependencies import check_matplotlib_support
from sklearn.utils.validation import check_is_fitted

from ._base import _BaseAutoencoder

__all__ = ["FiltersDisplay", "TrainingCurveDisplay"]

# Filters drawn when n_filters is None: beyond this, tiles get too small to
# read on a page.
_MAX_DEFAULT_FILTERS = 100


def _check_autoencoder(estimator, caller):
    """Check that ``estimator`` is a fitted skae autoencoder."""
    if not isinstance(estimator, _BaseAutoencoder):
        raise TypeError(
            f"{caller} needs a skae autoencoder (Autoencoder, SparseAutoencoder, "
            "ContractiveAutoencoder, DenoisingAutoencoder), got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)


def _check_image_shape(image_shape, n_features):
    """``image_shape`` as a tuple of two ints whose product is ``n_features``."""
    if image_shape is None:
        side = isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"The filters have {n_features} features, which is not a perfect "
                "square: pass image_shape=(height, width) with "
                f"height * width == {n_features}."
            )
        return (side, side)
    shape = tuple(image_shape)
    if (
        len(shape) != 2
        or not all(isinstance(s, Integral) and s >= 1 for s in shape)
        or shape[0] * shape[1] != n_features
    ):
        raise ValueError(
            "image_shape must be two positive integers (height, width) with "
            f"height * width equal to the number of features ({n_features}), "
            f"got {image_shape!r}."
        )
    return (int(shape[0]), int(shape[1]))


def _check_positive_int(value, name):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _tile_axes(ax, n_tiles, n_cols, tile_shape):
    """The axes of a grid of ``n_tiles`` tiles, as an ndarray, and the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.figure import FigureBase

    n_cols = min(n_cols, n_tiles)
    n_rows = ceil(n_tiles / n_cols)
    spacing = {"wspace": 0.05, "hspace": 0.05}
    if ax is None:
        width = min(1.0, 10.0 / n_cols)
        height = width * tile_shape[0] / tile_shape[1]
        figure, axes = plt.subplots(
            n_rows,
            n_cols,
            figsize=(width * n_cols, height * n_rows),
            squeeze=False,
            gridspec_kw=spacing,
        )
        return axes, figure
    if isinstance(ax, FigureBase):
        return ax.subplots(n_rows, n_cols, squeeze=False, gridspec_kw=spacing), ax
    if isinstance(ax, Axes):
        # The tiles fill the given axes' area, whose own frame is hidden.
        ax.set_axis_off()
        width, height = 1.0 / n_cols, 1.0 / n_rows
        gap = 0.05  # between tiles, as a fraction of a tile
        axes = np.empty((n_rows, n_cols), dtype=object)
        for i in range(n_rows):
            for j in range(n_cols):
                left = (j + gap / 2) * width
                bottom = 1.0 - (i + 1 - gap / 2) * height
                bounds = [left, bottom, (1 - gap) * width, (1 - gap) * height]
                axes[i, j] = ax.inset_axes(bounds)
        return axes, ax.figure
    axes = np.asarray(ax, dtype=object)
    if axes.size < n_tiles or not all(isinstance(a, Axes) for a in axes.flat):
        raise ValueError(
            "ax must be None, a matplotlib Axes, Figure or SubFigure, or an "
            f"array of at least {n_tiles} Axes (one per filter), got {ax!r}."
        )
    return axes, axes.flat[0].figure


class FiltersDisplay:
    """Filters of an encoder's first layer, drawn as a grid of images.

    Row ``j`` of the first encoder layer's weight matrix, as applied to the
    raw input, is the input pattern that excites unit ``j`` of that layer
    most: its *filter*. When the input is an image, each filter is drawn as
    an image of the same shape, on a symmetric colour scale of its own
    (positive and negative weights of equal magnitude get opposite colours
    of equal intensity).

    It is recommended to use :meth:`FiltersDisplay.from_estimator` to create
    a display. All parameters are stored as attributes.

    Parameters
    ----------
    filters : ndarray of shape (n_filters, n_features)
        The filters to draw, one per row.

    image_shape : tuple of (int, int), default=None
        Shape ``(height, width)`` of each tile, with ``height * width`` equal
        to ``n_features``. None means square tiles, which needs
        ``n_features`` to be a perfect square.

    Attributes
    ----------
    ax_ : ndarray of matplotlib Axes
        The axes of the tiles, of shape ``(n_rows, n_cols)`` unless an array
        of axes was passed to :meth:`plot`; axes without a filter are
        switched off.

    figure_ : matplotlib Figure or SubFigure
        The figure holding the tiles.

    images_ : ndarray of matplotlib AxesImage of shape (n_filters,)
        The image of each filter.

    See Also
    --------
    FiltersDisplay.from_estimator : Draw the filters of a fitted autoencoder.
    TrainingCurveDisplay : Training and validation loss per epoch.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skae.plotting import FiltersDisplay
    >>> filters = np.random.RandomState(0).normal(size=(6, 12))
    >>> display = FiltersDisplay(filters=filters, image_shape=(3, 4))
    >>> display = display.plot(n_cols=3)
    >>> display.ax_.shape
    (2, 3)
    >>> display.images_[0].get_array().shape
    (3, 4)
    """

    def __init__(self, *, filters, image_shape=None):
        self.filters = filters
        self.image_shape = image_shape

    def plot(self, ax=None, *, n_cols=None, cmap="RdBu_r", imshow_kwargs=None):
        """Draw the filters.

        Parameters
        ----------
        ax : matplotlib Axes, Figure, SubFigure or array of Axes, default=None
            Where to draw. None creates a figure with one axes per tile; a
            Figure or SubFigure gets one axes per tile; a single Axes has
            its area divided into the tiles (its own frame is hidden); an
            array of at least ``n_filters`` Axes gets one tile on each of
            the first ``n_filters``, in order.

        n_cols : int, default=None
            Number of tiles per row. None means ``ceil(sqrt(n_filters))``.
            Ignored when ``ax`` is an array of Axes.

        cmap : str or matplotlib Colormap, default="RdBu_r"
            Colour map of the tiles.

        imshow_kwargs : dict, default=None
            Further keyword arguments of :meth:`matplotlib.axes.Axes.imshow`.
            ``vmin`` and ``vmax``, or ``norm``, given here replace each
            tile's symmetric colour limits.

        Returns
        -------
        display : :class:`~skae.plotting.FiltersDisplay`
            Object that stores the drawn artists.
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        filters = np.asarray(self.filters)
        if filters.ndim != 2 or filters.shape[0] == 0:
            raise ValueError(
                "filters must be a 2-D array of shape (n_filters, n_features) "
                f"with at least one filter, got shape {filters.shape}."
            )
        n_filters, n_features = filters.shape
        image_shape = _check_image_shape(self.image_shape, n_features)
        if n_cols is None:
            n_cols = ceil(np.sqrt(n_filters))
        n_cols = _check_positive_int(n_cols, "n_cols")
        axes, figure = _tile_axes(ax, n_filters, n_cols, image_shape)

        kwargs = {"cmap": cmap, "interpolation": "nearest"}
        kwargs.update(imshow_kwargs or {})
        images = np.empty(n_filters, dtype=object)
        for i, tile_ax in enumerate(axes.flat):
            if i >= n_filters:
                tile_ax.set_axis_off()
                continue
            tile = filters[i].reshape(image_shape)
            limit = float(np.abs(tile).max()) or 1.0
            tile_kwargs = kwargs
            if "norm" not in kwargs:
                tile_kwargs = {"vmin": -limit, "vmax": limit, **kwargs}
            images[i] = tile_ax.imshow(tile, **tile_kwargs)
            tile_ax.set_xticks(())
            tile_ax.set_yticks(())

        self.ax_ = axes
        self.figure_ = figure
        self.images_ = images
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        *,
        image_shape=None,
        n_filters=None,
        ax=None,
        n_cols=None,
        cmap="RdBu_r",
        imshow_kwargs=None,
    ):
        """Draw the filters of a fitted autoencoder's first encoder layer.

        The filters are the first encoder layer's weights as applied to the
        raw input (the centring and scaling of the input folded in). For an
        encoder of one layer (``hidden_layer_sizes=()``) they are
        ``components_``; otherwise they are the filters of the first
        hidden layer's units.

        Parameters
        ----------
        estimator : Autoencoder, SparseAutoencoder, ContractiveAutoencoder or \
                DenoisingAutoencoder
            A fitted skae autoencoder.

        image_shape : tuple of (int, int), default=None
            Shape ``(height, width)`` of each tile, with ``height * width``
            equal to ``n_features_in_``, e.g. ``(8, 8)`` for the digits. None
            means square tiles, which needs ``n_features_in_`` to be a
            perfect square.

        n_filters : int, default=None
            Number of filters to draw: those of the first ``n_filters``
            units. None means all of them, up to 100.

        ax : matplotlib Axes, Figure, SubFigure or array of Axes, default=None
            Where to draw. None creates a figure with one axes per tile; a
            Figure or SubFigure gets one axes per tile; a single Axes has
            its area divided into the tiles (its own frame is hidden); an
            array of at least ``n_filters`` Axes gets one tile on each of
            the first ``n_filters``, in order.

        n_cols : int, default=None
            Number of tiles per row. None means ``ceil(sqrt(n_filters))``.
            Ignored when ``ax`` is an array of Axes.

        cmap : str or matplotlib Colormap, default="RdBu_r"
            Colour map of the tiles.

        imshow_kwargs : dict, default=None
            Further keyword arguments of :meth:`matplotlib.axes.Axes.imshow`.
            ``vmin`` and ``vmax``, or ``norm``, given here replace each
            tile's symmetric colour limits.

        Returns
        -------
        display : :class:`~skae.plotting.FiltersDisplay`
            Object that stores the filters and the drawn artists.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_digits
        >>> from skae import SparseAutoencoder
        >>> from skae.plotting import FiltersDisplay
        >>> X = load_digits().data[:100] / 16
        >>> sae = SparseAutoencoder(n_components=16, max_iter=5, random_state=0)
        >>> sae = sae.fit(X)
        >>> display = FiltersDisplay.from_estimator(sae, image_shape=(8, 8))
        >>> display.ax_.shape, display.images_.shape
        ((4, 4), (16,))
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        _check_autoencoder(estimator, f"{cls.__name__}.from_estimator")
        weight = estimator.net_.module_.input_weight
        filters = weight.detach().cpu().numpy().copy()
        n_units, n_features = filters.shape
        if n_filters is None:
            n_filters = min(n_units, _MAX_DEFAULT_FILTERS)
        n_filters = _check_positive_int(n_filters, "n_filters")
        if n_filters > n_units:
            raise ValueError(
                f"n_filters={n_filters} exceeds the {n_units} units of the "
                "first encoder layer."
            )
        display = cls(
            filters=filters[:n_filters],
            image_shape=_check_image_shape(image_shape, n_features),
        )
        return display.plot(
            ax=ax, n_cols=n_cols, cmap=cmap, imshow_kwargs=imshow_kwargs
        )


class TrainingCurveDisplay:
    """Training loss, and validation loss if any, per epoch.

    The best epoch, where the validation loss (or, without one, the training
    loss) is lowest, is marked by a vertical line. With early stopping, its
    weights are the ones the estimator keeps.

    It is recommended to use :meth:`TrainingCurveDisplay.from_estimator` to
    create a display. All parameters are stored as attributes.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss of each epoch.

    validation_loss : array-like of shape (n_epochs,), default=None
        Validation loss of each epoch, NaN for epochs without one. None when
        there is no validation loss.

    name : str, default=None
        Name prefixed to the legend's labels, e.g. to tell the curves of
        several estimators drawn on one axes apart. No prefix when None.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the curves.

    figure_ : matplotlib Figure
        Figure containing the curves.

    lines_ : list of matplotlib Line2D
        The training loss line, followed by the validation loss line when
        there is a validation loss.

    best_epoch_ : int
        The best epoch, counted from 1.

    best_epoch_line_ : matplotlib Line2D
        The vertical line marking the best epoch.

    See Also
    --------
    TrainingCurveDisplay.from_estimator : Draw the curves of a fitted
        autoencoder.
    FiltersDisplay : Filters of an encoder's first layer.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skae.plotting import TrainingCurveDisplay
    >>> display = TrainingCurveDisplay(
    ...     loss_curve=[4.0, 2.0, 1.5, 1.2], validation_loss=[4.1, 2.5, 2.2, 2.3]
    ... )
    >>> display = display.plot(log_scale=True)
    >>> len(display.lines_), display.best_epoch_
    (2, 3)
    """

    def __init__(self, *, loss_curve, validation_loss=None, name=None):
        self.loss_curve = loss_curve
        self.validation_loss = validation_loss
        self.name = name

    def plot(self, ax=None, *, log_scale=False):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on. None creates a figure with one axes.

        log_scale : bool, default=False
            Whether to draw the loss on a logarithmic scale.

        Returns
        -------
        display : :class:`~skae.plotting.TrainingCurveDisplay`
            Object that stores the drawn artists.
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        loss_curve = np.asarray(self.loss_curve, dtype=float)
        if loss_curve.ndim != 1 or loss_curve.size == 0:
            raise ValueError(
                "loss_curve must be a non-empty 1-D array of one loss per "
                f"epoch, got shape {loss_curve.shape}."
            )
        monitored = loss_curve
        curves = [("training loss", loss_curve)]
        if self.validation_loss is not None:
            validation_loss = np.asarray(self.validation_loss, dtype=float)
            if validation_loss.shape != loss_curve.shape:
                raise ValueError(
                    "validation_loss must have one value (or NaN) per epoch of "
                    f"loss_curve, got shape {validation_loss.shape} for "
                    f"{loss_curve.size} epochs."
                )
            if not np.isnan(validation_loss).all():
                monitored = validation_loss
            curves.append(("validation loss", validation_loss))

        if ax is None:
            _, ax = plt.subplots()
        prefix = "" if self.name is None else f"{self.name}: "
        epochs = np.arange(1, loss_curve.size + 1)
        self.lines_ = [
            ax.plot(epochs, values, label=prefix + label)[0] for label, values in curves
        ]
        self.best_epoch_ = int(np.nanargmin(monitored)) + 1
        self.best_epoch_line_ = ax.axvline(
            self.best_epoch_,
            color="gray",
            linestyle=":",
            label=f"{prefix}best epoch ({self.best_epoch_})",
        )
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if log_scale:
            ax.set_yscale("log")
        ax.legend()

        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, log_scale=False, name=None):
        """Draw the training curves of a fitted autoencoder.

        The training loss is ``loss_curve_``. The validation loss, drawn
        when the estimator has ``validation_scores_`` (it was fitted with
        ``early_stopping=True``), is ``-validation_scores_``.

        Parameters
        ----------
        estimator : Autoencoder, SparseAutoencoder, ContractiveAutoencoder or \
                DenoisingAutoencoder
            A fitted skae autoencoder.

        ax : matplotlib Axes, default=None
            Axes to draw on. None creates a figure with one axes.

        log_scale : bool, default=False
            Whether to draw the loss on a logarithmic scale.

        name : str, default=None
            Name prefixed to the legend's labels. No prefix when None.

        Returns
        -------
        display : :class:`~skae.plotting.TrainingCurveDisplay`
            Object that stores the curves and the drawn artists.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from skae import Autoencoder
        >>> from skae.plotting import TrainingCurveDisplay
        >>> X = np.random.RandomState(0).normal(size=(100, 8))
        >>> ae = Autoencoder(
        ...     n_components=2, max_iter=5, early_stopping=True, random_state=0
        ... ).fit(X)
        >>> display = TrainingCurveDisplay.from_estimator(ae, log_scale=True)
        >>> len(display.lines_)
        2
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        _check_autoencoder(estimator, f"{cls.__name__}.from_estimator")
        loss_curve = np.asarray(estimator.loss_curve_, dtype=float)
        validation_loss = None
        scores = getattr(estimator, "validation_scores_", None)
        if scores is not None:
            # Epochs trained without a validation set (a warm start or
            # partial_fit after fitting with early stopping) have none.
            measured = [
                i for i, row in enumerate(estimator.net_.history) if "valid_loss" in row
            ]
            if len(measured) == len(scores) and len(measured) > 0:
                validation_loss = np.full(loss_curve.size, np.nan)
                validation_loss[measured] = -np.asarray(scores, dtype=float)
        display = cls(loss_curve=loss_curve, validation_loss=validation_loss, name=name)
        return display.plot(ax=ax, log_scale=log_scale)
