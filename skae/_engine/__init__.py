"""Training and inference on top of ``skae._nn``: skorch and torch.

``net`` (the skorch net, its loss, stopping rule, progress bar and device
resolution), ``batched`` (many nets trained as one, for
``BatchedGridSearchCV``) and ``parallel`` (thread limits inside Dask
workers). It imports from ``skae._nn`` only; the estimators import from it.
"""
