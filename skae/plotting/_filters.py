"""The display of an encoder's first-layer filters, as a grid of images."""

from math import ceil

import numpy as np
from sklearn.utils._optional_dependencies import check_matplotlib_support

from ._common import _check_autoencoder, _check_image_shape, _check_positive_int

# Filters drawn when n_filters is None: beyond this, tiles get too small to
# read on a page.
_MAX_DEFAULT_FILTERS = 100


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
        filters = np.array(estimator.input_weights_, copy=True)
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
