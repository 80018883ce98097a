"""The display of the training and validation loss per epoch."""

from numbers import Integral

import numpy as np
from sklearn.utils._optional_dependencies import check_matplotlib_support

from ._common import _check_autoencoder


class TrainingCurveDisplay:
    """Training loss, and validation loss if any, per epoch.

    The best epoch, where the validation loss (or, without one, the training
    loss) is lowest unless ``best_epoch`` is given, is marked by a vertical
    line. From an estimator fitted with early stopping, it is the epoch
    whose weights the estimator keeps: of its last early-stopping fit's
    epochs (a ``warm_start`` fit keeps the best of its own), until
    ``partial_fit`` trains on.

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

    best_epoch : int, default=None
        The epoch to mark as the best, counted from 1. None marks the epoch
        of lowest validation loss, or of lowest training loss without one.

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

    def __init__(self, *, loss_curve, validation_loss=None, name=None, best_epoch=None):
        self.loss_curve = loss_curve
        self.validation_loss = validation_loss
        self.name = name
        self.best_epoch = best_epoch

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
        if self.best_epoch is None:
            self.best_epoch_ = int(np.nanargmin(monitored)) + 1
        elif (
            isinstance(self.best_epoch, (bool, np.bool_))
            or not isinstance(self.best_epoch, Integral)
            or not 1 <= self.best_epoch <= loss_curve.size
        ):
            raise ValueError(
                f"best_epoch must be an epoch of loss_curve, from 1 to "
                f"{loss_curve.size}, got {self.best_epoch!r}."
            )
        else:
            self.best_epoch_ = int(self.best_epoch)
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
        validation_loss = best_epoch = None
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
                # The kept weights' epoch: the last of that score (a warm
                # start's best may be worse than an earlier call's).
                best = getattr(estimator, "best_validation_score_", None)
                matches = [i for i, s in zip(measured, scores) if s == best]
                best_epoch = matches[-1] + 1 if matches else None
        display = cls(
            loss_curve=loss_curve,
            validation_loss=validation_loss,
            name=name,
            best_epoch=best_epoch,
        )
        return display.plot(ax=ax, log_scale=log_scale)
