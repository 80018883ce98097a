"""Displays of fitted autoencoders: encoder filters and training curves.

The displays follow scikit-learn's visualization API: a display holds the
data to draw, its ``plot`` method draws it and stores the matplotlib objects
in attributes ending in ``_``, and its ``from_estimator`` class method reads
the data off a fitted estimator and plots it. matplotlib is needed only to
plot: it is imported when ``plot`` or ``from_estimator`` is called.
"""

from ._filters import FiltersDisplay
from ._loss import TrainingCurveDisplay

__all__ = ["FiltersDisplay", "TrainingCurveDisplay"]
