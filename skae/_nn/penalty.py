"""A penalty hook as one object: its value and what training knows of it.

A :class:`Penalty` is ``functools.partial(func, **keywords)``, called as
``penalty(module, x, codes, generator)`` for the penalty's value, that also
carries

* ``gradient``: the written-out gradient,
  ``gradient(module, x, codes, generator, encoder, **keywords)`` returning
  ``(value, code_grad, param_grads, pre_activation_grads)`` (see
  ``_backprop._penalty_gradients``), or None to go through autograd;
* ``stacked_ndims``: for batched training (``BatchedGridSearchCV``), the
  number of dimensions each keyword that may differ between the nets of a
  batch takes when stacked (1 for a factor of the per-net penalty, 2 for a
  value that broadcasts against per-unit statistics), or None when the
  penalty cannot train batched;
* ``stacked_gradient``: the written-out gradient over a model axis, for
  the batched step that has one (``_engine.stacked_sparse``),
  ``stacked_gradient(module, x, step, **keywords)`` returning each net's
  value and a dict of gradients by parameter, or None;
* ``stacked``: the batched replacement of ``func`` when it cannot run over
  a model axis as it is, ``stacked(module, x, codes, generators,
  **keywords)``, or None.

An estimator's ``_penalty`` hook builds one with :func:`make_penalty`;
nothing is registered anywhere, so training does not depend on which
modules were imported. The object pickles (its attributes with it) and
``with_keywords`` copies it with keywords replaced.
"""

from functools import partial

__all__ = ["Penalty", "make_penalty"]


class Penalty(partial):
    """``partial(func, **keywords)`` with ``gradient``, ``stacked_ndims`` and
    ``stacked`` attributes (see the module docstring)."""

    gradient = None
    stacked_gradient = None
    stacked_ndims = None
    stacked = None

    def with_keywords(self, **keywords):
        """A copy with these keywords replaced, its attributes kept."""
        copy = type(self)(self.func, *self.args, **{**self.keywords, **keywords})
        copy.__dict__.update(self.__dict__)
        return copy


def make_penalty(
    func,
    *,
    gradient=None,
    stacked_gradient=None,
    stacked_ndims=None,
    stacked=None,
    **keywords,
):
    """The :class:`Penalty` of ``func`` with ``keywords``."""
    penalty = Penalty(func, **keywords)
    penalty.gradient = gradient
    penalty.stacked_gradient = stacked_gradient
    penalty.stacked_ndims = stacked_ndims
    penalty.stacked = stacked
    return penalty
